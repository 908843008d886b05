import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax import ops
from llm_jax.layers import BlockConfig, DecoderBlock, DecoderStack, EncoderBlock, EncoderStack

CFG = BlockConfig(embed_dim=8, num_heads=2, mlp_dim=16, num_layers=2)


def rand(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def n_params(module):
    return sum(a.size for a in jax.tree.leaves(nnx.state(module, nnx.Param)))


def loss_and_grads(module, loss):
    """loss(module) and d loss / d params (a flat list), under one jit: a single compile is
    faster than running the Python layer loop's ops one by one."""
    graphdef, state = nnx.split(module)
    value, g = jax.jit(jax.value_and_grad(lambda s: loss(nnx.merge(graphdef, s))))(state)
    return value, jax.tree.leaves(g)


def project(y):
    """A fixed random linear read-out: sum(y ** 2) would be constant after a final LN, leaving
    gradients that are pure rounding noise."""
    return jnp.sum(y * rand(*y.shape, seed=9))


@pytest.mark.parametrize("pre_ln", [True, False])
def test_encoder_block_is_bidirectional_and_respects_padding(pre_ln):
    block = EncoderBlock(dataclasses.replace(CFG, pre_ln=pre_ln), rngs=nnx.Rngs(0))
    x = rand(2, 5, 8)
    g = jax.grad(lambda x: block(x)[0, 0].sum())(x)
    assert np.all(np.abs(g[0]).sum(-1) > 0)  # position 0 depends on every later position
    valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    mask = ops.padding_mask(valid)
    a = block(x, mask=mask)
    b = block(x.at[1, 3:].set(7.0), mask=mask)
    np.testing.assert_allclose(a[1, :3], b[1, :3], atol=1e-6)
    assert not np.allclose(block(x.at[1, 3:].set(7.0))[1, :3], a[1, :3])  # the mask mattered


@pytest.mark.parametrize("pre_ln,cross", [(True, False), (False, True)])
def test_decoder_block_is_causal(pre_ln, cross):
    block = DecoderBlock(dataclasses.replace(CFG, pre_ln=pre_ln), cross_attention=cross,
                         rngs=nnx.Rngs(0))
    x = rand(1, 6, 8)
    enc = rand(1, 4, 8, seed=1) if cross else None
    t = 2
    g = jax.grad(lambda x: block(x, encoded=enc)[0][0, t].sum())(x)
    influence = np.abs(np.asarray(g[0])).sum(-1)
    assert np.all(influence[t + 1:] == 0) and np.all(influence[:t + 1] > 0)


@pytest.mark.parametrize("pre_ln", [True, False])
def test_cached_decoding_with_cross_attention_equals_full_forward(pre_ln):
    stack = DecoderStack(dataclasses.replace(CFG, pre_ln=pre_ln), cross_attention=True,
                         rngs=nnx.Rngs(0))
    x, enc = rand(2, 5, 8), rand(2, 4, 8, seed=1)
    cross_mask = ops.padding_mask(np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool))
    full, _ = stack(x, encoded=enc, cross_mask=cross_mask)
    cache = stack.init_cache(2, 7, encoded=enc)
    assert cache["cross_k"].shape == (2, 2, 4, 2, 4) and cache["k"].shape == (2, 2, 7, 2, 4)

    @jax.jit
    def step(x, cache):
        return stack(x, cross_mask=cross_mask, cache=cache)

    out, cache = step(x[:, :2], cache)
    outs = [out]
    for t in range(2, 5):
        out, cache = step(x[:, t:t + 1], cache)
        outs.append(out)
    assert int(cache["index"]) == 5
    np.testing.assert_allclose(jnp.concatenate(outs, 1), full, atol=1e-5)


def test_shared_stack_applies_one_layer_n_times():
    cfg = dataclasses.replace(CFG, num_layers=3)
    stack = EncoderStack(cfg, shared=True, rngs=nnx.Rngs(0))
    unshared = EncoderStack(cfg, rngs=nnx.Rngs(0))
    assert n_params(stack) * cfg.num_layers == n_params(unshared)
    assert "layers" not in jax.tree.leaves(nnx.get_partition_spec(nnx.state(stack)))
    x = rand(2, 5, 8)
    mask = ops.padding_mask(np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool))
    by_hand = x
    for _ in range(cfg.num_layers):
        by_hand = stack.block(by_hand, mask=mask)
    np.testing.assert_allclose(stack(x, mask=mask), by_hand, atol=1e-5)


def test_shared_decoder_cache():
    stack = DecoderStack(CFG, cross_attention=True, shared=True, rngs=nnx.Rngs(0))
    x, enc = rand(1, 3, 8), rand(1, 4, 8, seed=1)
    full, _ = stack(x, encoded=enc)
    cache = stack.init_cache(1, 3, encoded=enc)
    assert cache["cross_v"].shape == (2, 1, 4, 2, 4)
    out, _ = stack(x, cache=cache)
    np.testing.assert_allclose(out, full, atol=1e-5)


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="model.remat"):
        EncoderStack(CFG, remat="some", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model.norm"):
        EncoderBlock(dataclasses.replace(CFG, norm="batch"), rngs=nnx.Rngs(0))
    stack = DecoderStack(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="cross_attention"):
        stack.init_cache(1, 4, encoded=rand(1, 2, 8))
    with pytest.raises(ValueError, match="without cross-attention"):
        stack(rand(1, 2, 8), encoded=rand(1, 2, 8))
    cross = DecoderStack(CFG, cross_attention=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="encoded"):
        cross(rand(1, 2, 8))


# Each case: (stack, loss of the stack) over the same tiny inputs.
def _encoder(**kw):
    x, bias = rand(2, 5, 8), rand(1, 2, 5, 5, seed=2)
    mask = ops.padding_mask(np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool))
    return (EncoderStack(CFG, rngs=nnx.Rngs(0), **kw),
            lambda s: project(s(x, mask=mask, bias=bias)))


