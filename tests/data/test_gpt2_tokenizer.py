"""GPT-2's byte-level BPE: ids identical to transformers' GPT2TokenizerFast over all of
WikiText-2 valid (whole text and line by line) and over 2,000 seeded random unicode strings,
decode(encode(s)) == s for all of them; chunked (token cache) encoding equal to whole-text
encoding; save/load; a fitted vocabulary that AutoTokenizer reads; the causal LM task and
configs/gpt2.py taking it.

The transformers reference is built with `from_pretrained(directory)` on a directory holding
encoder.json and vocab.bpe as vocab.json and merges.txt (transformers 5 ignores `vocab_file=`).
"""

import json
import shutil

import numpy as np
import pytest

from llm_jax.data import GPT2BPETokenizer, TextSlice, load_tokenizer
from llm_jax.data.gpt2_tokenizer import EOT, GPT2_FILES, read_gpt2_tokenizer, safe_cut
from tests.conftest import load_config, require_real_data

transformers = pytest.importorskip("transformers")

WIKI_VALID = "wikitext-2/wiki.valid.tokens"
# What the generator draws from: ASCII, Latin-1 and Latin Extended, Greek, Cyrillic, Hebrew,
# Arabic, Devanagari, Thai, Hangul, kana, CJK (and Extension B), emoji, math alphanumerics,
# private use, combining marks, control characters, zero-width characters and variation selectors.
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
          (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0xAC00, 0xD7A3), (0x3040, 0x30FF),
          (0x4E00, 0x9FFF), (0x20000, 0x2A6DF), (0x1F300, 0x1FAFF), (0x1D400, 0x1D7FF),
          (0xE000, 0xF8FF), (0x300, 0x36F), (0x0, 0x1F), (0x7F, 0x9F), (0x200B, 0x200F),
          (0xFE00, 0xFE0F)]
WHITESPACE = [" ", "  ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u2003", "\u3000",
              "\u2028", "\x0b\x0c", "    "]
FRAGMENTS = ["'s", "'ll", "n't", "123", "3.14", "<|endoftext|>", "<|endoftext", "ZWJ\u200d",
             "\U0001F468\u200d\U0001F469\u200d\U0001F467", "e\u0301", "\ufeff", "http://x.y/z?a=1"]


