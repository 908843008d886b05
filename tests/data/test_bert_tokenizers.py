"""BERT WordPiece, RoBERTa byte-level BPE and ALBERT SentencePiece tokenizers: ids, pairs,
segment ids, offsets and truncation identical to transformers' fast tokenizers on all of
WikiText-2 valid and SST-2 dev; vocabularies trained here; save/load; bad files.

The transformers references are built with `from_pretrained(directory)`: in transformers 5,
`BertTokenizerFast(vocab_file=...)` (and the RoBERTa and ALBERT ones) silently ignore the file
and give a 5-token vocabulary.
"""

import json
import shutil

import numpy as np
import pytest

from llm_jax.data import (
    AlbertSentencePieceTokenizer,
    RobertaBPETokenizer,
    SentencePieceTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    make_tokenizer,
)
from tests.conftest import require_real_data

transformers = pytest.importorskip("transformers")

BERT_VOCAB = "tokenizers/bert-base-uncased/vocab.txt"
GPT2_FILES = ("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")
WIKI_VALID, WIKI_TRAIN = "wikitext-2/wiki.valid.tokens", "wikitext-2/wiki.train.tokens"
SST2_DEV = "glue/SST-2/dev.tsv"
ALBERT_SYMBOLS = ["(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac"]
# What the two corpora lack: CJK (split per character), accents, control and zero-width
# characters, ligatures (NFKC), `` '' quotes (ALBERT), special tokens in the text, a word over
# WordPiece's 100-character limit, whitespace-only and empty texts.
EDGE_TEXTS = ["Café naïve Zürich 東京タワー 한국어", "tabs\tand\u00a0no-break\u3000spaces  \n",
              "control\x00\x07chars\u200bzero\ufeffwidth", "emoji 🤗 and the ﬁ ligature, ½ x²",
              "``quoted'' -- 1,000.50 $ (x) [y] {z}", "[MASK] [mask] <mask> <s> [CLS] </s>",
              "a" * 150, "", "   "]


def hf_dir(tmp_path, **files):
    """A directory holding only `files` ({name in the directory: source path}), for
    from_pretrained (our own tokenizer.json beside them would be read as transformers' one)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        shutil.copyfile(source, tmp_path / name)
    return tmp_path


@pytest.fixture(scope="module")
def texts():
    root = require_real_data(WIKI_VALID, SST2_DEV)
    wiki = (root / WIKI_VALID).read_text(encoding="utf-8")
    sst = [line.split("\t")[0]
           for line in (root / SST2_DEV).read_text(encoding="utf-8").splitlines()[1:]]
    assert len(sst) == 872
    return wiki, sst


@pytest.fixture(scope="module")
def bert():
    root = require_real_data(BERT_VOCAB)
    return WordPieceTokenizer.from_vocab_file(root / BERT_VOCAB)


@pytest.fixture(scope="module")
def hf_bert(tmp_path_factory):
    root = require_real_data(BERT_VOCAB)
    directory = hf_dir(tmp_path_factory.mktemp("hf_bert"), **{"vocab.txt": root / BERT_VOCAB})
    return transformers.BertTokenizerFast.from_pretrained(directory, do_lower_case=True)


@pytest.fixture(scope="module")
def roberta():
    root = require_real_data(*GPT2_FILES)
    return RobertaBPETokenizer.from_files(*(root / f for f in GPT2_FILES))


def hf_roberta_from(directory):
    # <mask> with lstrip as in roberta-base's tokenizer files (and transformers 4); transformers 5
    # leaves it off when it builds RoBERTa from bare vocab/merges files.
    mask = transformers.AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False,
                                   special=True)
    return transformers.RobertaTokenizerFast.from_pretrained(directory, mask_token=mask)


@pytest.fixture(scope="module")
def hf_roberta(tmp_path_factory):
    root = require_real_data(*GPT2_FILES)
    directory = hf_dir(tmp_path_factory.mktemp("hf_roberta"), **{
        "vocab.json": root / GPT2_FILES[0], "merges.txt": root / GPT2_FILES[1]})
    return hf_roberta_from(directory)


@pytest.fixture(scope="module")
def albert_model(tmp_path_factory):
    """A unigram spiece.model trained on 2 MB of WikiText-2 train with ALBERT's spm_train flags
    (google-research/albert), so its specials sit at ALBERT's ids."""
    import sentencepiece as spm

    root = require_real_data(WIKI_TRAIN)
    with open(root / WIKI_TRAIN, encoding="utf-8") as f:
        lines = [line.lower() for line in f.read(2_000_000).splitlines() if line.strip()]
    directory = tmp_path_factory.mktemp("albert")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(directory / "spiece"), vocab_size=8000,
        model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"], user_defined_symbols=ALBERT_SYMBOLS,
        character_coverage=0.99995, num_threads=2, minloglevel=2)
    return directory / "spiece.model"