def _t5_like_shared_encoder(**kw):
    cfg = dataclasses.replace(CFG, norm="rms", use_bias=False, attn_scale=1.0, dropout_rate=0.1)
    x = rand(2, 5, 8)
    return (EncoderStack(cfg, shared=True, rngs=nnx.Rngs(0), **kw),
            lambda s: project(s(x, dropout_key=jax.random.key(1))))


def _decoder(**kw):
    cfg = dataclasses.replace(CFG, pre_ln=False)
    x, enc = rand(2, 5, 8), rand(2, 4, 8, seed=1)
    return (DecoderStack(cfg, cross_attention=True, rngs=nnx.Rngs(0), **kw),
            lambda s: project(s(x, encoded=enc)[0]))


def _decoder_with_cache(**kw):
    x, enc = rand(2, 3, 8), rand(2, 4, 8, seed=1)

    def loss(s):
        y, cache = s(x, cache=s.init_cache(2, 4, encoded=enc))
        return project(y) + project(cache["k"]) + project(cache["cross_v"])
    return DecoderStack(CFG, cross_attention=True, rngs=nnx.Rngs(0), **kw), loss


CASES = [_encoder, _t5_like_shared_encoder, _decoder, _decoder_with_cache]


@pytest.mark.parametrize("case", CASES)
def test_scan_and_loop_over_layers_agree(case):
    scanned, loss = case()
    looped, _ = case(scan_layers=False)
    # Same parameter tree, so a checkpoint of one restores into the other.
    assert jax.tree.map(jnp.shape, nnx.state(scanned)) == jax.tree.map(jnp.shape, nnx.state(looped))
    (loss_loop, g_loop), (loss_scan, g_scan) = (loss_and_grads(m, loss) for m in (looped, scanned))
    np.testing.assert_allclose(loss_loop, loss_scan, rtol=1e-6)
    for a, b in zip(g_loop, g_scan, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# Each policy on each kind of stack, scanned and looped, without compiling every combination.
@pytest.mark.parametrize("case,remat,scan_layers", [
    (_encoder, "full", True), (_encoder, "dots", False), (_t5_like_shared_encoder, "dots", True),
    (_decoder, "dots", True), (_decoder_with_cache, "full", False)])
def test_remat_keeps_gradients(case, remat, scan_layers):
    plain, loss = case()
    rematted, _ = case(remat=remat, scan_layers=scan_layers)
    # Remat recomputes the same forward ops, but XLA may fuse the recomputation differently
    # from the saved version, so gradients agree to float32 rounding, not bitwise.
    for a, b in zip(loss_and_grads(rematted, loss)[1], loss_and_grads(plain, loss)[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_sparse_layers_take_the_sparse_mask_only_where_flagged():
    """sparse_mask applies in the flagged layers only, in the scan and in the Python loop."""
    x = rand(1, 6, 8)
    band = ops.local_mask(6, window=2)
    for scan in (True, False):
        stack = DecoderStack(CFG, scan_layers=scan, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(stack.blocks)
        by_hand = x
        for i, mask in enumerate([None, band]):
            block = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
            by_hand, _ = block(by_hand, mask=mask)
        y, _ = stack(x, sparse_mask=band, sparse_layers=(False, True))
        np.testing.assert_allclose(y, by_hand, atol=1e-5)
    with pytest.raises(ValueError, match="go together"):
        stack(x, sparse_mask=band)
    with pytest.raises(ValueError, match=r"bool\[2\]"):
        stack(x, sparse_mask=band, sparse_layers=(True,))


def test_hoisted_layers_give_the_stacks_outputs_and_cache():
    """hoist_layers (decoding's per-layer weight slices, taken once) changes no number: the
    output and the cache of a cached step, with cross-attention and the sparse flags."""
    x, enc = rand(2, 3, 8), rand(2, 4, 8, seed=1)
    band = ops.local_mask(3, 4, window=2)

    def run(stack):
        y, cache = stack(x, cache=stack.init_cache(2, 4, encoded=enc), sparse_mask=band,
                         sparse_layers=(False, True))
        y2, cache = stack(x[:, :1], cache=cache)
        return y, y2, cache

    want = run(DecoderStack(CFG, cross_attention=True, rngs=nnx.Rngs(0)))
    hoisted = DecoderStack(CFG, cross_attention=True, rngs=nnx.Rngs(0))
    hoisted.hoist_layers()
    assert len(hoisted.hoisted) == CFG.num_layers
    for a, b in zip(jax.tree.leaves(run(hoisted)), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
