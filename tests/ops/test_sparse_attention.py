"""Sparse Transformer masks against plain loops; masked-dense and blocked-local attention
against dense attention under the same mask (forward and gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax import ops


def ref_local(T, S, w, off=0):
    m = np.zeros((T, S), bool)
    for i in range(T):
        for j in range(S):
            m[i, j] = i + off - w < j <= i + off
    return m


def ref_strided(T, S, stride, window, off=0):
    m = np.zeros((T, S), bool)
    for i in range(T):
        p = i + off
        for j in range(S):
            m[i, j] = j <= p and (p - j < window or (p - j) % stride == 0)
    return m


def ref_fixed(T, S, stride, c, off=0):
    m = np.zeros((T, S), bool)
    for i in range(T):
        p = i + off
        for j in range(S):
            m[i, j] = j <= p and (j // stride == p // stride or j % stride >= stride - c)
    return m


MASKS = {  # name -> (ops mask, reference), both (T, S, offset) -> [T, S]
    "local4": (lambda T, S, o: ops.local_mask(T, S, window=4, q_offset=o),
               lambda T, S, o: ref_local(T, S, 4, o)),
    "local1": (lambda T, S, o: ops.local_mask(T, S, window=1, q_offset=o),
               lambda T, S, o: ref_local(T, S, 1, o)),
    "strided3": (lambda T, S, o: ops.strided_mask(T, S, stride=3, q_offset=o),
                 lambda T, S, o: ref_strided(T, S, 3, 3, o)),
    "strided4_w2": (lambda T, S, o: ops.strided_mask(T, S, stride=4, window=2, q_offset=o),
                    lambda T, S, o: ref_strided(T, S, 4, 2, o)),
    "strided4_only": (lambda T, S, o: ops.strided_mask(T, S, stride=4, window=0, q_offset=o),
                      lambda T, S, o: ref_strided(T, S, 4, 0, o)),
    "fixed4_c1": (lambda T, S, o: ops.fixed_mask(T, S, stride=4, c=1, q_offset=o),
                  lambda T, S, o: ref_fixed(T, S, 4, 1, o)),
    "fixed5_c2": (lambda T, S, o: ops.fixed_mask(T, S, stride=5, c=2, q_offset=o),
                  lambda T, S, o: ref_fixed(T, S, 5, 2, o)),
}


@pytest.mark.parametrize("name", sorted(MASKS))
@pytest.mark.parametrize("T,S,off", [(13, 13, 0), (16, 16, 0), (3, 16, 9), (1, 16, 15)])
def test_masks_equal_reference_loops(name, T, S, off):
    """Full square masks, and the rows a KV-cache step sees (T new queries at `off`)."""
    fn, ref = MASKS[name]
    np.testing.assert_array_equal(np.asarray(fn(T, S, off)), ref(T, S, off))


def test_mask_shapes_of_the_papers_patterns():
    """Spot checks read off Child et al.'s Figure 3 (stride 4)."""
    strided = np.asarray(ops.strided_mask(12, stride=4))
    assert np.flatnonzero(strided[11]).tolist() == [3, 7, 8, 9, 10, 11]
    fixed = np.asarray(ops.fixed_mask(12, stride=4, c=1))
    assert np.flatnonzero(fixed[9]).tolist() == [3, 7, 8, 9]
    assert np.asarray(ops.local_mask(6, window=100)).tolist() == np.tril(np.ones((6, 6), bool)).tolist()


