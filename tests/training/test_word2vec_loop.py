"""word2vec training end to end on the start of WikiText-2: loss falls, vectors load in gensim,
a finished run resumes to the same result, and bad inputs fail with the file or field named."""

import json

import numpy as np
import pytest
from gensim.models import KeyedVectors

from llm_jax.training import word2vec_loop
from llm_jax.training.experiment import load_config as load_run_config
from llm_jax.training.metrics import read_metrics
from tests.conftest import load_config, require_real_data


@pytest.fixture
def small_corpus(real_data_dir, tmp_path):
    """The first 1,500 lines of WikiText-2 train (about 90k words)."""
    require_real_data("wikitext-2", "word2vec")  # the runs are scored on word2vec/*
    lines = (real_data_dir / "wikitext-2" / "wiki.train.tokens").read_text().splitlines()[:1500]
    path = tmp_path / "small.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(corpus, variant="tiny", **task):
    c = load_config("word2vec", variant)
    c.task.update(corpus_file=str(corpus), max_sentences=0, **task)
    c.train.progress_bar = False
    return c


def test_tiny_run_loss_falls_and_vectors_load_in_gensim(small_corpus, tmp_path):
    workdir = tmp_path / "run"
    summary = word2vec_loop.train(_config(small_corpus, epochs=3), str(workdir))
    rows = [r for r in read_metrics(workdir / "metrics.jsonl") if "train/loss" in r]
    losses = [r["train/loss"] for r in rows]
    assert len(losses) == 3 and losses[2] < losses[1] < losses[0]
    kv = KeyedVectors.load_word2vec_format(str(workdir / "vectors.bin"), binary=True)
    kv_text = KeyedVectors.load_word2vec_format(str(workdir / "vectors.txt"))
    assert len(kv) == summary["vocab_size"] and kv.index_to_key[0] == "the"
    np.testing.assert_allclose(kv_text.vectors, kv.vectors, rtol=1e-4, atol=1e-6)
    assert 0 < summary["analogy"]["total"] and summary["analogy"]["skipped"] > 0
    assert np.isfinite(summary["wordsim_spearman"]) and summary["wordsim"]["pairs"] > 10
    # re-evaluating the saved vectors gives the numbers written at the end of training
    again = word2vec_loop.evaluate(str(workdir))
    assert again["analogy_accuracy"] == summary["analogy_accuracy"]
    assert again["wordsim_spearman"] == pytest.approx(summary["wordsim_spearman"], abs=1e-6)
    # a finished run resumes from its last checkpoint and trains nothing more
    resumed = word2vec_loop.train(load_run_config(str(workdir)), str(workdir))
    assert resumed["wordsim_spearman"] == pytest.approx(summary["wordsim_spearman"], abs=1e-6)
    assert json.loads((workdir / "summary.json").read_text())["epochs"] == 3


@pytest.mark.parametrize("variant", ["sg_hs", "cbow_neg", "cbow_hs"])
def test_other_variants_train_from_their_configs(small_corpus, tmp_path, variant):
    c = _config(small_corpus, variant, epochs=1, min_count=3)
    c.train.batch_size = 256
    summary = word2vec_loop.train(c, str(tmp_path / variant))
    rows = read_metrics(tmp_path / variant / "metrics.jsonl")
    assert np.isfinite(rows[-1]["train/loss"]) and rows[-1]["train/examples"] > 10_000
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / variant / "vectors.bin"), binary=True)
    assert len(kv) == summary["vocab_size"]


def test_bad_inputs_are_named(tmp_path, small_corpus):
    with pytest.raises(FileNotFoundError, match="corpus file .*missing.txt"):
        word2vec_loop.train(_config(tmp_path / "missing.txt"), str(tmp_path / "a"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        word2vec_loop.train(_config(empty), str(tmp_path / "b"))
    rare = tmp_path / "rare.txt"
    rare.write_text("every word here is seen once\n")
    with pytest.raises(ValueError, match=r"vocabulary of .*rare.txt is empty.*min_count=2"):
        word2vec_loop.train(_config(rare), str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match="evaluation file .*nope.txt"):
        word2vec_loop.train(_config(small_corpus, analogy_file=str(tmp_path / "nope.txt")),
                            str(tmp_path / "e"))
    with pytest.raises(ValueError, match="config.task.architecture='skipgram'"):
        word2vec_loop.train(_config(rare, architecture="skipgram"), str(tmp_path / "d"))


def test_evaluate_workdir_without_vectors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        word2vec_loop.evaluate(str(tmp_path))
