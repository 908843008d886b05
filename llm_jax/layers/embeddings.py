"""Token and learned position embeddings."""

import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import dense, normal, param


class Embed(nnx.Module):
    """Token embedding; `attend` reuses the table as the output projection (tied weights)."""

    def __init__(self, vocab_size, dim, *, init_std=0.02, dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs):
        self.dtype = dtype
        self.table = param(normal(init_std), rngs.params(), (vocab_size, dim),
                           ("vocab", "embed"), param_dtype)

    def __call__(self, tokens):
        return jnp.take(self.table[...], tokens, axis=0).astype(self.dtype)

    def attend(self, x_BTD):
        return dense(x_BTD, self.table[...].astype(self.dtype).T)


class LearnedPositions(nnx.Module):
    def __init__(self, max_len, dim, *, init_std=0.02, dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs):
        self.dtype = dtype
        self.table = param(normal(init_std), rngs.params(), (max_len, dim),
                           ("positions", "embed"), param_dtype)

    def __call__(self, positions):
        return ops.learned_positions(self.table[...], positions).astype(self.dtype)
