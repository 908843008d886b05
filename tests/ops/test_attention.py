import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.ops import (
    causal_mask,
    combine_masks,
    dot_product_attention,
    dropout,
    padding_mask,
    segment_mask,
)

# One compile per test instead of one per eager primitive keeps the suite fast.
attn = jax.jit(dot_product_attention, static_argnames="dropout_rate")


def ref_attention(q, k, v, mask=None, probs_scale=1.0, bias=None, scale=None):
    """float64 NumPy reference; q [B,T,H,D], k/v [B,S,Hkv,D], mask bool / bias -> [B,H,T,S]."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    rep = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, rep, axis=2), np.repeat(v, rep, axis=2)
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    logits = np.einsum("bthd,bshd->bhts", q, k) * scale
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    if mask is not None:
        logits = np.where(np.asarray(mask), logits, -1e30)
    logits = logits - logits.max(-1, keepdims=True)
    p = np.exp(logits)
    p = p / p.sum(-1, keepdims=True) * np.asarray(probs_scale)
    return np.einsum("bhts,bshd->bthd", p, v)


def rand_qkv(B=2, T=5, S=5, H=2, H_kv=None, D=4, seed=0):
    rng = np.random.default_rng(seed)
    H_kv = H if H_kv is None else H_kv
    q = rng.standard_normal((B, T, H, D)).astype(np.float32)
    k = rng.standard_normal((B, S, H_kv, D)).astype(np.float32)
    v = rng.standard_normal((B, S, H_kv, D)).astype(np.float32)
    return q, k, v


def test_causal_mask_matches_tril():
    np.testing.assert_array_equal(causal_mask(4), np.tril(np.ones((4, 4), bool)))
    # Query i at absolute position 3 + i over 6 keys (KV-cache decoding).
    expected = np.arange(6)[None, :] <= (3 + np.arange(2))[:, None]
    np.testing.assert_array_equal(causal_mask(2, 6, q_offset=3), expected)


def test_causal_mask_traced_offset():
    m = jax.jit(lambda off: causal_mask(1, 5, q_offset=off))(jnp.int32(2))
    np.testing.assert_array_equal(m, [[True, True, True, False, False]])


def test_padding_and_combine_masks():
    valid = np.array([[1, 1, 0], [1, 1, 1]], bool)
    pm = padding_mask(valid)
    assert pm.shape == (2, 1, 1, 3) and pm.dtype == jnp.bool_
    assert combine_masks(None, None) is None
    np.testing.assert_array_equal(combine_masks(None, pm), pm)
    both = combine_masks(causal_mask(3), None, pm)
    assert both.shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(both, np.tril(np.ones((3, 3), bool)) & valid[:, None, None, :])
    with pytest.raises(ValueError, match="B, S"):
        padding_mask(np.ones(3, bool))


def test_segment_mask_for_packed_examples():
    seg_q = np.array([[1, 1, 2, 2, 0]])
    seg_kv = np.array([[1, 2, 2, 0]])
    m = segment_mask(seg_q, seg_kv)
    assert m.shape == (1, 1, 5, 4) and m.dtype == jnp.bool_
    expected = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(m[0, 0], expected.astype(bool))
    with pytest.raises(ValueError, match="segment ids"):
        segment_mask(seg_q[0], seg_kv)


def test_packed_examples_do_not_see_each_other():
    # Two examples packed in one row give the same outputs as each run on its own.
    q, k, v = rand_qkv(B=1, T=5, S=5)
    seg = np.array([[1, 1, 1, 2, 2]])
    packed = attn(q, k, v, combine_masks(causal_mask(5), segment_mask(seg, seg)))
    first = attn(q[:, :3], k[:, :3], v[:, :3], causal_mask(3))
    second = attn(q[:, 3:], k[:, 3:], v[:, 3:], causal_mask(2))
    np.testing.assert_allclose(packed, np.concatenate([first, second], 1), atol=1e-6)


def test_no_mask_matches_reference():
    q, k, v = rand_qkv(T=3, S=6)
    np.testing.assert_allclose(attn(q, k, v), ref_attention(q, k, v), atol=1e-5)


def test_causal_and_padding_mask():
    q, k, v = rand_qkv()
    valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    mask = combine_masks(causal_mask(5), padding_mask(valid))
    out = attn(q, k, v, mask)
    np.testing.assert_allclose(out, ref_attention(q, k, v, mask), atol=1e-5)


def test_q_offset_decoding_matches_full_pass():
    # The last 2 queries against all 6 keys == rows 4..5 of the full causal pass.
    q, k, v = rand_qkv(T=6, S=6)
    full = attn(q, k, v, causal_mask(6))
    step = attn(q[:, 4:], k, v, causal_mask(2, 6, q_offset=4))
    np.testing.assert_allclose(step, full[:, 4:], atol=1e-6)
    np.testing.assert_allclose(step, ref_attention(q[:, 4:], k, v, causal_mask(2, 6, 4)), atol=1e-5)


def test_fully_masked_row_is_finite():
    q, k, v = rand_qkv(S=3)
    valid = np.array([[1, 1, 0], [0, 0, 0]], bool)
    out = attn(q, k, v, padding_mask(valid))
    assert np.all(np.isfinite(out))
    # No key survives, so the row falls back to a uniform average of the values.
    np.testing.assert_allclose(out[1], np.broadcast_to(v[1].mean(0), out[1].shape), atol=1e-5)
    grads = jax.jit(jax.grad(lambda q: attn(q, k, v, padding_mask(valid)).sum()))(q)
    assert np.all(np.isfinite(grads))


def alibi_bias(H, T, S):
    """ALiBi's -slope_h * distance, [1, H, T, S]: a bias that differs per head and position."""
    slopes = 2.0 ** (-8.0 * np.arange(1, H + 1) / H)
    dist = np.abs(np.arange(T)[:, None] - np.arange(S)[None, :])
    return (-slopes[:, None, None] * dist)[None].astype(np.float32)


