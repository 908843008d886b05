"""word2vec losses and their row gradients against plain NumPy (the reference tool's update rule)."""

import numpy as np
import pytest

from llm_jax.ops import word2vec as ops


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _sgns_numpy(h, out, w):
    """Loss and the C tool's per-pair update written out: g = label - sigmoid(h.v)."""
    score = np.einsum("bd,bsd->bs", h, out)
    label = np.zeros_like(score)
    label[:, 0] = 1.0
    sign = 2 * label - 1
    loss = -np.sum(w * np.log(_sigmoid(sign * score)), axis=1)
    g = (label - _sigmoid(score)) * w           # ascent direction, as in word2vec.c
    return loss, -np.einsum("bs,bsd->bd", g, out), -g[..., None] * h[:, None, :]


def _hs_numpy(h, nodes, codes, mask):
    score = np.einsum("bd,bld->bl", h, nodes)
    g = (1.0 - codes - _sigmoid(score)) * mask  # word2vec.c: g = (1 - code - f) * alpha
    loss = -np.sum(mask * np.log(_sigmoid((1 - 2 * codes) * score)), axis=1)
    return loss, -np.einsum("bl,bld->bd", g, nodes), -g[..., None] * h[:, None, :]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_negative_sampling_loss_and_grads_match_numpy(rng):
    h = rng.normal(size=(6, 8)).astype(np.float32)
    out = rng.normal(size=(6, 4, 8)).astype(np.float32)
    w = (rng.random((6, 4)) > 0.2).astype(np.float32)
    loss, dh, dout = _sgns_numpy(h, out, w)
    np.testing.assert_allclose(ops.negative_sampling_loss(h, out, w), loss, rtol=1e-5, atol=1e-5)
    total, (g_h, g_out) = ops.loss_and_row_grads(ops.negative_sampling_loss, h, out, w)
    np.testing.assert_allclose(total, loss.sum(), rtol=1e-5)
    np.testing.assert_allclose(g_h, dh, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_out, dout, rtol=1e-4, atol=1e-5)
    total, (g_h, g_out) = ops.logistic_loss_and_row_grads(h, out, ops.negative_sampling_labels(out), w)
    np.testing.assert_allclose(total, loss.sum(), rtol=1e-5)
    np.testing.assert_allclose(g_h, dh, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_out, dout, rtol=1e-4, atol=1e-5)


def test_hierarchical_softmax_loss_and_grads_match_numpy(rng):
    h = rng.normal(size=(5, 8)).astype(np.float32)
    nodes = rng.normal(size=(5, 7, 8)).astype(np.float32)
    codes = rng.integers(0, 2, (5, 7)).astype(np.float32)
    mask = (np.arange(7)[None] < rng.integers(1, 8, 5)[:, None]).astype(np.float32)
    loss, dh, dnodes = _hs_numpy(h, nodes, codes, mask)
    np.testing.assert_allclose(ops.hierarchical_softmax_loss(h, nodes, codes, mask), loss, rtol=1e-5,
                               atol=1e-5)
    _, (g_h, g_nodes) = ops.loss_and_row_grads(ops.hierarchical_softmax_loss, h, nodes, codes, mask)
    np.testing.assert_allclose(g_h, dh, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_nodes, dnodes, rtol=1e-4, atol=1e-5)
    total, (g_h, g_nodes) = ops.logistic_loss_and_row_grads(h, nodes, 1.0 - codes, mask)
    np.testing.assert_allclose(total, loss.sum(), rtol=1e-5)
    np.testing.assert_allclose(g_h, dh, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_nodes, dnodes, rtol=1e-4, atol=1e-5)


def test_hierarchical_softmax_is_a_distribution_over_leaves():
    """With a full binary tree of depth 2 over 4 words, P(word | h) sums to 1."""
    rng = np.random.default_rng(1)
    h = np.tile(rng.normal(size=(1, 3)).astype(np.float32), (4, 1))
    inner = rng.normal(size=(3, 3)).astype(np.float32)  # root 0, children 1 and 2
    points = np.array([[0, 1], [0, 1], [0, 2], [0, 2]])
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    loss = ops.hierarchical_softmax_loss(h, inner[points], codes, np.ones((4, 2), np.float32))
    np.testing.assert_allclose(np.exp(-np.asarray(loss)).sum(), 1.0, rtol=1e-5)


def test_cbow_mean_ignores_absent_context_words(rng):
    ctx = rng.normal(size=(3, 4, 5)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    got = np.asarray(ops.cbow_mean(ctx, mask))
    np.testing.assert_allclose(got[0], ctx[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(got[1], ctx[1, 0], rtol=1e-6)
    np.testing.assert_allclose(got[2], 0.0)
