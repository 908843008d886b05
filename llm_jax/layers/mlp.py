"""Position-wise feed-forward block."""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import add_f32, dense, normal, param, zeros

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "swish": jax.nn.silu,  # Marian's OPUS-MT models ("swish" in their config.json)
}


class MLP(nnx.Module):
    def __init__(self, dim, hidden, *, activation="gelu_tanh", use_bias=True, init_std=0.02,
                 out_init_std=0.02, dropout_rate=0.0, activation_dropout=0.0, dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs):
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={activation!r}: expected one of {sorted(ACTIVATIONS)}")
        k1, k2 = rngs.params(), rngs.params()
        self.activation, self.dtype, self.dropout_rate = activation, dtype, dropout_rate
        self.activation_dropout = activation_dropout
        self.fc = param(normal(init_std), k1, (dim, hidden), ("embed", "mlp"), param_dtype)
        self.proj = param(normal(out_init_std), k2, (hidden, dim), ("mlp", "embed"), param_dtype)
        self.fc_bias = param(zeros, k1, (hidden,), ("mlp",), param_dtype) if use_bias else None
        self.proj_bias = param(zeros, k2, (dim,), ("embed",), param_dtype) if use_bias else None

    def __call__(self, x_BTD, dropout_key=None):
        h = dense(x_BTD, self.fc[...].astype(self.dtype))
        if self.fc_bias is not None:
            h = add_f32(h, self.fc_bias[...])
        h = ACTIVATIONS[self.activation](h)
        if self.activation_dropout > 0.0 and dropout_key is not None:
            # a second key only when asked for, so models without it keep their random stream
            dropout_key, act_key = jax.random.split(dropout_key)
            h = ops.dropout(h, self.activation_dropout, act_key)
        y = dense(h, self.proj[...].astype(self.dtype))
        if self.proj_bias is not None:
            y = add_f32(y, self.proj_bias[...])
        return ops.dropout(y, self.dropout_rate, dropout_key)