@pytest.mark.parametrize("call,match", [
    (lambda: ops.local_mask(4, window=0), "window=0"),
    (lambda: ops.strided_mask(4, stride=0), "stride=0"),
    (lambda: ops.fixed_mask(4, stride=4, c=5), "c=5"),
    (lambda: ops.fixed_mask(4, stride=4, c=0), "c=0"),
    (lambda: ops.local_attention(*[jnp.zeros((1, 4, 2, 8))] * 3, window=0), "window=0"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def qkv(T, H=2, D=8, H_kv=None, seed=0):
    rng = np.random.RandomState(seed)
    shapes = [(2, T, H, D), (2, T, H_kv or H, D), (2, T, H_kv or H, D)]
    return [jnp.asarray(rng.randn(*s).astype(np.float32)) for s in shapes]


def numpy_attention(q, k, v, mask):
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    logits = np.where(mask, logits, -np.inf)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhts,bshd->bthd", p, v)


def bias_attention(q, k, v, mask):
    """Dense attention with the mask as an additive -inf bias: another route to the same math."""
    logits = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    logits = logits + jnp.where(jnp.asarray(mask), 0.0, -jnp.inf)
    return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(logits, -1), v)


def grads(fn, q, k, v, seed=1):
    ct = jnp.asarray(np.random.RandomState(seed).randn(*q.shape).astype(np.float32))
    # jitted: eager dispatch of every small op costs more than compiling here
    return jax.jit(jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v) * ct), argnums=(0, 1, 2)))(q, k, v)


def assert_close_with_grads(fn, ref_fn, q, k, v):
    np.testing.assert_allclose(jax.jit(fn)(q, k, v), jax.jit(ref_fn)(q, k, v), atol=1e-5,
                               rtol=1e-5)
    for got, want in zip(grads(fn, q, k, v), grads(ref_fn, q, k, v), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MASKS))
@pytest.mark.parametrize("T", [13, 16])
def test_masked_dense_equals_reference_attention(name, T):
    fn, ref = MASKS[name]
    q, k, v = qkv(T)
    mask = ref(T, T, 0)
    out = ops.dot_product_attention(q, k, v, fn(T, T, 0))
    np.testing.assert_allclose(out, numpy_attention(q, k, v, mask), atol=1e-5)
    assert_close_with_grads(lambda q, k, v: ops.dot_product_attention(q, k, v, fn(T, T, 0)),
                            lambda q, k, v: bias_attention(q, k, v, mask), q, k, v)


@pytest.mark.parametrize("T,w", [
    (16, 4),   # T a multiple of w: no padding
    (13, 4),   # odd T, padded to 16
    (13, 5),   # odd w
    (7, 1),    # each query sees only itself
    (6, 6),    # w == T: one block, plain causal
    (5, 32),   # w > T: clamped to T, plain causal
])
def test_blocked_local_equals_masked_dense(T, w):
    q, k, v = qkv(T)
    dense = lambda q, k, v: ops.dot_product_attention(  # noqa: E731
        q, k, v, ops.local_mask(T, window=w))
    blocked = lambda q, k, v: ops.local_attention(q, k, v, window=w)  # noqa: E731
    np.testing.assert_allclose(blocked(q, k, v), numpy_attention(q, k, v, ref_local(T, T, w)),
                               atol=1e-5)
    assert_close_with_grads(blocked, dense, q, k, v)


def test_blocked_local_with_grouped_kv_scale_and_bf16():
    q, k, v = qkv(11, H=4, H_kv=2)
    mask = ops.local_mask(11, window=3)
    np.testing.assert_allclose(ops.local_attention(q, k, v, window=3, scale=0.5),
                               ops.dot_product_attention(q, k, v, mask, scale=0.5), atol=1e-5)
    bf = [a.astype(jnp.bfloat16) for a in (q, k, v)]
    out = ops.local_attention(*bf, window=3)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(np.float32),
                               ops.dot_product_attention(*bf, mask).astype(np.float32), atol=2e-2)


def test_blocked_local_memory_grows_with_t_times_w():
    """Compiled temporaries: ~linear in T for the blocked path, ~quadratic for masked dense."""
    def temp(fn, T):
        q = jax.ShapeDtypeStruct((1, T, 2, 16), jnp.float32)
        return jax.jit(fn).lower(q, q, q).compile().memory_analysis().temp_size_in_bytes

    blocked = lambda q, k, v: ops.local_attention(q, k, v, window=16)  # noqa: E731
    dense = lambda q, k, v: ops.dot_product_attention(  # noqa: E731
        q, k, v, ops.local_mask(q.shape[1], window=16))
    assert temp(blocked, 512) < 3 * temp(blocked, 256)
    assert temp(dense, 512) > 3.5 * temp(dense, 256)
    assert temp(blocked, 512) < temp(dense, 512) / 4
