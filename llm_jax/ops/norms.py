"""Layer norm and RMS norm over the last axis."""

import jax
import jax.numpy as jnp


def layer_norm(x, scale, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * scale + bias; `scale`/`bias` may be None."""
    # Statistics in float32: bf16 means/variances lose too many bits.
    x = jnp.asarray(x)
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    if scale is not None:
        y = y * jnp.asarray(scale).astype(jnp.float32)
    if bias is not None:
        y = y + jnp.asarray(bias).astype(jnp.float32)
    return y.astype(x.dtype)


def rms_norm(x, scale, eps=1e-6):
    """x / sqrt(mean(x**2) + eps) * scale; `scale` may be None."""
    x = jnp.asarray(x)
    x32 = x.astype(jnp.float32)
    ms = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(ms + eps)
    if scale is not None:
        y = y * jnp.asarray(scale).astype(jnp.float32)
    return y.astype(x.dtype)