def test_bias_matches_reference():
    q, k, v = rand_qkv(T=3, S=6)
    # A [B, H, T, S] bias and ALiBi's [1, H, T, S] both broadcast.
    full = np.random.default_rng(1).standard_normal((2, 2, 3, 6)).astype(np.float32)
    for bias in (full, alibi_bias(2, 3, 6)):
        np.testing.assert_allclose(attn(q, k, v, bias=bias), ref_attention(q, k, v, bias=bias),
                                   atol=1e-5)
    # A bias constant along the keys cancels in the softmax.
    np.testing.assert_allclose(attn(q, k, v, bias=np.full((1, 2, 3, 1), 7.0, np.float32)),
                               attn(q, k, v), atol=1e-5)


def test_mask_and_bias_together():
    q, k, v = rand_qkv()
    valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    mask = combine_masks(causal_mask(5), padding_mask(valid))
    bias = alibi_bias(2, 5, 5)
    out = attn(q, k, v, mask, bias)
    np.testing.assert_allclose(out, ref_attention(q, k, v, mask, bias=bias), atol=1e-5)
    # Masked keys get no weight however large their bias.
    huge = np.where(np.asarray(mask), 0.0, 1e4).astype(np.float32)
    np.testing.assert_allclose(attn(q, k, v, mask, huge), attn(q, k, v, mask), atol=1e-5)


def test_fully_masked_row_with_bias_is_finite():
    q, k, v = rand_qkv(S=3)
    valid = np.array([[1, 1, 0], [0, 0, 0]], bool)
    bias = np.random.default_rng(2).standard_normal((2, 2, 5, 3)).astype(np.float32) * 10
    f = jax.jit(lambda q, bias: attn(q, k, v, padding_mask(valid), bias))
    assert np.all(np.isfinite(f(q, bias)))
    grads = jax.grad(lambda q, bias: f(q, bias).sum(), argnums=(0, 1))(q, bias)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_scale():
    q, k, v = rand_qkv()
    np.testing.assert_allclose(attn(q, k, v, scale=1.0), ref_attention(q, k, v, scale=1.0),
                               atol=1e-5)
    # The default is 1 / sqrt(D).
    np.testing.assert_allclose(attn(q, k, v, scale=0.5), attn(q, k, v), atol=1e-6)


def test_bf16_inputs_use_f32_softmax():
    q, k, v = rand_qkv(D=8)
    q16, k16, v16 = (jnp.asarray(a * s, jnp.bfloat16) for a, s in ((q, 4.0), (k, 4.0), (v, 1.0)))
    mask = causal_mask(5)
    out = attn(q16, k16, v16, mask)
    assert out.dtype == jnp.bfloat16
    ref = ref_attention(*(np.asarray(a, np.float32) for a in (q16, k16, v16)), mask)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=1e-2)
    # CPU hides bf16 rounding in the numbers, so also check the softmax's exp is f32.
    jaxpr = str(jax.make_jaxpr(dot_product_attention)(q16, k16, v16, mask))
    exp_dtypes = re.findall(r":(\w+)\[[\d,]*\] = exp\b", jaxpr)
    assert exp_dtypes == ["f32"], jaxpr


def test_grouped_query_attention():
    q, k, v = rand_qkv(H=4, H_kv=2)
    mask = causal_mask(5)
    out = attn(q, k, v, mask)
    assert out.shape == q.shape
    np.testing.assert_allclose(out, ref_attention(q, k, v, mask), atol=1e-5)
    # Query heads 0,1 share kv head 0: equal to running MHA with kv repeated.
    mha = attn(q, np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2), mask)
    np.testing.assert_allclose(out, mha, atol=1e-6)


def test_causality_through_gradients():
    q, k, v = rand_qkv(B=1, T=4, S=4)
    t = 1
    grad_k = jax.jit(jax.grad(lambda k: attn(q, k, v, causal_mask(4))[:, t].sum()))(k)
    assert np.all(grad_k[:, t + 1 :] == 0) and np.any(grad_k[:, : t + 1] != 0)


def test_attention_dropout():
    q, k, v = rand_qkv()
    base = attn(q, k, v)
    # Rate > 0 without a key, or a key with rate 0, is the deterministic path.
    np.testing.assert_array_equal(attn(q, k, v, dropout_rate=0.5), base)
    key = jax.random.key(0)
    np.testing.assert_array_equal(attn(q, k, v, dropout_key=key), base)

    @jax.jit  # one compile for both random draws
    def dropped_and_scale(key):
        out = dot_product_attention(q, k, v, dropout_rate=0.5, dropout_key=key)
        # Same key and [B,H,T,S] shape as inside attention: the 0-or-2 factor per prob.
        return out, dropout(jnp.ones((2, 2, 5, 5)), 0.5, key)

    dropped, scale = dropped_and_scale(key)
    assert not np.allclose(dropped, base)
    np.testing.assert_allclose(dropped, ref_attention(q, k, v, probs_scale=scale), atol=1e-5)


def test_bad_inputs_raise():
    q, k, v = rand_qkv(H=3)
    with pytest.raises(ValueError, match="multiple"):
        dot_product_attention(q, k[:, :, :2], v[:, :, :2])
    with pytest.raises(ValueError, match="boolean"):
        dot_product_attention(q, k, v, np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match="bias must be a float"):
        dot_product_attention(q, k, v, bias=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="shapes"):
        dot_product_attention(q[0], k, v)
