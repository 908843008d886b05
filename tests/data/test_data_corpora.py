"""Data directory, MissingDataError, and reading the registered corpora."""

import pathlib

import pytest

from llm_jax.data import CORPORA, MissingDataError, data_dir, read_corpus, require_file


def test_data_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("LLM_JAX_DATA_DIR")
    assert data_dir() == pathlib.Path.home() / ".cache" / "llm_jax" / "data"


def test_missing_file_message_says_where_and_how(tmp_data_dir):
    with pytest.raises(MissingDataError) as info:
        require_file("ptb", "ptb.train.txt")
    message = str(info.value)
    assert str(tmp_data_dir / "ptb" / "ptb.train.txt") in message
    assert "$LLM_JAX_DATA_DIR" in message
    assert "python -m llm_jax download ptb" in message
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("dataset, filename", [("glue/SST-2", "dev.tsv"),
                                               ("word2vec", "questions-words.txt")])
def test_missing_file_of_a_set_download_does_not_fetch_says_where_to_put_it(tmp_data_dir, dataset,
                                                                            filename):
    with pytest.raises(MissingDataError) as info:
        require_file(dataset, filename)
    message = str(info.value)
    assert "python -m llm_jax download " + dataset not in message  # it would fail: no such source
    assert f"does not fetch {dataset!r}" in message
    assert f"at {tmp_data_dir / dataset / filename} yourself" in message
    assert filename in message.split("yourself", 1)[1]  # the description names the file


def test_missing_file_message_names_default_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LLM_JAX_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # keep the real ~/.cache out of it
    with pytest.raises(MissingDataError, match="default"):
        read_corpus("tinyshakespeare", "train")


def test_read_corpus_splits_and_errors(tmp_data_dir):
    (tmp_data_dir / "tinyshakespeare").mkdir()
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    (tmp_data_dir / "tinyshakespeare" / "input.txt").write_text(text)
    train, valid = read_corpus("tinyshakespeare", "train"), read_corpus("tinyshakespeare", "val")
    assert (train, valid) == (text[:900], text[900:])
    assert read_corpus("tinyshakespeare", "valid") == valid
    with pytest.raises(ValueError, match="ptb.*wikitext-2"):
        read_corpus("nope", "train")
    with pytest.raises(ValueError, match="'train', 'valid'"):
        read_corpus("tinyshakespeare", "test")


def test_real_tinyshakespeare(real_data_dir):
    train, valid = read_corpus("tinyshakespeare", "train"), read_corpus("tinyshakespeare", "val")
    assert len(set(train + valid)) == 65
    # nanoGPT: n = 1,115,394 characters, train = data[:int(n * 0.9)].
    assert (len(train), len(valid)) == (1_003_854, 111_540)


@pytest.mark.real_data("ptb")
@pytest.mark.parametrize(
    "split,words,lines",
    [("train", 887_521, 42_068), ("valid", 70_390, 3_370), ("test", 78_669, 3_761)],
)
def test_real_ptb_counts(real_data_dir, split, words, lines):
    text = read_corpus("ptb", split)
    # The published word counts exclude <eos>; as LM tokens each line adds one <eos>.
    assert len(text.split()) == words
    assert text.count("\n") == lines
    assert len(text.replace("\n", " <eos> ").split()) == words + lines  # 929,589 for train


@pytest.mark.real_data("wikitext-2")
def test_real_wikitext2_reads(real_data_dir):
    for split in CORPORA["wikitext-2"].splits:
        assert read_corpus("wikitext-2", split).startswith(" \n = ")
