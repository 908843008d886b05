"""The word2vec text and binary formats: round trip, gensim reads ours, we read gensim's."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from llm_jax.data.word_vectors_io import load_word2vec_format, save_word2vec_format

WORDS = ["the", "of", "café", "<unk>", "Ω"]


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_and_gensim_reads_it(tmp_path, binary):
    v = np.random.default_rng(0).normal(size=(len(WORDS), 7)).astype(np.float32)
    path = tmp_path / ("v.bin" if binary else "v.txt")
    save_word2vec_format(path, WORDS, v, binary=binary)
    words, back = load_word2vec_format(path)  # format guessed from the bytes
    assert words == WORDS
    np.testing.assert_allclose(back, v, rtol=0 if binary else 1e-5)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == WORDS
    np.testing.assert_allclose(kv.vectors, v, rtol=0 if binary else 1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_reads_gensims_files(tmp_path, binary):
    v = np.random.default_rng(1).normal(size=(len(WORDS), 3)).astype(np.float32)
    kv = KeyedVectors(3)
    kv.add_vectors(WORDS, v)
    path = tmp_path / "g"
    kv.save_word2vec_format(str(path), binary=binary)
    words, back = load_word2vec_format(path, binary=binary)
    assert words == WORDS
    np.testing.assert_allclose(back, v, rtol=1e-5)


def test_bad_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        load_word2vec_format(tmp_path / "nope.bin")
    bad = tmp_path / "bad.txt"
    bad.write_text("hello world\n")
    with pytest.raises(ValueError, match="bad.txt: first line"):
        load_word2vec_format(bad)
    short = tmp_path / "short.txt"
    short.write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(ValueError, match=r"short.txt:3: expected a word and 3 numbers"):
        load_word2vec_format(short)
    with pytest.raises(ValueError, match="whitespace"):
        save_word2vec_format(tmp_path / "x.txt", ["a b"], np.zeros((1, 2)), binary=False)