def random_strings(n=2000, seed=0):
    """Seeded strings of runs of characters from RANGES, whitespace runs and fragments."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.integers(1, 10)):
            kind = rng.random()
            if kind < 0.6:
                lo, hi = RANGES[rng.integers(len(RANGES))]
                parts.append("".join(chr(c) for c in rng.integers(lo, hi + 1, rng.integers(1, 6))))
            elif kind < 0.85:
                parts.append(WHITESPACE[rng.integers(len(WHITESPACE))])
            else:
                parts.append(FRAGMENTS[rng.integers(len(FRAGMENTS))])
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def gpt2():
    root = require_real_data(*GPT2_FILES)
    return GPT2BPETokenizer.from_files(*(root / f for f in GPT2_FILES))


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory):
    root = require_real_data(*GPT2_FILES)
    directory = tmp_path_factory.mktemp("hf_gpt2")
    shutil.copyfile(root / GPT2_FILES[0], directory / "vocab.json")
    shutil.copyfile(root / GPT2_FILES[1], directory / "merges.txt")
    hf = transformers.GPT2TokenizerFast.from_pretrained(directory)
    assert len(hf) == 50257
    return hf


@pytest.fixture(scope="module")
def wiki():
    return (require_real_data(WIKI_VALID) / WIKI_VALID).read_text(encoding="utf-8")


def test_wikitext2_valid_ids_equal_transformers(gpt2, hf_gpt2, wiki):
    ids = gpt2.encode(wiki)
    assert ids.dtype == np.int32 and len(ids) > 200_000
    np.testing.assert_array_equal(ids, hf_gpt2(wiki)["input_ids"])
    assert gpt2.decode(ids) == wiki
    lines = wiki.split("\n")
    got = gpt2.encode_lines(lines)
    assert [x.tolist() for x in got] == hf_gpt2(lines)["input_ids"]
    assert all(gpt2.decode(x) == line for x, line in zip(got, lines))


def test_random_unicode_ids_equal_transformers_and_round_trip(gpt2, hf_gpt2):
    texts = random_strings() + [""]
    assert len(set(texts)) > 1900 and any(EOT in t for t in texts)
    got = gpt2.encode_lines(texts)
    want = hf_gpt2(texts)["input_ids"]
    for text, ours, theirs in zip(texts, got, want):
        assert ours.tolist() == theirs, repr(text)
        assert gpt2.decode(ours) == text, repr(text)
    assert [gpt2.encode(t).tolist() for t in texts[:200]] == want[:200]


def test_endoftext_and_special_ids(gpt2, hf_gpt2):
    assert gpt2.kind == "gpt2_bpe" and gpt2.vocab_size == 50257
    assert gpt2.eos_id == hf_gpt2.eos_token_id == 50256 == gpt2.vocab["<|endoftext|>"]
    assert gpt2.special_ids == {"eos": 50256, "bos": 50256, "unk": 50256, "pad": 50256}
    text = "Hello world<|endoftext|> A new document"
    ids = gpt2.encode(text).tolist()
    assert ids == hf_gpt2(text)["input_ids"] and ids.count(50256) == 1
    assert gpt2.encode("Hello world").tolist() == [15496, 995]  # transformers' docstring
    assert gpt2.decode(ids) == text == hf_gpt2.decode(ids)
    assert gpt2.decode(ids, skip_special_tokens=True) == "Hello world A new document"
    batch = gpt2.encode_batch(["a b c", "d"])  # nothing added; padded with <|endoftext|>
    assert batch["input_ids"].tolist() == [[64, 275, 269], [67, 50256, 50256]]
    assert batch["mask"].tolist() == [[True] * 3, [True, False, False]]


def test_safe_cut_splits_where_ids_do_not_change(gpt2):
    """Encoding the two sides of safe_cut apart gives the whole text's ids, on texts built to
    trip it: newline runs (GPT-2 merges "\\n\\n"), spaces before and after newlines, contractions,
    <|endoftext|>, unicode whitespace."""
    rng = np.random.default_rng(1)
    alphabet = ["ab", "Cd", "9", " ", "  ", "\n", "\n\n", "\t", "'s", ".", "é", "\u3000",
                "\u00a0", EOT, "\r"]
    weights = np.array([4, 3, 2, 3, 1, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1]) / 27
    cuts = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet, rng.integers(1, 14), p=weights))
        whole = gpt2.encode(text).tolist()
        # the rule reads only the characters around a cut, so every cut it finds in a prefix
        # must hold in the whole text too
        for p in {safe_cut(text[:k]) for k in range(len(text) + 1)} - {0}:
            cuts += 1
            assert 0 < p < len(text) and text[p - 1] == "\n"
            assert gpt2.encode(text[:p]).tolist() + gpt2.encode(text[p:]).tolist() == whole, \
                repr((text[:p], text[p:]))
    assert cuts > 400
    # naive line cuts do change ids: "\n\n" is one token, "\n" + "\n" two
    assert len(gpt2.encode("a\n\n\nb")) != len(gpt2.encode("a\n")) + len(gpt2.encode("\n\nb"))


def test_chunked_encoding_equals_whole_text(gpt2, tmp_path, monkeypatch):
    """encode_stream over a file's line chunks, and the token cache built from them, hold the
    ids of the whole text, with chunks small enough to cut between blank lines."""
    from llm_jax.data import text_files
    from llm_jax.data.token_cache import cached_tokens

    rng = np.random.default_rng(2)
    words = ["Hello", "world", "it's", "42", "naïve", "東京", "🤗", "=", "@-@"]
    paragraphs = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(600)]
    seps = ["\n", "\n\n", "\n\n\n", " \n", "\n ", "\n \n ", "  \n"]
    text = "".join(p + seps[rng.integers(len(seps))] for p in paragraphs) + "tail"
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    whole = gpt2.encode(text).tolist()
    source = TextSlice(path)
    for chunk in (64, 500, 4096):
        pieces = list(source.iter_text(chunk))
        assert len(pieces) > 2 and "".join(pieces) == text
        assert np.concatenate(list(gpt2.encode_stream(pieces))).tolist() == whole
    naive = np.concatenate([gpt2.encode(p) for p in source.iter_text(64)]).tolist()
    assert naive != whole  # what encode_stream is for
    monkeypatch.setattr(text_files, "CHUNK_BYTES", 256)
    cached = cached_tokens(source, "sha", gpt2, tmp_path / "cache")
    assert cached.dtype == np.dtype("<u2") and cached.tolist() == whole


def test_save_and_load(gpt2, tmp_path):
    gpt2.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "merges.txt", "tokenizer.json", "vocab.json"]
    assert json.loads((tmp_path / "tok" / "tokenizer.json").read_text())["kind"] == "gpt2_bpe"
    back = load_tokenizer(tmp_path / "tok")
    assert isinstance(back, GPT2BPETokenizer) and back.vocab_size == 50257
    text = "Saved and loaded <|endoftext|> 🤗 \n\n  x"
    assert back.encode(text).tolist() == gpt2.encode(text).tolist()


def test_fitted_vocabulary_reads_in_autotokenizer(tmp_path):
    from llm_jax.data.hf_tokenizer_files import read_hf_tokenizer, write_hf_tokenizer

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 7))) for _ in range(60)]
    text = [" ".join(rng.choice(words, 12)) + " ." for _ in range(400)]
    tok = GPT2BPETokenizer.fit(text, vocab_size=300, min_frequency=1)
    assert tok.eos_id == 0 and tok.vocab_size == 300
    write_hf_tokenizer(tok, str(tmp_path / "hf"))
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf.eos_token_id == 0 and len(hf) == 300
    probe = text[:20] + ["abc <|endoftext|> déjà vu 🤗\n\n x"]
    assert [ids.tolist() for ids in tok.encode_lines(probe)] == hf(probe)["input_ids"]
    back = read_hf_tokenizer(str(tmp_path / "hf"), "gpt2")
    assert isinstance(back, GPT2BPETokenizer)
    assert back.encode(probe[-1]).tolist() == tok.encode(probe[-1]).tolist()


def test_causal_lm_and_gpt2_config_take_the_gpt2_vocabulary(tmp_path, monkeypatch, hf_gpt2):
    """config.data.tokenizer="gpt2_bpe" reads OpenAI's files; the cached training tokens are
    transformers' ids of the whole split. configs/gpt2.py:124m,gpt2_bpe asks for it."""
    from llm_jax.data import text_files
    from llm_jax.tasks.causal_lm import CausalLM
    from llm_jax.training.config_schema import check_config, default_config

    root = require_real_data("tinyshakespeare", *GPT2_FILES)
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
    monkeypatch.setattr(text_files, "CHUNK_BYTES", 1 << 16)  # many chunks, cut between blank lines
    c = default_config("gpt", "causal_lm")
    c.data.update(corpus="tinyshakespeare", tokenizer="gpt2_bpe")
    task = CausalLM(c, str(tmp_path / "run"))
    assert task.tokenizer.kind == "gpt2_bpe" and task.vocab_size == 50257
    np.testing.assert_array_equal(task.train_tokens,
                                  hf_gpt2(task.splits.text("train"))["input_ids"])
    assert load_tokenizer(tmp_path / "run" / "tokenizer").kind == "gpt2_bpe"

    cfg = load_config("gpt2", "124m,gpt2_bpe")
    check_config(cfg)
    assert (cfg.data.tokenizer, cfg.model.vocab_size) == ("gpt2_bpe", 50304)
    assert load_config("gpt2", "124m").data.tokenizer == "sentencepiece"
    with pytest.raises(ValueError, match="gpt2.py:124m,gpt3_bpe: unknown vocabulary"):
        load_config("gpt2", "124m,gpt3_bpe")

    c.data.vocab_file = str(tmp_path / "nothing.json")
    with pytest.raises(FileNotFoundError, match=r"config.data.tokenizer='gpt2_bpe'.*"
                                                r"nothing.json: no such file"):
        CausalLM(c, str(tmp_path / "run2"))


