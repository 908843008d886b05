"""The token_tagging task: labels on first sub-words (WordPiece and byte-level BPE), the
truncation of long sentences and its count, gold tags scored through the eval's own decoding,
a tiny CoNLL-2003-like run whose best checkpoint is chosen by entity F1, and users' files."""

import importlib.util
import json

import numpy as np
import pytest

import llm_jax
from llm_jax.data.bert_tokenizers import RobertaBPETokenizer, WordPieceTokenizer
from llm_jax.data.tagging_data import UNK
from llm_jax.data.word_pieces import encode_words
from llm_jax.tasks.tagging import LABELS_FILE, TokenTagging
from llm_jax.training.commands import train
from llm_jax.training.metrics import read_metrics
from llm_jax.training.trainer import BEST_DIR
from tests.conftest import REPO, load_config, require_real_data

VOCAB = "tokenizers/bert-base-uncased/vocab.txt"
GPT2 = ("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")
ENTITIES = {"PER": ["john", "mary smith", "peter blackburn"], "LOC": ["paris", "new york", "berlin"],
            "ORG": ["reuters", "acme corp", "united nations"], "MISC": ["german", "world cup", "french"]}
FILLER = "the said on in of to and a visited met from with".split()


def conll_lines(sentences):
    """CoNLL-2003's layout: a -DOCSTART- line, then 'word POS chunk NER' lines."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in sentences:
        lines += [f"{w} NN B-NP {t}" for w, t in zip(words, tags)] + [""]
    return "\n".join(lines) + "\n"


def random_sentences(n, seed):
    """Filler words around one or two entities; each entity word gives its tag away."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(rng.integers(1, 3))):
            words.append(str(rng.choice(FILLER)))
            tags.append("O")
            kind = str(rng.choice(sorted(ENTITIES)))
            ent = str(rng.choice(ENTITIES[kind])).split()
            words += ent
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(ent) - 1)
        words.append(str(rng.choice(FILLER)))
        tags.append("O")
        out.append((words, tags))
    return out


def write_conll(path, sentences):
    path.write_text(conll_lines(sentences), encoding="utf-8")


def tiny(tmp_path, n_train=64, n_dev=24, **data):
    """configs/ner_conll2003.py:tiny on files in tmp_path, with a WordPiece vocabulary fitted on
    the training sentences (no data directory needed) unless `data` says otherwise."""
    write_conll(tmp_path / "train.txt", random_sentences(n_train, 1))
    write_conll(tmp_path / "valid.txt", random_sentences(n_dev, 2))
    c = load_config("ner_conll2003", "tiny")
    c.task.update(train_file=str(tmp_path / "train.txt"), eval_file=str(tmp_path / "valid.txt"))
    c.data.update(vocab_file="fit", vocab_size=120)
    c.data.update(**data)
    return c


def one_hot_gold_ids(task, examples, seed=0):
    """The argmax of logits that are one-hot at each word's gold tag on its first sub-word and
    random everywhere else, batch by batch as the eval reads the split."""
    from llm_jax.data.example_batches import padded_batches

    rng = np.random.default_rng(seed)
    C = len(task.tag_names)
    out = []
    for batch in padded_batches(examples, 8):
        logits = rng.normal(size=(*batch["labels"].shape, C))
        first = batch["label_weights"] > 0
        logits[first] = 10.0 * np.eye(C)[batch["labels"][first]]
        out.append(logits.argmax(-1)[batch["weights"] > 0])
    return np.concatenate(out)