@pytest.fixture(scope="module")
def albert(albert_model):
    return AlbertSentencePieceTokenizer.from_file(albert_model)


@pytest.fixture(scope="module")
def hf_albert(albert_model, tmp_path_factory):
    directory = hf_dir(tmp_path_factory.mktemp("hf_albert"), **{"spiece.model": albert_model})
    hf = transformers.AlbertTokenizerFast.from_pretrained(directory)
    assert len(hf) == 8000
    return hf


def assert_batch_parity(ours, hf, texts, pairs=None, max_length=None):
    got = ours.encode_batch(texts, pairs, max_length=max_length)
    want = hf(texts, pairs, truncation="longest_first" if max_length else False,
              max_length=max_length, return_offsets_mapping=True, return_token_type_ids=True)
    lengths = got["mask"].sum(1)
    assert lengths.tolist() == [len(ids) for ids in want["input_ids"]]
    assert not got["mask"][np.arange(got["mask"].shape[1]) >= lengths[:, None]].any()
    real = got["mask"]
    np.testing.assert_array_equal(got["input_ids"][real], np.concatenate(want["input_ids"]))
    np.testing.assert_array_equal(got["segment_ids"][real],
                                  np.concatenate(want["token_type_ids"]))
    np.testing.assert_array_equal(got["offsets"][real],
                                  np.concatenate(want["offset_mapping"]).reshape(-1, 2))
    sequence = [-1 if s is None else s for i in range(len(texts)) for s in want.sequence_ids(i)]
    np.testing.assert_array_equal(got["sequence_ids"][real], sequence)
    assert (got["input_ids"][~real] == ours.special_ids["pad"]).all()
    return got


def check_parity(ours, hf, texts, pairs_max_length=64):
    """Ids of the whole text and of each line, single texts with specials and offsets, and a few
    hundred pairs, with and without truncation."""
    wiki, sst = texts
    lines = wiki.split("\n")
    np.testing.assert_array_equal(ours.encode(wiki), hf(wiki, add_special_tokens=False).input_ids)
    want = hf(lines + sst, add_special_tokens=False)["input_ids"]
    assert [ids.tolist() for ids in ours.encode_lines(lines + sst)] == want
    assert_batch_parity(ours, hf, lines + sst + EDGE_TEXTS)
    assert_batch_parity(ours, hf, EDGE_TEXTS, EDGE_TEXTS[::-1])
    assert_batch_parity(ours, hf, lines[:300] + sst[:300], max_length=24)
    paragraphs = [line for line in lines if len(line) > 200][:300]
    for a, b in [(sst[:300], paragraphs), (paragraphs, sst[300:600]), (sst[:300], sst[300:600])]:
        assert_batch_parity(ours, hf, a, b)
        assert_batch_parity(ours, hf, a, b, max_length=pairs_max_length)


# BERT


def test_bert_uncased_parity(bert, hf_bert, texts):
    assert bert.vocab_size == len(hf_bert) == 30522
    assert bert.special_ids == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    check_parity(bert, hf_bert, texts)


