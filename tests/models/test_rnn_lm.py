"""The stacked recurrent LM: carry-over between chunks, dropout, tying, bad config; the stream task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.models import build_model, rnn_lm
from llm_jax.tasks.stream_lm import StreamLM


def small_cfg(**kw):
    cfg = rnn_lm.default_config()
    cfg.update(vocab_size=37, hidden_dim=8, num_layers=2, **kw)
    return cfg


def tokens(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 37, shape), jnp.int32)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_two_chunks_with_carry_equal_one_long_sequence(cell):
    model = build_model(small_cfg(cell=cell, init_scale=0.5), rngs=nnx.Rngs(params=0))
    x = tokens((3, 9))
    logits_full, carry_full = model(x)
    logits1, carry1 = model(x[:, :4])
    logits2, carry2 = model(x[:, 4:], carry1)
    np.testing.assert_allclose(jnp.concatenate([logits1, logits2], 1), logits_full,
                               rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 carry2, carry_full)
    assert logits_full.shape == (3, 9, 37)
    # a fresh state gives different logits: the carry is really used
    assert np.abs(model(x[:, 4:])[0] - logits2).max() > 1e-3


def test_dropout_only_with_a_key():
    model = build_model(small_cfg(dropout_rate=0.5), rngs=nnx.Rngs(params=0))
    x = tokens((2, 5))
    np.testing.assert_array_equal(model(x)[0], model(x)[0])
    a = model(x, dropout_key=jax.random.key(1))[0]
    b = model(x, dropout_key=jax.random.key(2))[0]
    assert not np.allclose(a, b)


def test_tied_embeddings_share_the_table():
    tied = build_model(small_cfg(tie_embeddings=True), rngs=nnx.Rngs(params=0))
    untied = build_model(small_cfg(), rngs=nnx.Rngs(params=0))
    count = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m)))  # noqa: E731
    assert count(untied) - count(tied) == 8 * 37
    with pytest.raises(ValueError, match="model.tie_embeddings.*embed_dim"):
        build_model(small_cfg(tie_embeddings=True, embed_dim=6), rngs=nnx.Rngs(params=0))


def test_init_scale_bounds_every_weight():
    model = build_model(small_cfg(init_scale=0.05), rngs=nnx.Rngs(params=0))
    for leaf in jax.tree.leaves(nnx.state(model)):
        assert np.abs(np.asarray(leaf)).max() <= 0.05


def test_unknown_cell_names_the_field():
    with pytest.raises(ValueError, match=r"config\.model\.cell='transformer'"):
        build_model(small_cfg(cell="transformer"), rngs=nnx.Rngs(params=0))


class _Task(StreamLM):
    """StreamLM without reading a corpus: only its loss is under test."""

    def __init__(self, sum_over_time=False):
        self.cfg = StreamLM.default_config()
        self.cfg.sum_over_time = sum_over_time


def test_reset_zeroes_the_carry_and_loss_scaling():
    model = build_model(small_cfg(), rngs=nnx.Rngs(params=0))
    x = tokens((3, 6), seed=1)
    batch = {"inputs": x[:, :5], "targets": x[:, 1:], "reset": jnp.array([True, False, True])}
    carry = jax.tree.map(lambda c: jnp.ones_like(c), model.initial_carry(3))
    loss, (metrics, _) = _Task().carry_loss(model, carry, batch)
    logits_zero, _ = model(batch["inputs"])
    logits_carry, _ = model(batch["inputs"], carry)
    # rows 0 and 2 reset (zero state), row 1 continues the given carry
    want = jnp.stack([logits_zero[0], logits_carry[1], logits_zero[2]])
    nll = -jnp.take_along_axis(jax.nn.log_softmax(want), batch["targets"][..., None], -1)
    total, weight = metrics["loss"]  # (sum, weight): 15 scored tokens
    assert weight == 15
    np.testing.assert_allclose(total / weight, nll.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, nll.mean(), rtol=1e-5)  # the loss minimised, not just reported
    # sum_over_time (Zaremba et al.): summed over the 5 steps, averaged over the 3 rows
    summed, (m2, _) = _Task(sum_over_time=True).carry_loss(model, carry, batch)
    np.testing.assert_allclose(summed, nll.sum() / 3, rtol=1e-5)
    assert m2["loss"] == metrics["loss"]  # the reported NLL is per token either way


def test_no_gradient_flows_into_the_carried_state():
    model = build_model(small_cfg(), rngs=nnx.Rngs(params=0))
    x = tokens((2, 6), seed=2)
    batch = {"inputs": x[:, :5], "targets": x[:, 1:]}
    carry = model.initial_carry(2)
    new_carry = _Task().carry_loss(model, carry, batch)[1][1]
    grads = jax.grad(lambda c: sum(jnp.sum(v) for v in jax.tree.leaves(
        _Task().carry_loss(model, c, batch)[1][1])))(carry)
    assert all(not np.any(g) for g in jax.tree.leaves(grads))
    assert any(np.any(v) for v in jax.tree.leaves(new_carry))
