"""SQuAD v1.1 data: reading dev-v1.1.json, doc-stride windows (identical to Hugging Face's
run_qa.py windows for BERT and RoBERTa), and decoding: logits that put their mass on the gold
start and end tokens decode back to the gold answer text, through the windows and offsets."""

import json
import shutil

import numpy as np
import pytest

from llm_jax.data import RobertaBPETokenizer, WordPieceTokenizer
from llm_jax.data.squad_data import (
    SquadExample,
    decode_spans,
    make_windows,
    nbest_spans,
    read_squad,
    split_articles,
)
from llm_jax.evaluation.squad_metrics import squad_scores
from tests.conftest import require_real_data

DEV = "squad/dev-v1.1.json"
BERT_VOCAB = "tokenizers/bert-base-uncased/vocab.txt"
GPT2_FILES = ("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")


@pytest.fixture(scope="module")
def dev():
    return read_squad(require_real_data(DEV) / DEV)


@pytest.fixture(scope="module")
def bert():
    return WordPieceTokenizer.from_vocab_file(require_real_data(BERT_VOCAB) / BERT_VOCAB)


@pytest.fixture(scope="module")
def roberta():
    root = require_real_data(*GPT2_FILES)
    return RobertaBPETokenizer.from_files(*(root / f for f in GPT2_FILES))


def test_reads_dev_and_splits_by_article(dev):
    assert len(dev) == 10_570 and len({e.id for e in dev}) == 10_570
    assert len({e.article for e in dev}) == len({e.title for e in dev}) == 48
    assert len({e.context for e in dev}) == 2067
    assert all(e.answers for e in dev)
    for e in dev[:500]:
        for a in e.answers:
            assert e.context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
    train, held_out = split_articles(dev)
    assert (len(train), len(held_out)) == (8582, 1988)
    assert {e.article for e in train} == set(range(38)) and {e.article for e in held_out} == set(
        range(38, 48))
    assert held_out[0].title == "Intergovernmental_Panel_on_Climate_Change"
    assert held_out[-1].title == "Force"
    with pytest.raises(ValueError, match="first_n=48"):
        split_articles(dev, 48)


def gold_logits(features, seed=0):
    """Noise, with the gold start and end tokens of each window (the [CLS] token where the
    window does not hold the answer) well above it."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=features.input_ids.shape).astype(np.float32)
    end = rng.normal(size=features.input_ids.shape).astype(np.float32)
    rows = np.arange(len(features))
    start[rows, features.start_positions] += 20
    end[rows, features.end_positions] += 20
    return start, end


def check_gold_decoding(examples, features, max_answer_len):
    """Decodes the gold logits; returns (examples no window holds, examples whose answer does
    not start and end on token boundaries); every other one decodes to its first answer's
    exact characters, with EM and F1 of 100."""
    start, end = gold_logits(features)
    best = nbest_spans(features, start, end, max_answer_len=max_answer_len)
    predictions = decode_spans(features, start, end, max_answer_len=max_answer_len)
    assert set(predictions) == {e.id for e in examples}
    in_a_window = set(features.example_index[features.start_positions > 0].tolist())
    no_window, off_boundary, fits = [], [], {}
    for i, e in enumerate(examples):
        a = e.answers[0]
        span = (a["answer_start"], a["answer_start"] + len(a["text"]))
        if i not in in_a_window:
            no_window.append(e.id)
            continue
        spans = best[e.id]
        assert spans[0].text == predictions[e.id]
        assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
        assert len({(s.char_start, s.char_end) for s in spans}) == len(spans)
        if (spans[0].char_start, spans[0].char_end) != span:
            # The tokens cover the answer but go past it ("gold" in "golden").
            assert spans[0].char_start <= span[0] and span[1] <= spans[0].char_end, e.id
            off_boundary.append(e.id)
            continue
        assert predictions[e.id] == a["text"]
        fits[e.id] = [g["text"] for g in e.answers]
    scores = squad_scores({q: predictions[q] for q in fits}, fits)
    assert scores["exact_match"] == scores["f1"] == 100.0
    return no_window, off_boundary


def test_gold_logits_decode_to_the_answers_held_out_articles(dev, bert):
    """The last 10 articles (1,988 questions) at run_qa.py's max_len 384, stride 128."""
    _, held_out = split_articles(dev)
    features = make_windows(held_out, bert, max_len=384, doc_stride=128)
    assert len(features) > len(held_out)  # some contexts need several windows
    no_window, off_boundary = check_gold_decoding(held_out, features, max_answer_len=384)
    print(f"\n{len(held_out)} questions: {len(no_window)} with no window holding the answer, "
          f"{len(off_boundary)} with an answer inside a token")
    assert len(no_window) == 0 and len(off_boundary) <= 10