def test_labels_sit_on_the_first_wordpiece_of_each_word():
    root = require_real_data(VOCAB)
    tok = WordPieceTokenizer.from_vocab_file(root / VOCAB)
    words = ["Peter", "unbelievably", "visited", "U.S.-based", "\u200b", "Reuters"]
    p = encode_words(tok, [words], 32)
    pieces = [tok.id_to_token(i) for i in p.input_ids[0, :p.lengths[0]]]
    assert pieces == ["[CLS]", "peter", "un", "##bel", "##ie", "##va", "##bly", "visited", "u", ".",
                      "s", ".", "-", "based", "[UNK]", "reuters", "[SEP]"]
    # a word the normaliser empties (a zero-width space) is [UNK], so it still has a label slot
    assert p.first[0].tolist() == [1, 2, 7, 8, 14, 15]
    labels = p.token_labels([[1, 2, 0, 3, 0, 4]])[0]
    assert labels[:17].tolist() == [-1, 1, 2, -1, -1, -1, -1, 0, 3, -1, -1, -1, -1, -1, 0, 4, -1]
    assert (labels[17:] == -1).all() and p.cut_words == 0 and not p.truncated.any()
    # the positions are Hugging Face's word_ids() first occurrences (it drops the emptied word)
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizerFast(str(root / VOCAB))
    enc = hf([w for w in words if w != "\u200b"], is_split_into_words=True)
    word_ids = enc.word_ids()
    hf_first = [word_ids.index(j) for j in range(5)]
    assert hf_first == [1, 2, 7, 8, 14]
    assert enc.tokens()[:14] == pieces[:14]


def test_byte_level_bpe_words_after_the_first_carry_their_space():
    root = require_real_data(*GPT2)
    tok = RobertaBPETokenizer.from_files(root / GPT2[0], root / GPT2[1])
    words = ["EU", "rejects", "Blackburn's", "U.S.-based", "call"]
    p = encode_words(tok, [words], 32)
    row = p.input_ids[0, :p.lengths[0]]
    pieces = [tok.id_to_token(i) for i in row]
    assert pieces[0] == "<s>" and pieces[-1] == "</s>"
    # exactly the pieces of the running text, as pre-training saw it
    assert row[1:-1].tolist() == tok.encode(" ".join(words)).tolist()
    firsts = [pieces[i] for i in p.first[0, :5]]
    assert firsts[0] == "EU" and all(f.startswith("\u0120") for f in firsts[1:])
    assert firsts[1:] == ["\u0120rejects", "\u0120Blackburn", "\u0120U", "\u0120call"]
    assert len(row) - 2 > len(words) + 3  # "Blackburn's" and "U.S.-based" are several pieces
    # Hugging Face's is_split_into_words (add_prefix_space=True) agrees after the first word
    transformers = pytest.importorskip("transformers")
    hf = transformers.RobertaTokenizerFast(str(root / GPT2[0]), str(root / GPT2[1]),
                                           add_prefix_space=True)
    enc = hf(words, is_split_into_words=True, add_special_tokens=False)
    word_ids = enc.word_ids()
    assert enc.tokens()[0] == "\u0120EU"
    assert enc.tokens()[word_ids.index(1):] == pieces[2:-1]


def test_long_sentences_are_cut_and_their_cut_words_counted(tmp_path):
    c = tiny(tmp_path, seq_len=12)
    long = (["the"] * 8 + ["john", "paris", "berlin", "the"],
            ["O"] * 8 + ["B-PER", "B-LOC", "B-LOC", "O"])
    short = (["paris", "said"], ["B-LOC", "O"])
    write_conll(tmp_path / "dev2.txt", [long, short, long])
    c.task.eval_file = str(tmp_path / "dev2.txt")
    task = TokenTagging(c, str(tmp_path / "w"))
    ex = task.valid
    # 12 words: at least "berlin" and the last "the" lose their first piece to the 10 slots
    assert ex.pieces.truncated.tolist() == [True, False, True]
    kept = int((ex.pieces.first[0, :12] >= 0).sum())
    assert kept <= 10 and ex.pieces.cut_words == 2 * (12 - kept)
    row = ex.rows(np.array([0]))
    assert row["mask"][0].all() and row["input_ids"][0, -1] == task.tokenizer.special_ids["sep"]
    assert row["label_weights"][0].sum() == kept  # training learns only from the words that fit
    # eval: the words that fit are tagged from the model, the rest "O"; gold tags kept whole
    tags = task.word_tags(ex, one_hot_gold_ids(task, ex))
    assert tags[1] == short[1] and tags[0][:kept] == long[1][:kept]
    assert tags[0][kept:] == ["O"] * (12 - kept) and ex.tags[0] == long[1]
    scores = task.scores(ex, {"tags": tags})
    assert scores["ner_cut_words"] == ex.pieces.cut_words and scores["ner_recall"] < 100.0


