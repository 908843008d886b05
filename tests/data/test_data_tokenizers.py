"""Tokenizer round trips, save/load, and the word tokenizer's vocabulary rules."""

import numpy as np
import pytest

from llm_jax.data import (
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    make_tokenizer,
    read_corpus,
)

TEXT = "the cat sat on the mat\nthe dog sat  on a log\n\nthe end\n"


def _check_saved(tokenizer, tmp_path, text):
    tokenizer.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tokenizer) and loaded.vocab_size == tokenizer.vocab_size
    np.testing.assert_array_equal(loaded.encode(text), tokenizer.encode(text))


def test_char_round_trip_and_save(tmp_path):
    tok = make_tokenizer("char", TEXT)
    ids = tok.encode(TEXT)
    assert ids.dtype == np.int32 and tok.decode(ids) == TEXT
    assert tok.chars == sorted(set(TEXT)) and tok.vocab_size == len(set(TEXT))
    _check_saved(tok, tmp_path, TEXT)


def test_char_unknown_character_is_named():
    with pytest.raises(ValueError, match="'z'.*position 3"):
        CharTokenizer.fit("abc").encode("abcz")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        CharTokenizer.fit("abc").decode([0, 3])


def test_char_tinyshakespeare_vocab(real_data_dir):
    text = read_corpus("tinyshakespeare", "train") + read_corpus("tinyshakespeare", "valid")
    tok = CharTokenizer.fit(text)
    assert tok.vocab_size == 65 and tok.chars[:2] == ["\n", " "]  # nanoGPT's vocabulary
    assert tok.decode(tok.encode(text)) == text


def test_word_round_trip_and_save(tmp_path):
    tok = WordTokenizer.fit(TEXT)
    ids = tok.encode(TEXT)
    assert ids.dtype == np.int32
    assert (ids == tok.eos_id).sum() == TEXT.count("\n")
    # Whitespace is normalised: decode gives single spaces, newlines at each <eos>.
    assert tok.decode(ids) == "the cat sat on the mat\nthe dog sat on a log\n\nthe end\n"
    np.testing.assert_array_equal(tok.encode(tok.decode(ids)), ids)
    _check_saved(tok, tmp_path, TEXT)


def test_word_vocab_order_min_count_and_unk():
    tok = WordTokenizer.fit(TEXT, min_count=2)
    # Counts: the 4, <eos> 4, sat 2, on 2; the six once-seen words fold into <unk> (6).
    assert tok.words == ["<unk>", "<eos>", "the", "on", "sat"]
    assert tok.decode(tok.encode("the zebra sat")) == "the <unk> sat"
    capped = WordTokenizer.fit(TEXT, max_size=3)
    # Only "the" fits beside the specials; <unk> now counts 10, then <eos> and "the" tie at 4.
    assert capped.words == ["<unk>", "<eos>", "the"]
    # A literal <unk> in the text is the same token, not a new word.
    assert (
        WordTokenizer.fit("a <unk> b\n").encode("<unk> c")[0]
        == WordTokenizer.fit("a <unk> b\n").unk_id
    )


@pytest.mark.real_data("ptb")
def test_word_ptb_vocab(real_data_dir):
    text = read_corpus("ptb", "train")
    tok = WordTokenizer.fit(text)
    ids = tok.encode(text)
    assert tok.vocab_size == 10_000 and len(ids) == 887_521 + 42_068
    assert tok.words[:3] == ["the", "<unk>", "<eos>"]  # as in Zaremba et al.'s reader


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_round_trip_and_save(tmp_path, model_type):
    text = (TEXT * 3 + "Über  spaces\tand tabs, naïve café.\n") * 20
    tok = SentencePieceTokenizer.fit(text, vocab_size=320, model_type=model_type, workdir=tmp_path)
    assert (tmp_path / "spm.model").is_file() and (tmp_path / "tokenizer.json").is_file()
    unseen = "  leading spaces, unseen ✓ chars 中文\n\nend"
    for s in (text, unseen):
        ids = tok.encode(s)
        assert ids.dtype == np.int32 and tok.decode(ids) == s
    _check_saved(tok, tmp_path, unseen)
    assert isinstance(load_tokenizer(tmp_path), SentencePieceTokenizer)


def test_make_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="field `kind`.*'char'"):
        make_tokenizer("bytes", TEXT)
    (tmp_path / "tokenizer.json").write_text('{"kind": "bytes"}')
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path / "missing")
