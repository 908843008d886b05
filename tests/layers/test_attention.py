import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax import ops
from llm_jax.layers import Attention

D, H = 8, 2


def rand(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def shapes(module):
    return jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(module)))


def test_parameter_layouts():
    self_attn = Attention(D, H, causal=True, rngs=nnx.Rngs(0))
    assert shapes(self_attn) == {"qkv": (D, 3, H, 4), "qkv_bias": (3, H, 4),
                                 "out": (H, 4, D), "out_bias": (D,)}
    cross = Attention(D, H, cross=True, kv_dim=6, use_bias=False, rngs=nnx.Rngs(0))
    assert shapes(cross) == {"q": (D, H, 4), "kv": (6, 2, H, 4), "out": (H, 4, D)}
    specs = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(cross)))
    assert tuple(specs["kv"]) == ("embed", None, "heads", "kv")


def test_self_attention_cache_matches_full_pass():
    attn = Attention(D, H, causal=True, rngs=nnx.Rngs(0))
    x = rand(2, 6, D)
    full, none = attn(x)
    assert none is None
    cache = attn.init_cache(2, 8)
    y0, cache = attn(x[:, :4], cache=cache)  # a prompt, then one token at a time
    steps = [y0]
    for t in (4, 5):
        y, cache = attn(x[:, t:t + 1], cache=cache)
        steps.append(y)
    assert int(cache["index"]) == 6 and cache["k"].shape == (2, 8, H, 4)
    np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=1e-5)


def test_bidirectional_self_attention_with_mask_and_bias():
    attn = Attention(D, H, rngs=nnx.Rngs(0))
    x = rand(1, 4, D)
    g = jax.grad(lambda x: attn(x)[0][0, 0].sum())(x)
    assert np.all(np.abs(g[0]).sum(-1) > 0)  # position 0 sees every position
    bias = rand(1, H, 4, 4, seed=1)
    mask = ops.padding_mask(np.array([[1, 1, 1, 0]], bool))
    a, _ = attn(x, mask=mask, bias=bias)
    b, _ = attn(x.at[:, 3].set(5.0), mask=mask, bias=bias)
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-6)


def test_cross_attention_cached_kv_equals_uncached():
    attn = Attention(D, H, cross=True, kv_dim=6, rngs=nnx.Rngs(1))
    x, enc = rand(2, 3, D), rand(2, 5, 6, seed=1)
    mask = ops.padding_mask(np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool))
    uncached, _ = attn(x, enc, mask=mask)
    kv = attn.cross_cache(enc)
    assert kv["k"].shape == (2, 5, H, 4)
    cached, same = attn(x, mask=mask, cache=kv)
    assert same is kv
    np.testing.assert_allclose(cached, uncached, atol=1e-6)
    # One query at a time (decoding) reads the same cached keys.
    np.testing.assert_allclose(attn(x[:, 2:], mask=mask, cache=kv)[0], uncached[:, 2:], atol=1e-6)
    # Padded encoder positions are invisible.
    changed, _ = attn(x, enc.at[1, 3].set(9.0), mask=mask)
    np.testing.assert_allclose(changed[1], uncached[1], atol=1e-6)


def test_bad_uses_are_named():
    with pytest.raises(ValueError, match="cannot be causal"):
        Attention(D, H, causal=True, cross=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kv_dim"):
        Attention(D, H, kv_dim=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_heads"):
        Attention(D, 3, rngs=nnx.Rngs(0))
    x = rand(1, 2, D)
    self_attn = Attention(D, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="cross=True"):
        self_attn(x, x)
    with pytest.raises(ValueError, match="causal=True"):
        self_attn(x, cache=self_attn.init_cache(1, 4))
    cross = Attention(D, H, cross=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="exactly one"):
        cross(x)
    with pytest.raises(ValueError, match="exactly one"):
        cross(x, x, cache=cross.cross_cache(x))
    with pytest.raises(ValueError, match="cross_cache"):
        self_attn.cross_cache(x)


def test_head_dim_apart_from_width():
    """head_dim set: heads of that width however wide the stream (GPT-3 XL as printed)."""
    attn = Attention(D, 3, head_dim=5, causal=True, rngs=nnx.Rngs(0))
    assert shapes(attn) == {"qkv": (D, 3, 3, 5), "qkv_bias": (3, 3, 5), "out": (3, 5, D),
                            "out_bias": (D,)}
    x = rand(2, 4, D)
    y, _ = attn(x)
    cache = attn.init_cache(2, 6)
    assert cache["k"].shape == (2, 6, 3, 5)
    y_cached, _ = attn(x, cache=cache)
    np.testing.assert_allclose(y_cached, y, atol=1e-6)
    with pytest.raises(ValueError, match="head_dim=0"):
        Attention(D, 3, head_dim=0, rngs=nnx.Rngs(0))