def test_gold_tags_through_the_eval_decoding_score_100(tmp_path):
    task = TokenTagging(tiny(tmp_path), str(tmp_path / "w"))
    ex = task.valid
    p = ex.pieces
    n_pieces = np.concatenate([np.diff([*p.first[n, :p.num_words[n]], p.lengths[n] - 1])
                               for n in range(len(ex))])
    assert (n_pieces > 1).sum() > 10 and (n_pieces == 1).any()  # words of one and more pieces
    ids = one_hot_gold_ids(task, ex)
    assert task.scores(ex, {"tags": task.word_tags(ex, ids)})["ner_f1"] == 100.0
    # the same one-hot tags one position late (on a word's second piece or the next word) do not
    late = np.roll(ids, 1, axis=1)
    assert task.scores(ex, {"tags": task.word_tags(ex, late)})["ner_f1"] < 100.0


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner")
    c = tiny(tmp)
    summary = train(c, str(tmp / "run"))
    return c, tmp / "run", summary


def test_tiny_ner_run_learns_and_keeps_the_best_checkpoint_by_entity_f1(ner_run):
    c, workdir, summary = ner_run
    rows = list(read_metrics(workdir / "metrics.jsonl"))
    evals = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in evals] == [5, 10, 15, 20]
    keys = {"eval/loss", "eval/token_accuracy", "eval/ner_precision", "eval/ner_recall",
            "eval/ner_f1", "eval/ner_cut_words"}
    assert keys <= evals[0].keys()
    assert evals[-1]["eval/loss"] < evals[0]["eval/loss"]
    assert summary["eval/ner_f1"] >= 80.0 and summary["eval/ner_cut_words"] == 0
    best = max(r["eval/ner_f1"] for r in evals)
    assert c.train.best_metric == "eval/ner_f1" and summary["best/eval/ner_f1"] == best
    first_best = next(r["step"] for r in evals if r["eval/ner_f1"] == best)
    assert [p.name for p in (workdir / BEST_DIR).iterdir()] == [str(first_best)]
    labels = json.loads((workdir / LABELS_FILE).read_text())
    assert labels["tags"] == ["O", UNK, "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                              "B-PER", "I-PER"]
    model, tokenizer, _ = llm_jax.load(str(workdir))
    task = TokenTagging(c, str(workdir))  # the saved tokenizer and labels
    predicted = task.predict(model, task.valid)["tags"]
    assert len(predicted) == len(task.valid) and all(
        len(p) == len(t) for p, t in zip(predicted, task.valid.tags))


def test_a_users_file_unknown_and_malformed_tags(tmp_path):
    c = tiny(tmp_path)
    # well-formed but not in training: "UNK" for the loss, scored as the file's own tag
    write_conll(tmp_path / "dev2.txt", [(["paris", "olympics"], ["B-LOC", "B-EVENT"])])
    c.task.eval_file = str(tmp_path / "dev2.txt")
    task = TokenTagging(c, str(tmp_path / "w"))
    ex = task.valid
    assert ex.labels[0, ex.pieces.first[0, 1]] == task.tag_names.index(UNK)
    assert ex.tags == [["B-LOC", "B-EVENT"]]
    s = task.scores(ex, {"tags": task.word_tags(ex, one_hot_gold_ids(task, ex))})
    assert s["ner_precision"] == 100.0 and s["ner_recall"] == 50.0  # UNK is read as "O"
    # malformed: the reader's one-line error, naming file and line
    text = conll_lines([(["paris", "said"], ["B-LOC", "O"]), (["john"], ["B_PER"])])
    (tmp_path / "bad.txt").write_text(text, encoding="utf-8")
    c.task.eval_file = str(tmp_path / "bad.txt")
    with pytest.raises(ValueError) as e:
        TokenTagging(c, str(tmp_path / "w2"))
    assert str(e.value) == (f"{tmp_path / 'bad.txt'}:6: field 'NER': expected O, B-TYPE or "
                            "I-TYPE, got 'B_PER'")


def test_bad_configs_name_the_field(tmp_path):
    c = tiny(tmp_path)
    c.model.num_labels = 9
    with pytest.raises(ValueError, match=r"config.model.num_labels=9, but the training split's "
                                         r"tag vocabulary has 10 \(O, UNK, B-LOC, .*set "
                                         r"config.model.num_labels=10"):
        TokenTagging(c, str(tmp_path / "w"))
    assert not (tmp_path / "w" / LABELS_FILE).exists()  # nothing saved for a run that failed
    c = tiny(tmp_path)
    c.model.head = "classification"
    with pytest.raises(ValueError, match="model.head='token'"):
        TokenTagging(c, str(tmp_path / "w"))
    c = tiny(tmp_path, seq_len=100)
    with pytest.raises(ValueError, match=r"raise config.model.backbone.max_len=64"):
        TokenTagging(c, str(tmp_path / "w"))


def test_config_recipe_and_the_real_conll_sizes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ner_config", REPO / "configs" / "ner_conll2003.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mini = module.get_config("bert_mini")
    assert (mini.optimizer.lr, mini.train.batch_size, mini.train.epochs, mini.data.seq_len) == (
        5e-5, 32, 3, 128)
    assert (mini.optimizer.warmup_steps, mini.optimizer.warmup_fraction) == (0, 0.1)
    assert mini.init_from_prefix == "backbone" and mini.train.best_metric == "eval/ner_f1"
    assert module.get_config("scratch").init_from_prefix == ""
    with pytest.raises(ValueError, match="unknown variant 'base'"):
        module.get_config("base")
    root = require_real_data("conll2003/train.txt", "conll2003/valid.txt")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
    from llm_jax.data.tagging_data import read_conll2003, tag_names

    train_split = read_conll2003("train")
    assert len(train_split) == 14041
    assert len(tag_names(train_split)) == module.NUM_TAGS


def test_ner_with_a_crf_learns_the_sentence_nll_and_decodes_the_viterbi_path(tmp_path):
    """model.crf=True on the token head: the loss is the mean sentence NLL of the word chain
    (ops/crf.py, tested against enumeration there), and a short run still learns."""
    from flax import nnx

    from llm_jax.models import build_model
    from llm_jax.ops.crf import crf_log_likelihood

    c = tiny(tmp_path)
    c.model.crf = True
    task = TokenTagging(c, str(tmp_path / "w"))
    c.model.vocab_size = task.vocab_size
    model = build_model(c.model, rngs=nnx.Rngs(0))
    model.crf.transitions[...] = np.random.default_rng(0).normal(
        size=model.crf.transitions[...].shape).astype(np.float32)
    batch = next(iter(task.eval_batches(8)))
    emissions = np.asarray(model(batch["input_ids"], batch["segment_ids"], batch["mask"])["logits"])
    nll = [-float(crf_log_likelihood(emissions[n:n + 1, pos], batch["labels"][n:n + 1, pos],
                                     np.ones((1, len(pos)), bool), *model.crf.arrays())[0])
           for n in range(8)
           for pos in [task.valid.pieces.first[n, :task.valid.pieces.num_words[n]]]]
    loss, m = task.loss(model, batch)
    assert float(loss) == pytest.approx(np.mean(nll), rel=1e-5) and float(m["loss"][1]) == 8
    summary = train(c, str(tmp_path / "run"))
    assert summary["eval/ner_f1"] > 50.0