def test_gold_logits_decode_through_many_small_windows(dev, bert):
    """Short windows (64 tokens, 16 shared): most contexts are cut into many windows, and an
    answer longer than the overlap can straddle two windows and fit in neither."""
    examples = dev[-400:]
    features = make_windows(examples, bert, max_len=64, doc_stride=16, max_query_len=24)
    assert len(features) > 5 * len(examples)
    no_window, off_boundary = check_gold_decoding(examples, features, max_answer_len=64)
    print(f"\n{len(examples)} questions at max_len 64: {len(no_window)} with no window holding "
          f"the answer, {len(off_boundary)} with an answer inside a token")
    assert 0 < len(no_window) <= 0.05 * len(examples) and len(off_boundary) <= 5


@pytest.mark.slow
def test_gold_logits_decode_to_the_answers_whole_dev_set(dev, bert):
    features = make_windows(dev, bert)
    no_window, off_boundary = check_gold_decoding(dev, features, max_answer_len=384)
    print(f"\n{len(dev)} questions: {len(no_window)} with no window holding the answer, "
          f"{len(off_boundary)} with an answer inside a token")
    assert len(no_window) == 0 and len(off_boundary) == 32
    # The official score of a perfect token-level reader: all gold answers count.
    start, end = gold_logits(features)
    scores = squad_scores(decode_spans(features, start, end, max_answer_len=384),
                          {e.id: [a["text"] for a in e.answers] for e in dev})
    print(f"official scores of the gold spans: {scores}")
    assert scores["exact_match"] > 99.7 and scores["f1"] > 99.8


def hf_tokenizer(name, tmp_path, files):
    transformers = pytest.importorskip("transformers")
    for source in files:
        target = {"encoder.json": "vocab.json", "vocab.bpe": "merges.txt"}.get(source.name, source.name)
        shutil.copyfile(source, tmp_path / target)
    return getattr(transformers, name).from_pretrained(tmp_path)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_windows_match_hugging_face_run_qa(kind, dev, request, tmp_path):
    """run_qa.py's tokenisation: truncation="only_second", stride, overflowing tokens, offsets
    of context tokens only."""
    tok = request.getfixturevalue(kind)
    if kind == "bert":
        hf = hf_tokenizer("BertTokenizerFast", tmp_path, [require_real_data(BERT_VOCAB) / BERT_VOCAB])
    else:
        root = require_real_data(*GPT2_FILES)
        hf = hf_tokenizer("RobertaTokenizerFast", tmp_path, [root / f for f in GPT2_FILES])
    long_first = sorted(dev, key=lambda e: -len(e.context))[:150] + dev[:150]
    for max_len, stride in [(384, 128), (128, 48)]:
        features = make_windows(long_first, tok, max_len=max_len, doc_stride=stride)
        want = hf([e.question for e in long_first], [e.context for e in long_first],
                  truncation="only_second", max_length=max_len, stride=stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length",
                  return_token_type_ids=True)
        np.testing.assert_array_equal(features.example_index, want["overflow_to_sample_mapping"])
        np.testing.assert_array_equal(features.input_ids, want["input_ids"])
        np.testing.assert_array_equal(features.segment_ids, want["token_type_ids"])
        np.testing.assert_array_equal(features.mask, np.asarray(want["attention_mask"], bool))
        context = np.asarray([[s == 1 for s in want.sequence_ids(f)] for f in range(len(features))])
        offsets = np.where(context[..., None], np.asarray(want["offset_mapping"]), -1)
        np.testing.assert_array_equal(features.offsets, offsets)


