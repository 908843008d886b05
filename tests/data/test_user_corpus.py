"""A user's own corpus by path: a directory of train/valid(/test).txt or one file split by
lines; its encoding; errors that name the file and line; chunked reading equals whole reading."""

import numpy as np
import pytest

from llm_jax.data import read_corpus
from llm_jax.data import text_files as tf
from llm_jax.data.corpora import resolve_split
from llm_jax.tasks import build_task
from llm_jax.training.commands import generate_text
from llm_jax.training.trainer import train
from tests.conftest import load_config


def char_config(corpus, **data):
    """configs/gpt_shakespeare.py:tiny on `corpus`, a few steps, with `data` fields set."""
    c = load_config("gpt_shakespeare", "tiny")
    c.data.corpus = str(corpus)
    c.data.seq_len = 16
    c.train.update(steps=3, batch_size=2, eval_every=3, eval_batches=2, checkpoint_every=3,
                   log_every=1, progress_bar=False)
    c.data.update(**data)
    return c


def lines(n, tag="line"):
    return "".join(f"{tag} {i}: the quick brown fox\n" for i in range(n))


def write_dir(root, train_text, valid_text, test_text=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text(train_text, encoding="utf-8")
    (root / "valid.txt").write_text(valid_text, encoding="utf-8")
    if test_text is not None:
        (root / "test.txt").write_text(test_text, encoding="utf-8")
    return root


def test_char_gpt_trains_on_a_users_directory(tmp_path, monkeypatch):
    corpus = write_dir(tmp_path / "mine", lines(300), lines(40, "valid"), lines(30, "ill"))
    config = char_config(corpus)
    summary = train(config, str(tmp_path / "run"))
    assert np.isfinite(summary["eval/loss"])
    task = build_task(config, str(tmp_path / "run"))
    assert task.tokenizer.decode(task.eval_tokens) == (corpus / "valid.txt").read_text()
    assert task.tokenizer.decode(task.split_tokens("test")) == (corpus / "test.txt").read_text()
    assert read_corpus(str(corpus), "val") == (corpus / "valid.txt").read_text()
    # generate needs the workdir alone: not the corpus, not a data directory
    monkeypatch.delenv("LLM_JAX_DATA_DIR", raising=False)
    (corpus / "train.txt").rename(corpus / "moved.txt")
    text, = generate_text(str(tmp_path / "run"), "line", max_new_tokens=12, temperature=0)
    assert text.startswith("line") and len(text) == len("line") + 12


def test_directory_errors_name_the_directory_and_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "valid.txt").write_text("x\n")
    with pytest.raises(FileNotFoundError, match=r"/d has no train\.txt.*train\.txt and valid\.txt"):
        resolve_split(str(tmp_path / "d"), "train")
    write_dir(tmp_path / "e", "a\n", "b\n")
    with pytest.raises(ValueError, match="'test'.*expected one of \\['train', 'valid'\\]"):
        resolve_split(str(tmp_path / "e"), "test")
    with pytest.raises(ValueError, match="neither a built-in corpus"):
        resolve_split(str(tmp_path / "nowhere"), "train")


@pytest.mark.parametrize("fraction,n_valid", [(None, 10), (0.25, 25)])
def test_single_file_last_lines_are_valid(tmp_path, fraction, n_valid):
    text = lines(100)
    (tmp_path / "corpus.txt").write_text(text)
    extra = {} if fraction is None else {"valid_fraction": fraction}
    task = build_task(char_config(tmp_path / "corpus.txt", **extra), str(tmp_path / "run"))
    cut = text.splitlines(keepends=True)
    assert task.tokenizer.decode(task.train_tokens) == "".join(cut[: 100 - n_valid])
    assert task.tokenizer.decode(task.eval_tokens) == "".join(cut[100 - n_valid:])
    with pytest.raises(ValueError, match="valid_fraction=1.5"):
        resolve_split(str(tmp_path / "corpus.txt"), "valid", valid_fraction=1.5)


def test_non_utf8_error_names_file_line_and_byte(tmp_path):
    corpus = write_dir(tmp_path / "c", lines(5), "ok\n")
    data = (corpus / "train.txt").read_bytes()
    (corpus / "train.txt").write_bytes(data + b"caf\xb0 au lait\n" + data)
    with pytest.raises(tf.CorpusDecodeError) as info:
        build_task(char_config(corpus), str(tmp_path / "run"))
    message = str(info.value)
    assert message == (f"{corpus / 'train.txt'} line 6: byte 0xb0 is not valid utf-8; set "
                       "config.data.encoding (e.g. 'latin-1' or 'cp1252')")
    assert isinstance(info.value, ValueError) and "\n" not in message


def test_decode_error_line_is_right_across_chunks(tmp_path):
    # 7-byte chunks: the bad byte, and a 2-byte "é" before it, fall across chunk boundaries.
    path = tmp_path / "t.txt"
    path.write_bytes("é\n".encode() * 40 + b"ab\xffc\n")
    with pytest.raises(tf.CorpusDecodeError, match="t.txt line 41: byte 0xff"):
        list(tf.iter_decoded(path, "utf-8", chunk_bytes=7))
    path.write_bytes(b"ok\n\xc3")  # cut off inside a character at the end
    with pytest.raises(tf.CorpusDecodeError, match="line 2: byte 0xc3"):
        list(tf.iter_decoded(path, "utf-8", chunk_bytes=2))


def test_latin1_encoding_option(tmp_path):
    corpus = tmp_path / "latin"
    corpus.mkdir()
    (corpus / "train.txt").write_bytes(("café crème, señor\n" * 50).encode("latin-1"))
    (corpus / "valid.txt").write_bytes(("¿qué?\n" * 20).encode("latin-1"))
    task = build_task(char_config(corpus, encoding="latin-1"), str(tmp_path / "run"))
    assert task.tokenizer.decode(task.eval_tokens) == "¿qué?\n" * 20
    with pytest.raises(ValueError, match="encoding='klingon'"):
        resolve_split(str(corpus), "train", encoding="klingon")


@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_chunked_slices_equal_in_memory_slices(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(tf, "CHUNK_BYTES", chunk)
    text = "".join(f"é{i}\r\nline {'ü' * (i % 5)}\n\n" for i in range(97)) + "no newline at end"
    path = tmp_path / "x.txt"
    path.write_bytes(text.encode("utf-8"))
    n_lines = len(text.splitlines())
    for unit, total in (("chars", len(text)), ("lines", n_lines)):
        for start, end in ((0.0, 0.9), (0.9, 1.0), (0.3, 0.31), (0.0, 1.0)):
            piece = tf.TextSlice(path, "utf-8", unit, start, end)
            got = list(piece.iter_text())
            assert all(p.endswith("\n") for p in got[:-1])
            a, b = int(total * start), int(total * end)
            want = text[a:b] if unit == "chars" else "".join(text.splitlines(True)[a:b])
            assert "".join(got) == want
    assert tf.TextSlice(path).read() == text


def test_builtin_corpus_reads_as_before(tmp_data_dir):
    (tmp_data_dir / "tinyshakespeare").mkdir()
    text = "".join(chr(ord("a") + i % 26) + ("\n" if i % 7 == 0 else "") for i in range(1000))
    (tmp_data_dir / "tinyshakespeare" / "input.txt").write_text(text)
    n = len(text)
    assert read_corpus("tinyshakespeare", "train") == text[: int(n * 0.9)]
    assert read_corpus("tinyshakespeare", "valid") == text[int(n * 0.9):]