def test_bert_matches_the_original_python_tokenizer(bert, texts):
    """The original algorithm (transformers' pure-Python BasicTokenizer + WordpieceTokenizer)."""
    slow_cls = getattr(transformers, "BertTokenizerLegacy", None) or transformers.BertTokenizer
    slow = slow_cls(vocab_file=str(require_real_data(BERT_VOCAB) / BERT_VOCAB))
    assert len(slow) == 30522
    wiki, sst = texts
    lines = wiki.split("\n") + sst
    assert [ids.tolist() for ids in bert.encode_lines(lines)] == [
        slow.encode(line, add_special_tokens=False) for line in lines]


def test_bert_cased_parity(hf_bert, texts, tmp_path):
    cased = WordPieceTokenizer.from_vocab_file(
        require_real_data(BERT_VOCAB) / BERT_VOCAB, lowercase=False)
    hf = transformers.BertTokenizerFast.from_pretrained(hf_bert.name_or_path, do_lower_case=False)
    assert cased.encode("Café")[0] == cased.special_ids["unk"]  # no capitals in this vocabulary
    wiki, sst = texts
    lines = wiki.split("\n")[:1000] + sst
    assert [ids.tolist() for ids in cased.encode_lines(lines)] == hf(
        lines, add_special_tokens=False)["input_ids"]
    assert_batch_parity(cased, hf, sst[:200], lines[:200], max_length=40)


def test_bert_pair_layout_offsets_and_mask_token(bert, hf_bert):
    out = assert_batch_parity(bert, hf_bert, ["Hello, World!"], ["Paris is the [MASK]."])
    tokens = [bert.id_to_token(i) for i in out["input_ids"][0]]
    assert tokens == ["[CLS]", "hello", ",", "world", "!", "[SEP]",
                      "paris", "is", "the", "[MASK]", ".", "[SEP]"]
    assert out["segment_ids"][0].tolist() == [0] * 6 + [1] * 6
    assert out["offsets"][0].tolist()[:5] == [[0, 0], [0, 5], [5, 6], [7, 12], [12, 13]]
    assert out["offsets"][0].tolist()[9] == [13, 19]  # "[MASK]" in the second text
    assert bert.decode(out["input_ids"][0]) == "hello, world! paris is the."


def test_wordpiece_fit_writes_a_vocab_txt_transformers_reads(texts, tmp_path):
    wiki, sst = texts
    tok = make_tokenizer("wordpiece", wiki, vocab_size=3000)
    assert isinstance(tok, WordPieceTokenizer) and tok.vocab_size == 3000
    assert tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert any(t.startswith("##") for t in tok.vocab) and "the" in tok.vocab
    assert tok.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    tok.save(tmp_path / "tok")
    assert (tmp_path / "tok" / "vocab.txt").read_text().split("\n")[:3] == ["[PAD]", "[UNK]", "[CLS]"]
    loaded = WordPieceTokenizer.from_vocab_file(tmp_path / "tok" / "vocab.txt")
    hf = transformers.BertTokenizerFast.from_pretrained(
        hf_dir(tmp_path / "hf", **{"vocab.txt": tmp_path / "tok" / "vocab.txt"}))
    assert loaded.vocab == tok.vocab and len(hf) == 3000
    assert_batch_parity(loaded, hf, sst, wiki.split("\n")[:len(sst)], max_length=64)


# RoBERTa


def test_roberta_parity_with_gpt2_files(roberta, hf_roberta, texts):
    # GPT-2's 50,257 tokens kept as they are, RoBERTa's specials appended as transformers does.
    assert roberta.vocab_size == len(hf_roberta) == 50262
    assert roberta.special_ids == {"cls": 50257, "sep": 50258, "unk": 50259, "pad": 50260,
                                   "mask": 50261}
    assert roberta.special_ids["pad"] == hf_roberta.pad_token_id
    check_parity(roberta, hf_roberta, texts)


