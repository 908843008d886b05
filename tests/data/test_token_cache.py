"""Token files: built once, reused (a resume does not tokenise), the same ids as tokenising in
memory, read by the batchers as memory maps without a whole copy; SentencePiece keeps U+2581."""

import numpy as np
import pytest

from llm_jax.data import LMBatches, eval_batches, make_tokenizer
from llm_jax.data import text_files as tf
from llm_jax.data.stream_batches import StreamBatches, stream_eval_batches
from llm_jax.data.token_cache import cached_tokens, token_dtype, tokenizer_fingerprint
from llm_jax.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from llm_jax.tasks import build_task
from tests.data.test_user_corpus import char_config, lines, write_dir

SAMPLE = "".join(f"Line {i}: the {'quick ' * (i % 4)}brown fox, über {i * 7}!\n" for i in range(400))


def test_second_construction_reuses_the_token_files(tmp_path, monkeypatch):
    corpus = write_dir(tmp_path / "c", lines(300), lines(50))
    config, workdir = char_config(corpus), str(tmp_path / "run")
    first = build_task(config, workdir)
    files = sorted((tmp_path / "run" / "tokens").iterdir())
    assert [p.suffix for p in files] == [".bin", ".json"] * 2
    mtimes = [p.stat().st_mtime_ns for p in files]

    def no_encode(self, text):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(CharTokenizer, "encode", no_encode)
    again = build_task(config, workdir)
    assert isinstance(again.train_tokens, np.memmap)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    monkeypatch.undo()
    for got, name in ((again.train_tokens, "train.txt"), (again.eval_tokens, "valid.txt")):
        want = first.tokenizer.encode((corpus / name).read_text())
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.uint16


@pytest.mark.parametrize("kind", ["char", "word", "sentencepiece-bpe", "sentencepiece-unigram"])
def test_streamed_ids_equal_in_memory_ids(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(tf, "CHUNK_BYTES", 100)  # many chunks, cut anywhere in a line
    path = tmp_path / "text.txt"
    path.write_text(SAMPLE, encoding="utf-8")
    name, _, model = kind.partition("-")
    options = {"vocab_size": 400, "model_type": model} if model else {}
    tokenizer = make_tokenizer(name, SAMPLE, **options)
    for part in (tf.TextSlice(path), tf.TextSlice(path, unit="lines", start=0.5, end=1.0)):
        ids = cached_tokens(part, "sha-of-file", tokenizer, tmp_path / "cache")
        np.testing.assert_array_equal(ids, tokenizer.encode(part.read()))
    # A different tokenizer (another fingerprint) gets its own file.
    other = make_tokenizer("char", SAMPLE + "#")
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)
    np.testing.assert_array_equal(cached_tokens(tf.TextSlice(path), "sha-of-file", other,
                                                tmp_path / "cache"), other.encode(SAMPLE))
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 3


def test_large_vocabularies_use_int32_and_empty_splits_work(tmp_path):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.int32
    words = WordTokenizer(["<unk>", "<eos>"] + [f"w{i}" for i in range(70000)])
    path = tmp_path / "t.txt"
    path.write_text("w69999 w3 nope\n")
    ids = cached_tokens(tf.TextSlice(path), "x", words, tmp_path / "cache")
    assert ids.dtype == np.int32 and ids.tolist() == [70001, 5, 0, 1]
    (tmp_path / "empty.txt").write_text("")
    assert len(cached_tokens(tf.TextSlice(tmp_path / "empty.txt"), "y", words, tmp_path)) == 0


def memmap_of(tmp_path, ids):
    path = tmp_path / "ids.bin"
    np.asarray(ids, np.uint16).tofile(path)
    return np.memmap(path, dtype=np.uint16, mode="r", shape=(len(ids),))


def test_memmap_windows_equal_in_memory_windows(tmp_path):
    ids = np.random.default_rng(0).integers(0, 5000, 10_001).astype(np.int32)
    mm = memmap_of(tmp_path, ids)
    on_disk, in_memory = LMBatches(mm, 32, 4, seed=3), LMBatches(ids, 32, 4, seed=3)
    assert np.shares_memory(on_disk._source.tokens, mm)  # windows are read, not a copy made
    for step in (0, 1, 77, 500):
        a, b = on_disk.batch(step), in_memory.batch(step)
        for key in a:
            assert a[key].dtype == np.int32
            np.testing.assert_array_equal(a[key], b[key])
    for a, b in zip(eval_batches(mm, 32, 4), eval_batches(ids, 32, 4), strict=True):
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
        np.testing.assert_array_equal(a["targets"], b["targets"])
    on_disk, in_memory = StreamBatches(mm, 4, 20), StreamBatches(ids, 4, 20)
    assert np.shares_memory(on_disk._streams, mm)
    for step in (0, 5, 124, 125):
        a, b = on_disk.batch(step), in_memory.batch(step)
        assert a["inputs"].dtype == np.int32
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    pairs = zip(stream_eval_batches(mm, 2, 50), stream_eval_batches(ids, 2, 50), strict=True)
    assert all(np.array_equal(a["targets"], b["targets"]) for a, b in pairs)


@pytest.fixture(scope="module")
def sp_tokenizer():
    return SentencePieceTokenizer.fit(SAMPLE, vocab_size=400)


@pytest.mark.parametrize("text", ["▁", "a ▁b▁▁ c\n▁", "▁▁\n\n ▁x", "plain text\n", "über▁alles"])
def test_sentencepiece_keeps_u2581(sp_tokenizer, text):
    assert sp_tokenizer.decode(sp_tokenizer.encode(text)) == text


def test_sentencepiece_ids_without_u2581_are_sentencepieces(sp_tokenizer):
    ids = sp_tokenizer.encode(SAMPLE)
    assert ids.tolist() == sp_tokenizer._sp.encode(SAMPLE)
    half = SAMPLE.index("\n", len(SAMPLE) // 2) + 1  # whole lines: the ids do not depend on
    ab = np.concatenate([sp_tokenizer.encode(SAMPLE[:half]), sp_tokenizer.encode(SAMPLE[half:])])
    np.testing.assert_array_equal(ab, ids)  # how the text is cut, so chunks are safe


def test_task_reads_test_split_through_the_cache(tmp_path):
    corpus = write_dir(tmp_path / "c", lines(100), lines(20), lines(10))
    task = build_task(char_config(corpus), str(tmp_path / "run"))
    ids = task.split_tokens("test")
    assert isinstance(ids, np.memmap) and len(list((tmp_path / "run" / "tokens").glob("test-*")))
    assert task.tokenizer.decode(ids) == lines(10)