def test_causal_lm_fits_a_gpt2_bpe_on_a_users_corpus(tmp_path):
    """config.data.vocab_file="fit": a byte-level BPE of config.data.vocab_size learnt from the
    training split, <|endoftext|> at 0."""
    from llm_jax.tasks.causal_lm import CausalLM
    from llm_jax.training.config_schema import default_config

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 7))) for _ in range(60)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, n in (("train.txt", 800), ("valid.txt", 100)):
        (corpus / name).write_text("".join(" ".join(rng.choice(words, 10)) + "\n\n"
                                           for _ in range(n)), encoding="utf-8")
    c = default_config("gpt", "causal_lm")
    c.data.update(corpus=str(corpus), tokenizer="gpt2_bpe", vocab_file="fit", vocab_size=300)
    task = CausalLM(c, str(tmp_path / "run"))
    assert isinstance(task.tokenizer, GPT2BPETokenizer) and task.vocab_size == 300
    assert task.tokenizer.eos_id == 0
    text = (corpus / "valid.txt").read_text(encoding="utf-8")
    assert task.tokenizer.decode(task.eval_tokens) == text


def test_bad_files(tmp_path):
    (tmp_path / "vocab.json").write_text('{"a": 0, "b": 1}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\na c\n")
    with pytest.raises(ValueError, match="merges.txt: the merges do not fit the vocabulary"):
        GPT2BPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    with pytest.raises(FileNotFoundError, match="none.bpe: no such file"):
        read_gpt2_tokenizer(tmp_path / "vocab.json", tmp_path / "none.bpe")
