"""The biLM task: batch alignment, sampled softmax, and training/resume/eval/export end to end."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.data import WordTokenizer
from llm_jax.data.chars import word_char_ids
from llm_jax.tasks.bilm import WordTypes, log_uniform_sample, sampled_softmax_nll
from tests.conftest import load_config, require_real_data


def test_batch_targets_are_the_next_and_previous_words():
    vocab = WordTokenizer.fit("a b c a b c d\n", min_count=2)  # d is rare: an <unk> target
    types = WordTypes(vocab, max_chars=6)
    ids = types.encode("a b c d a zebra")  # zebra was never seen: a new type, not an error
    batch = types.to_batch(ids[None])
    words = vocab.words
    assert [words[i] for i in batch["fwd_targets"][0]] == ["c", "<unk>", "a", "<unk>"]
    assert [words[i] for i in batch["bwd_targets"][0]] == ["a", "b", "c", "<unk>"]
    # the inputs keep the rare word's own characters although its target is <unk>
    np.testing.assert_array_equal(batch["chars"][0, 2], word_char_ids("d", 6))
    np.testing.assert_array_equal(batch["chars"][0, 3], word_char_ids("a", 6))
    assert types.encode("").shape == (0,)


def test_sampled_softmax_matches_its_formula():
    key, V, K = jax.random.key(0), 50, 7
    h = jax.random.normal(jax.random.key(1), (4, 3))
    W = jax.random.normal(jax.random.key(2), (3, V))
    b = jax.random.normal(jax.random.key(3), (V,))
    targets = jnp.array([0, 5, 49, 1])
    got = np.asarray(sampled_softmax_nll(h, targets, W, b, key, K))
    ids = np.asarray(log_uniform_sample(key, K, V))
    assert ids.min() >= 0 and ids.max() < V
    q = lambda i: np.log((i + 2) / (i + 1)) / np.log(V + 1)  # noqa: E731
    logits = np.asarray(h @ W + b)
    for n, t in enumerate(np.asarray(targets)):
        row = [logits[n, t] - np.log(K * q(t))]
        row += [logits[n, s] - np.log(K * q(s)) for s in ids if s != t]  # hits removed
        row = np.array(row)
        expected = np.log(np.exp(row - row.max()).sum()) + row.max() - row[0]
        np.testing.assert_allclose(got[n], expected, rtol=1e-5)


@pytest.fixture(scope="module")
def small_wikitext(tmp_path_factory):
    """The real WikiText-2 files cut to their first lines, so a run and its final eval take seconds."""
    src = require_real_data() / "wikitext-2"
    root = tmp_path_factory.mktemp("data")
    (root / "wikitext-2").mkdir()
    for name, lines in (("wiki.train.tokens", 600), ("wiki.valid.tokens", 60), ("wiki.test.tokens", 60)):
        with open(src / name, encoding="utf-8") as f:
            head = [next(f) for _ in range(lines)]
        (root / "wikitext-2" / name).write_text("".join(head), encoding="utf-8")
    before = os.environ.get("LLM_JAX_DATA_DIR")
    os.environ["LLM_JAX_DATA_DIR"] = str(root)
    yield root
    if before is None:
        os.environ.pop("LLM_JAX_DATA_DIR", None)
    else:
        os.environ["LLM_JAX_DATA_DIR"] = before


def _tiny():
    c = load_config("elmo", "tiny")
    c.data.min_count = 3
    c.train.progress_bar = False
    return c


@pytest.mark.slow  # two short runs, an eval and an export: 210 s on the busy shared 2-core machine
def test_train_resume_eval_export(small_wikitext, tmp_path):
    from llm_jax.models.elmo import load_bilm
    from llm_jax.training.commands import evaluate_workdir, export_model
    from llm_jax.training.metrics import read_metrics
    from llm_jax.training.trainer import train

    ref, run = tmp_path / "ref", tmp_path / "run"
    summary = train(_tiny(), str(ref))
    assert np.isfinite(summary["eval/loss"])
    np.testing.assert_allclose(summary["eval/loss"],
                               (summary["eval/forward_loss"] + summary["eval/backward_loss"]) / 2,
                               rtol=1e-5)
    # Resume: drop the last checkpoint of a finished copy and train again from step 3.
    shutil.copytree(ref, run)
    shutil.rmtree(run / "checkpoints" / "6")
    train(_tiny(), str(run))
    a = {r["step"]: r for r in read_metrics(ref / "metrics.jsonl")}
    b = {r["step"]: r for r in read_metrics(run / "metrics.jsonl")}
    for step in (4, 5, 6):
        assert a[step]["train/loss"] == b[step]["train/loss"], step
    assert a[6]["eval/loss"] == b[6]["eval/loss"]

    test = evaluate_workdir(str(run), "test")
    assert test["split"] == "test" and np.isfinite(test["eval/forward_loss"])

    out = export_model(str(run), str(tmp_path / "export"))
    bilm = load_bilm(out)
    with open(run / "tokenizer" / "tokenizer.json") as f:
        assert bilm.words == json.load(f)["words"]
    vecs = bilm.embed([["the", "game", "was"], []])
    assert vecs[0].shape == (3, 3, 32) and vecs[1].shape == (3, 0, 32)
