import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.ops import layer_norm, rms_norm


def ref_layer_norm(x, scale=None, bias=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    y = y if scale is None else y * scale
    return y if bias is None else y + bias


def ref_rms_norm(x, scale=None, eps=1e-6):
    x = np.asarray(x, np.float64)
    y = x / np.sqrt(np.mean(x**2, -1, keepdims=True) + eps)
    return y if scale is None else y * scale


rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 8)).astype(np.float32) * 3 + 1
SCALE = rng.standard_normal(8).astype(np.float32)
BIAS = rng.standard_normal(8).astype(np.float32)


@pytest.mark.parametrize("scale,bias", [(None, None), (SCALE, None), (None, BIAS), (SCALE, BIAS)])
def test_layer_norm(scale, bias):
    out = layer_norm(X, scale, bias)
    assert out.dtype == jnp.float32 and out.shape == X.shape
    np.testing.assert_allclose(out, ref_layer_norm(X, scale, bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [None, SCALE])
def test_rms_norm(scale):
    out = rms_norm(X, scale)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref_rms_norm(X, scale), rtol=1e-5, atol=1e-5)


def test_eps_is_used():
    x = np.full((1, 4), 2.0, np.float32)  # zero variance: result is 0, not NaN
    np.testing.assert_allclose(layer_norm(x, None), 0.0)
    np.testing.assert_allclose(rms_norm(x, None, eps=4.0), ref_rms_norm(x, eps=4.0), rtol=1e-6)


def test_bf16_keeps_dtype_with_f32_statistics():
    # A large offset: bf16 statistics would cancel catastrophically.
    x = (X + 100.0).astype(jnp.bfloat16)
    x_exact = np.asarray(x, np.float32)
    out = layer_norm(x, SCALE, BIAS)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(out, np.float32), ref_layer_norm(x_exact, SCALE, BIAS), atol=5e-2
    )
    out = rms_norm(x, SCALE)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), ref_rms_norm(x_exact, SCALE), atol=5e-2)
