"""The word2vec model: table shapes, the reference initialisation, clear config errors."""

import numpy as np
import pytest
from flax import nnx

from llm_jax.models import build_model, default_model_config


def _cfg(**kw):
    c = default_model_config("word2vec")
    c.update({"vocab_size": 50, "dim": 16, **kw})
    return c


def test_tables_and_initialisation():
    m = build_model(_cfg(), rngs=nnx.Rngs(params=0))
    w_in, w_out = np.asarray(m.input[...]), np.asarray(m.output[...])
    assert w_in.shape == (50, 16) and w_out.shape == (50, 16)
    assert np.abs(w_in).max() <= 0.5 / 16 and w_in.std() > 0.1 / 16  # uniform(-0.5/d, 0.5/d)
    assert not w_out.any()
    np.testing.assert_array_equal(m(np.array([3, 7])), w_in[[3, 7]])
    hs = build_model(_cfg(output_rows=49), rngs=nnx.Rngs(params=0))
    assert hs.output[...].shape == (49, 16)  # one row per inner node of the Huffman tree


def test_same_seed_same_tables():
    a = build_model(_cfg(), rngs=nnx.Rngs(params=3)).input[...]
    b = build_model(_cfg(), rngs=nnx.Rngs(params=3)).input[...]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("field,value,match", [("vocab_size", 0, "model.vocab_size"),
                                               ("dim", 0, "model.dim"),
                                               ("param_dtype", "bfloat16", "model.param_dtype")])
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        build_model(_cfg(**{field: value}), rngs=nnx.Rngs(params=0))


def _task(tmp_path, **task):
    from llm_jax.tasks.word2vec import Word2VecTask
    from tests.conftest import load_config
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c d a b a e\nb c a d\n" * 5)
    c = load_config("word2vec", "tiny")
    c.task.update(corpus_file=str(corpus), min_count=1, max_sentences=0, **task)
    return Word2VecTask(c)


def _sgns_numpy_update(w_in, w_out, inputs, targets, negatives, lr, weights):
    """The reference tool's updates, all computed from the tables before the batch, then summed."""
    new_in, new_out = w_in.copy(), w_out.copy()
    for i, t, negs, wt in zip(inputs, targets, negatives, weights):
        h = w_in[i]
        for j, label in [(t, 1.0)] + [(n, 0.0) for n in negs if n != t]:
            g = wt * (label - 1 / (1 + np.exp(-h @ w_out[j]))) * lr
            new_in[i] += g * w_out[j]
            new_out[j] += g * h
    return new_in, new_out


def test_sparse_update_is_summed_per_pair_sgd(tmp_path):
    task = _task(tmp_path, max_row_updates=0)
    rng = np.random.default_rng(0)
    v = task.vocab_size
    w_in = rng.normal(size=(v, 16)).astype(np.float32) * 0.3
    w_out = rng.normal(size=(v, 16)).astype(np.float32) * 0.3
    batch = dict(inputs=rng.integers(0, v, (1, 8)).astype(np.int32),
                 targets=rng.integers(0, v, (1, 8)).astype(np.int32),
                 negatives=rng.integers(0, v, (1, 8, 5)).astype(np.int32),
                 weights=np.array([[1, 1, 1, 1, 1, 1, 0, 0]], np.float32),
                 lr=np.array([0.1], np.float32))
    new_in, new_out, loss, n = task.make_update()(w_in, w_out, batch)
    want_in, want_out = _sgns_numpy_update(w_in, w_out, batch["inputs"][0], batch["targets"][0],
                                           batch["negatives"][0], 0.1, batch["weights"][0])
    np.testing.assert_allclose(new_in, want_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_out, want_out, rtol=1e-4, atol=1e-5)
    assert float(n) == 6


def test_row_update_cap_scales_repeated_rows_only(tmp_path):
    from llm_jax.tasks.word2vec import _repeat_scale
    rows = np.array([[0, 1], [0, 2], [0, 3]])
    weights = np.array([[1, 1], [1, 1], [1, 0]], np.float32)
    scale = np.asarray(_repeat_scale(rows, weights, 4, 2))[..., 0]
    np.testing.assert_allclose(scale, [[2 / 3, 1], [2 / 3, 1], [2 / 3, 1]])
    task = _task(tmp_path, objective="hs")
    v = task.vocab_size
    w_in = np.full((v, 16), 0.5, np.float32)
    w_out = np.full((task.output_rows, 16), 0.5, np.float32)
    batch = dict(inputs=np.zeros((1, 256), np.int32), targets=np.ones((1, 256), np.int32),
                 weights=np.ones((1, 256), np.float32), lr=np.array([0.025], np.float32))
    _, new_out, _, _ = task.make_update()(w_in, w_out, batch)
    root = task.tree.points[1, 0]
    # one word repeated 256 times: the root moves by at most 32 single-pair updates
    one_pair = 0.025 * 0.5 * 1.0
    assert np.abs(np.asarray(new_out)[root] - 0.5).max() <= 32 * one_pair + 1e-6
