"""Normalisation layers; the math is in ops.norms."""

import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import ones, param, zeros


class LayerNorm(nnx.Module):
    def __init__(self, dim: int, *, eps=1e-5, use_bias=True, param_dtype=jnp.float32, rngs):
        key = rngs.params()
        self.eps = eps
        self.scale = param(ones, key, (dim,), ("norm",), param_dtype)
        self.bias = param(zeros, key, (dim,), ("norm",), param_dtype) if use_bias else None

    def __call__(self, x):
        bias = None if self.bias is None else self.bias[...]
        return ops.layer_norm(x, self.scale[...], bias, eps=self.eps)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, *, eps=1e-6, param_dtype=jnp.float32, rngs):
        self.eps = eps
        self.scale = param(ones, rngs.params(), (dim,), ("norm",), param_dtype)

    def __call__(self, x):
        return ops.rms_norm(x, self.scale[...], eps=self.eps)