def test_roberta_pair_layout_and_mask(roberta, hf_roberta):
    out = assert_batch_parity(roberta, hf_roberta, [" Hello <mask> world"], ["Second text"])
    tokens = [roberta.id_to_token(i) for i in out["input_ids"][0]]
    assert tokens == ["<s>", "ĠHello", "<mask>", "Ġworld", "</s>", "</s>", "Second", "Ġtext",
                      "</s>"]
    assert not out["segment_ids"].any()
    assert out["sequence_ids"][0].tolist() == [-1, 0, 0, 0, -1, -1, 1, 1, -1]
    assert out["offsets"][0].tolist()[1:4] == [[1, 6], [7, 13], [14, 19]]  # spaces trimmed
    text = "naïve café, 東京 \n\n tabs\tand  spaces "
    assert roberta.decode(roberta.encode(text)) == text  # byte-level: any text round-trips


def test_roberta_fit(texts, tmp_path):
    wiki, sst = texts
    tok = RobertaBPETokenizer.fit(wiki, vocab_size=1000, workdir=tmp_path / "tok")
    assert tok.vocab_size == 1000
    assert tok.special_ids == {"cls": 0, "pad": 1, "sep": 2, "unk": 3, "mask": 4}
    hf = hf_roberta_from(hf_dir(tmp_path / "hf", **{
        "vocab.json": tmp_path / "tok" / "vocab.json",
        "merges.txt": tmp_path / "tok" / "merges.txt"}))
    assert len(hf) == 1000
    assert_batch_parity(load_tokenizer(tmp_path / "tok"), hf, sst, sst[::-1], max_length=48)


# ALBERT


def test_albert_parity(albert, hf_albert, texts):
    assert albert.vocab_size == 8000
    assert albert.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert [albert.id_to_token(i) for i in range(5, 13)] == ALBERT_SYMBOLS
    check_parity(albert, hf_albert, texts)


def test_albert_pieces(albert, hf_albert):
    out = assert_batch_parity(albert, hf_albert, ["Hello, Wörld! (test)"], ["[MASK] it's"])
    tokens = [albert.id_to_token(i) for i in out["input_ids"][0][out["mask"][0]]]
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and "[MASK]" in tokens
    assert "▁world" in tokens and ["(", "▁test", ")"] == tokens[tokens.index("("):][:3]
    assert out["segment_ids"][0][out["mask"][0]].tolist() == [0] * (tokens.index("[SEP]") + 1) + [
        1] * (len(tokens) - tokens.index("[SEP]") - 1)


def test_albert_fit(texts, tmp_path):
    wiki, sst = texts
    tok = AlbertSentencePieceTokenizer.fit(sst, vocab_size=2000, workdir=tmp_path / "tok")
    assert tok.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert [tok.id_to_token(i) for i in range(5, 13)] == ALBERT_SYMBOLS
    assert tok.id_to_token(13) == "▁"
    hf = transformers.AlbertTokenizerFast.from_pretrained(
        hf_dir(tmp_path / "hf", **{"spiece.model": tmp_path / "tok" / "spiece.model"}))
    assert len(hf) == tok.vocab_size == 2000
    assert_batch_parity(load_tokenizer(tmp_path / "tok"), hf, sst, wiki.split("\n")[:len(sst)],
                        max_length=64)


# All three: batches, save/load, bad input


def test_encode_batch_format(bert, roberta, albert):
    for tok in (bert, roberta, albert):
        out = tok.encode_batch(["a b c", "", "a"], ["d", "e f", ""], pad_to=16)
        assert set(out) == {"input_ids", "segment_ids", "mask", "offsets", "sequence_ids"}
        assert out["input_ids"].dtype == out["segment_ids"].dtype == np.int32
        assert out["mask"].dtype == bool and out["offsets"].dtype == np.int32
        assert out["input_ids"].shape == (3, 16) and out["offsets"].shape == (3, 16, 2)
        assert (out["input_ids"][~out["mask"]] == tok.special_ids["pad"]).all()
        assert (out["input_ids"][:, 0] == tok.special_ids["cls"]).all()
        assert not out["offsets"][~out["mask"]].any()
        empty = tok.encode_batch([])
        assert empty["input_ids"].shape == (0, 0)
        with pytest.raises(ValueError, match="pad_to=2"):
            tok.encode_batch(["a b c"], pad_to=2)
        with pytest.raises(ValueError, match="max_length=3"):
            tok.encode_batch(["a"], ["b"], max_length=3)
        with pytest.raises(ValueError, match="2 texts but 1 pairs"):
            tok.encode_batch(["a", "b"], ["c"])
        with pytest.raises(TypeError):
            tok.encode_batch("a b c")


