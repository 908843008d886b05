"""Parameter creation with logical axis names (mapped to mesh axes in training/sharding.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def param(init, key, shape, axes, dtype=jnp.float32) -> nnx.Param:
    """A Param whose `out_sharding` metadata holds logical axis names, one per dimension.

    Eager sharding is off: parameters are placed by the trainer's rules table, so the
    same module builds on a laptop without a mesh and on a pod with one.
    """
    if len(axes) != len(shape):
        raise ValueError(f"param of shape {shape} needs {len(shape)} axis names, got {axes}")
    return nnx.Param(init(key, shape, dtype), out_sharding=tuple(axes), eager_sharding=False)


def normal(stddev: float):
    return nnx.initializers.normal(stddev)


def uniform(scale: float):
    """Uniform on [-scale, scale] (nnx.initializers.uniform is [0, scale))."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)
    return init


zeros = nnx.initializers.zeros
ones = nnx.initializers.ones

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def config_dtype(field: str, name: str):
    """The jnp dtype that config field `model.<field>` names, or an error naming the field."""
    if name not in DTYPES:
        raise ValueError(f"model.{field}={name!r}: expected one of {sorted(DTYPES)}")
    return DTYPES[name]


def dense(x, kernel, in_dims: int = 1):
    """x[..., *in] @ kernel[*in, *out] as a single 2-D matmul.

    XLA:CPU computes the gradient of a dot with batch-and-time leading dimensions about twice
    as slowly as the same dot on flattened rows (measured on the Shakespeare CPU config), so
    every projection goes through here.
    """
    in_shape, out_shape = kernel.shape[:in_dims], kernel.shape[in_dims:]
    lead = x.shape[:x.ndim - in_dims]
    n_in = int(np.prod(in_shape))
    y = x.reshape(-1, n_in) @ kernel.reshape(n_in, -1)
    return y.reshape(*lead, *out_shape)


def add_f32(x, y):
    """x + y (y broadcast to x) computed in float32 and rounded once to x's dtype.

    For biases and position embeddings added to bfloat16 activations: the gradient of `y` is a
    sum over every row it was broadcast to (batch x time, up to millions), and after a bfloat16
    add it is a bfloat16 reduction, which XLA need not accumulate in float32 (8 significant
    bits: small terms round away). Here the cotangent is cast to float32 before that sum. With
    float32 activations this is exactly x + y.
    """
    return (x.astype(jnp.float32) + y.astype(jnp.float32)).astype(x.dtype)