def test_windows_of_a_long_context(bert):
    words = [f"w{i}" for i in range(700)]
    context = " ".join(words)
    answer_start = context.index("w650 ")
    example = SquadExample("q", "t", context, "which word?", [
        {"text": "w650 w651", "answer_start": answer_start}], 0)
    tokens = bert.encode(context)
    question = bert.encode("which word?")
    short = SquadExample("s", "t", "a short context", "which?", [{"text": "short", "answer_start": 2}], 0)
    empty = SquadExample("e", "t", "", "which?", [], 0)
    max_len, stride = 200, 50
    features = make_windows([example, short, empty], bert, max_len=max_len, doc_stride=stride)
    ours = np.flatnonzero(features.example_index == 0)
    per_window = max_len - 3 - len(question)
    assert len(ours) == int(np.ceil((len(tokens) - stride) / (per_window - stride))) > 3
    assert features.input_ids.shape == (len(features), max_len)
    assert features.mask[ours[:-1]].all() and features.mask[ours[-1]].sum() < max_len
    begin = 2 + len(question)
    windows = []
    for f in ours:
        ids = features.input_ids[f][features.mask[f]]
        assert ids[0] == bert.special_ids["cls"] and ids[-1] == bert.special_ids["sep"]
        assert ids[begin - 1] == bert.special_ids["sep"]
        np.testing.assert_array_equal(ids[1:begin - 1], question)
        assert (features.segment_ids[f][:begin] == 0).all()
        assert (features.segment_ids[f][features.mask[f]][begin:] == 1).all()
        window = ids[begin:-1]
        start = features.window_start[f]
        np.testing.assert_array_equal(window, tokens[start:start + len(window)])
        windows.append((start, start + len(window)))
        offsets = features.offsets[f]
        assert (offsets[:begin] == -1).all() and (offsets[begin + len(window):] == -1).all()
        text = [context[a:b] for a, b in offsets[begin:begin + len(window)]]
        assert text == [bert.id_to_token(i).removeprefix("##") for i in window]
    for (_, b0), (a1, _) in zip(windows, windows[1:]):
        assert b0 - a1 == stride  # neighbours share exactly doc_stride tokens
    assert windows[0][0] == 0 and windows[-1][1] == len(tokens)
    covered = np.zeros(len(tokens), bool)
    for a, b in windows:
        covered[a:b] = True
    assert covered.all()
    first = len(bert.encode(context[:answer_start]))
    last = first + len(bert.encode("w650 w651")) - 1
    holds = [f for f, (a, b) in zip(ours, windows) if a <= first and last < b]
    assert len(holds) == 2 and holds == [f for f in ours if features.start_positions[f] > 0]
    for f in ours:
        if f in holds:
            s, e = features.start_positions[f], features.end_positions[f]
            a, b = features.offsets[f, s, 0], features.offsets[f, e, 1]
            assert context[a:b] == "w650 w651"
        else:
            assert features.start_positions[f] == features.end_positions[f] == 0
    # A short context: one window; an empty one: one window with no context tokens.
    (s_row,), (e_row,) = np.flatnonzero(features.example_index == 1), np.flatnonzero(
        features.example_index == 2)
    s, e = features.start_positions[s_row], features.end_positions[s_row]
    assert s == e and bert.id_to_token(features.input_ids[s_row, s]) == "short"
    assert (features.offsets[e_row] == -1).all() and features.start_positions[e_row] == 0
    with pytest.raises(ValueError, match=f"leaves {per_window} context tokens .*doc_stride={per_window}"):
        make_windows([example], bert, max_len=200, doc_stride=per_window)