def test_save_and_load(bert, roberta, albert, texts, tmp_path):
    sst = texts[1]
    for tok in (bert, roberta, albert):
        tok.save(tmp_path / tok.kind)
        loaded = load_tokenizer(tmp_path / tok.kind)
        assert type(loaded) is type(tok) and loaded.special_ids == tok.special_ids
        assert loaded.vocab_size == tok.vocab_size
        a, b = tok.encode_batch(sst, sst[::-1]), loaded.encode_batch(sst, sst[::-1])
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    cased = WordPieceTokenizer(bert.vocab, lowercase=False)
    cased.save(tmp_path / "cased")
    assert load_tokenizer(tmp_path / "cased").encode("Hello").tolist() == cased.encode("Hello").tolist()
    (tmp_path / "wordpiece" / "vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        load_tokenizer(tmp_path / "wordpiece")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "missing.txt")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(ValueError, match=r"vocab.txt: .*no \[MASK\]"):
        WordPieceTokenizer.from_vocab_file(vocab)
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nthe\n")
    with pytest.raises(ValueError, match="vocab.txt: .*'the' twice .*lines 6 and 7"):
        WordPieceTokenizer.from_vocab_file(vocab)
    vocab.write_bytes(b"\xff\xfe[PAD]\n")
    with pytest.raises(ValueError, match="vocab.txt: .*not UTF-8"):
        WordPieceTokenizer.from_vocab_file(vocab)

    encoder, merges = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    encoder.write_text('{"a": 0, "b": 1, "ab": 2')
    merges.write_text("#version: 0.2\na b\n")
    with pytest.raises(ValueError, match="encoder.json: not JSON"):
        RobertaBPETokenizer.from_files(encoder, merges)
    encoder.write_text('["a", "b"]')
    with pytest.raises(ValueError, match="encoder.json: expected a JSON object"):
        RobertaBPETokenizer.from_files(encoder, merges)
    encoder.write_text(json.dumps({"a": 0, "b": 1, "ab": 2}))
    assert RobertaBPETokenizer.from_files(encoder, merges).encode("ab").tolist() == [2]
    merges.write_text("#version: 0.2\na b\na b c\n")
    with pytest.raises(ValueError, match="vocab.bpe:3: expected two tokens"):
        RobertaBPETokenizer.from_files(encoder, merges)
    merges.write_text("#version: 0.2\na c\n")
    with pytest.raises(ValueError, match="encoder.json, .*vocab.bpe: the merges do not fit"):
        RobertaBPETokenizer.from_files(encoder, merges)
    with pytest.raises(FileNotFoundError, match="nothing.bpe"):
        RobertaBPETokenizer.from_files(encoder, tmp_path / "nothing.bpe")

    model = tmp_path / "spiece.model"
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        AlbertSentencePieceTokenizer.from_file(model)
    model.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="spiece.model: not a SentencePiece model"):
        AlbertSentencePieceTokenizer.from_file(model)
    bpe = SentencePieceTokenizer.fit("the cat sat on the mat\n" * 50, vocab_size=300)
    model.write_bytes(bpe.model_proto)
    with pytest.raises(ValueError, match="spiece.model: not a unigram"):
        AlbertSentencePieceTokenizer.from_file(model)
    plain = SentencePieceTokenizer.fit("the cat sat on the mat\n" * 50, vocab_size=300,
                                       model_type="unigram")
    model.write_bytes(plain.model_proto)
    with pytest.raises(ValueError, match=r"spiece.model: .*no <pad>, \[CLS\], \[SEP\], \[MASK\]"):
        AlbertSentencePieceTokenizer.from_file(model)
