"""Pure jnp ops: no parameters, no Flax."""

from llm_jax.ops.attention import (
    causal_mask,
    combine_masks,
    dot_product_attention,
    padding_mask,
    segment_mask,
)
from llm_jax.ops.dropout import dropout
from llm_jax.ops.losses import cross_entropy_per_token, softmax_cross_entropy
from llm_jax.ops.norms import layer_norm, rms_norm
from llm_jax.ops.positions import learned_positions, sinusoidal_positions
from llm_jax.ops.sparse_attention import (
    fixed_mask,
    local_attention,
    local_mask,
    strided_mask,
)

__all__ = [
    "causal_mask",
    "combine_masks",
    "cross_entropy_per_token",
    "dot_product_attention",
    "dropout",
    "fixed_mask",
    "layer_norm",
    "learned_positions",
    "local_attention",
    "local_mask",
    "padding_mask",
    "rms_norm",
    "segment_mask",
    "sinusoidal_positions",
    "softmax_cross_entropy",
    "strided_mask",
]
