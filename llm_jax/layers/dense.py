"""A plain affine layer: poolers, projections and task heads."""

import jax.numpy as jnp
from flax import nnx

from llm_jax.layers.params import add_f32, dense, normal, param, zeros


class Dense(nnx.Module):
    """y = x @ kernel + bias; `axes` are the logical names of the kernel's two dimensions."""

    def __init__(self, n_in, n_out, *, axes=("embed", "mlp"), use_bias=True, init_std=0.02,
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        key = rngs.params()
        self.dtype = dtype
        self.kernel = param(normal(init_std), key, (n_in, n_out), axes, param_dtype)
        self.bias = param(zeros, key, (n_out,), axes[1:], param_dtype) if use_bias else None

    def __call__(self, x):
        y = dense(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        return y if self.bias is None else add_f32(y, self.bias[...])
