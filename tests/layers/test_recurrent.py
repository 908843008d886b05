"""Recurrent cells against NumPy references; run_cell over time, reversed and masked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.layers.recurrent import GRUCell, LSTMCell, SimpleRNNCell, make_cell, run_cell

B, D, H = 3, 5, 4


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_lstm(p, carry, x, forget_bias=0.0, cell_clip=None, w_proj=None):
    c, h = carry
    gates = x @ p["w_in"] + p["b_in"] + h @ p["w_rec"]
    hd = c.shape[-1]
    i, f, g, o = (gates[:, k * hd:(k + 1) * hd] for k in range(4))
    c = sigmoid(f + forget_bias) * c + sigmoid(i) * np.tanh(g)
    if cell_clip:
        c = np.clip(c, -cell_clip, cell_clip)
    h = sigmoid(o) * np.tanh(c)
    if w_proj is not None:
        h = h @ w_proj
    return (c, h), h


def np_gru(p, h, x):
    hd = h.shape[-1]
    xg = x @ p["w_in"] + p["b_in"]
    hg = h @ p["w_rec"] + p["b_rec"]
    r = sigmoid(xg[:, :hd] + hg[:, :hd])
    z = sigmoid(xg[:, hd:2 * hd] + hg[:, hd:2 * hd])
    n = np.tanh(xg[:, 2 * hd:] + r * hg[:, 2 * hd:])
    h = (1 - z) * n + z * h
    return h, h


def np_rnn(p, h, x):
    h = np.tanh(x @ p["w_in"] + p["b_in"] + h @ p["w_rec"])
    return h, h


def params_of(cell):
    return {k: np.asarray(v) for k, v in nnx.to_pure_dict(nnx.state(cell)).items()}


def random_like(carry, rng):
    return jax.tree.map(lambda z: rng.normal(size=z.shape).astype(np.float32), carry)


@pytest.mark.parametrize("kind", ["lstm", "lstm_proj", "gru", "rnn"])
def test_cell_step_matches_numpy(kind):
    rng = np.random.default_rng(0)
    rngs = nnx.Rngs(params=0)
    if kind == "lstm":
        cell = LSTMCell(D, H, rngs=rngs, forget_bias=1.0)
        ref = lambda p, c, x: np_lstm(p, c, x, forget_bias=1.0)  # noqa: E731
    elif kind == "lstm_proj":
        cell = LSTMCell(D, H, rngs=rngs, proj_dim=2, cell_clip=0.5)
        ref = lambda p, c, x: np_lstm(p, c, x, cell_clip=0.5, w_proj=p["w_proj"])  # noqa: E731
    elif kind == "gru":
        cell, ref = GRUCell(D, H, rngs=rngs), np_gru
    else:
        cell, ref = SimpleRNNCell(D, H, rngs=rngs), np_rnn
    p = params_of(cell)
    carry = random_like(cell.initial_carry(B), rng)
    x = rng.normal(size=(B, D)).astype(np.float32)
    new_carry, y = cell(jax.tree.map(jnp.asarray, carry), jnp.asarray(x))
    want_carry, want_y = ref(p, carry, x)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 new_carry, want_carry)
    assert y.shape == (B, cell.out_dim)


def test_initial_carry_is_zeros_of_the_right_shape():
    c, h = LSTMCell(D, H, rngs=nnx.Rngs(params=0), proj_dim=2).initial_carry(B)
    assert c.shape == (B, H) and h.shape == (B, 2)
    assert not np.any(c) and not np.any(h)


def test_init_scale_gives_uniform_kernels_and_zero_biases():
    p = params_of(LSTMCell(50, 60, rngs=nnx.Rngs(params=0), init_scale=0.05))
    assert np.abs(p["w_in"]).max() <= 0.05 and np.abs(p["w_in"]).max() > 0.045
    assert p["w_in"].min() < -0.045  # symmetric, not [0, s)
    assert not np.any(p["b_in"])


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_run_cell_equals_a_python_loop(kind):
    rng = np.random.default_rng(1)
    cell = make_cell(kind, D, H, rngs=nnx.Rngs(params=0))
    x = jnp.asarray(rng.normal(size=(B, 6, D)).astype(np.float32))
    carry, y = run_cell(cell, cell.initial_carry(B), x)
    c, ys = cell.initial_carry(B), []
    for t in range(6):
        c, yt = cell(c, x[:, t])
        ys.append(yt)
    np.testing.assert_allclose(y, jnp.stack(ys, 1), rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry, c)


def test_carry_over_two_chunks_equals_one_long_sequence():
    """Truncated BPTT relies on this: the carry of chunk 1 continues into chunk 2 exactly."""
    rng = np.random.default_rng(2)
    cell = LSTMCell(D, H, rngs=nnx.Rngs(params=0))
    x = jnp.asarray(rng.normal(size=(B, 8, D)).astype(np.float32))
    carry_full, y_full = run_cell(cell, cell.initial_carry(B), x)
    carry1, y1 = run_cell(cell, cell.initial_carry(B), x[:, :5])
    carry2, y2 = run_cell(cell, carry1, x[:, 5:])
    np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y_full, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 carry2, carry_full)


def test_reverse_and_mask():
    """Reversed with right padding: each row's output equals the reverse pass over its own
    unpadded tokens, and padded positions output zeros."""
    rng = np.random.default_rng(3)
    cell = GRUCell(D, H, rngs=nnx.Rngs(params=0))
    x = jnp.asarray(rng.normal(size=(2, 5, D)).astype(np.float32))
    lengths = [5, 3]
    mask = jnp.asarray(np.arange(5)[None, :] < np.array(lengths)[:, None])
    _, y = run_cell(cell, cell.initial_carry(2), x, reverse=True, mask_BT=mask)
    for b, n in enumerate(lengths):
        _, want = run_cell(cell, cell.initial_carry(1), x[b:b + 1, :n], reverse=True)
        np.testing.assert_allclose(y[b, :n], want[0], rtol=1e-5, atol=1e-6)
        assert not np.any(y[b, n:])


def test_unknown_cell_names_the_field():
    with pytest.raises(ValueError, match=r"config\.model\.cell='lstmm'.*'lstm', 'gru', 'rnn'"):
        make_cell("lstmm", D, H, rngs=nnx.Rngs(params=0))
    with pytest.raises(ValueError, match="proj_dim"):
        make_cell("gru", D, H, rngs=nnx.Rngs(params=0), proj_dim=3)