def test_decode_spans_rules(bert):
    """The best valid span wins over better ones that end before they start, are too long or
    lie outside the context; the windows of an example are searched together, and a span two
    windows share is listed once, with its better score."""
    context = "alpha beta gamma delta epsilon zeta eta theta omega kappa lambda mu nu"
    assert len(bert.encode(context)) == len(context.split()) == 13
    example = SquadExample("q", "t", context, "greek?", [{"text": "gamma", "answer_start": 11}], 0)
    features = make_windows([example], bert, max_len=12, doc_stride=2, max_query_len=8)
    # [CLS] greek ? [SEP], then 7 context tokens (words) a window, 5 apart.
    assert features.window_start.tolist() == [0, 5, 10]
    begin = 4

    def pos(window, token):  # a context token's position in a window
        return begin + token - features.window_start[window]

    def text(a, b):
        return " ".join(context.split()[a:b + 1])

    start = np.full(features.input_ids.shape, -1000, np.float32)
    end = start.copy()
    start[:, :begin] = end[:, :begin] = 100  # [CLS], the question and [SEP]: no offsets
    start[2, pos(2, 11)], end[2, pos(2, 10)] = 50, 50  # "mu" to "lambda": ends before it starts
    start[1, pos(1, 7)], end[1, pos(1, 11)] = 9, 9  # "theta omega kappa lambda mu"
    start[0, pos(0, 1)], end[0, pos(0, 1)] = 7, 7  # "beta"
    start[0, pos(0, 6)] = end[0, pos(0, 6)] = 5  # "eta", in windows 0 and 1
    start[1, pos(1, 6)] = end[1, pos(1, 6)] = 6
    assert decode_spans(features, start, end)["q"] == text(7, 11)
    assert decode_spans(features, start, end, max_answer_len=4)["q"] == "beta"
    spans = nbest_spans(features, start, end, n_best=2, max_answer_len=4)["q"]
    assert [(s.text, s.score, s.start_logit) for s in spans] == [("beta", 14, 7), ("eta", 12, 6)]
    assert (spans[1].char_start, spans[1].char_end) == (context.index(" eta ") + 1, context.index(" theta"))
    empty = make_windows([SquadExample("e", "t", "", "greek?", [], 0)], bert, max_len=12,
                         doc_stride=2, max_query_len=8)
    logits = np.zeros(empty.input_ids.shape)
    assert decode_spans(empty, logits, logits) == {"e": ""}  # no context token: no span
    with pytest.raises(ValueError, match=r"start_logits has shape \(3, 1\), expected \(3, 12\)"):
        decode_spans(features, start[:, :1], end)


@pytest.mark.parametrize("edit, where", [
    (lambda d: d.pop("data"), "data: missing"),
    (lambda d: d["data"][1]["paragraphs"].__setitem__(0, []),
     r"data\[1\]\.paragraphs\[0\]: expected an object, got list"),
    (lambda d: d["data"][1]["paragraphs"][0].__setitem__("context", 3),
     r"data\[1\]\.paragraphs\[0\]\.context: expected a string"),
    (lambda d: d["data"][1]["paragraphs"][0]["qas"][1]["answers"][0].__setitem__("answer_start", "4"),
     r"data\[1\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]\.answer_start: expected an integer"),
    (lambda d: d["data"][1]["paragraphs"][0]["qas"][1]["answers"][0].__setitem__("answer_start", True),
     r"data\[1\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]\.answer_start: expected an integer, got True"),
    (lambda d: d["data"][1]["paragraphs"][0]["qas"][1]["answers"][0].__setitem__("answer_start", 5),
     r"data\[1\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]\.answer_start: the context at 5 reads "
     r"'ird ', not the answer text 'bird'"),
    (lambda d: d["data"][1]["paragraphs"][0]["qas"][1].pop("question"),
     r"data\[1\]\.paragraphs\[0\]\.qas\[1\]\.question: missing"),
    (lambda d: d["data"][1]["paragraphs"][0]["qas"][1].__setitem__("id", "a"),
     r"data\[1\]\.paragraphs\[0\]\.qas\[1\]\.id: 'a' is also the id of data\[0\]"),
])
def test_malformed_files_name_the_file_and_field(tmp_path, edit, where):
    good = {"version": "1.1", "data": [
        {"title": "A", "paragraphs": [{"context": "a cat sat", "qas": [
            {"id": "a", "question": "who sat?", "answers": [{"text": "cat", "answer_start": 2}]}]}]},
        {"title": "B", "paragraphs": [{"context": "the bird sang", "qas": [
            {"id": "b", "question": "what sang?", "answers": [{"text": "bird", "answer_start": 4}]},
            {"id": "c", "question": "what?", "answers": [{"text": "bird", "answer_start": 4}]}]}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(good))
    assert [e.id for e in read_squad(path)] == ["a", "b", "c"]
    edit(good)
    path.write_text(json.dumps(good))
    with pytest.raises(ValueError, match=rf"squad\.json: {where}"):
        read_squad(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        read_squad(tmp_path / "nothing.json")
    path = tmp_path / "broken.json"
    path.write_text('{"data": [')
    with pytest.raises(ValueError, match="broken.json: not UTF-8 JSON"):
        read_squad(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="broken.json: the top level: expected an object"):
        read_squad(path)
