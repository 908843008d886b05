"""ELMo's task-specific layer combination: gamma * sum_j softmax(w)_j * h_j (Peters et al. 2018, eq. 1)."""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax.layers.params import ones, param, zeros


def _masked_layer_norm(h, mask):
    # Statistics over the real tokens only, so padding does not shift them (ELMo's option).
    m = mask[..., None].astype(h.dtype)
    n = jnp.maximum(jnp.sum(m) * h.shape[-1], 1.0)
    mean = jnp.sum(h * m) / n
    var = jnp.sum(jnp.square(h - mean) * m) / n
    return (h - mean) * jax.lax.rsqrt(var + 1e-12)


class ScalarMix(nnx.Module):
    """Mixes L stacked layers [L, ..., D] into one [..., D] with softmax-normalised weights.

    The weights start equal and gamma at 1; both are trained with the downstream model while
    the layers themselves (a frozen biLM's output) stay fixed.
    """

    def __init__(self, num_layers: int, *, layer_norm: bool = False, rngs=None):
        del rngs  # deterministic init; kept for a uniform constructor signature
        if num_layers < 1:
            raise ValueError(f"ScalarMix needs at least one layer, got num_layers={num_layers}")
        self.num_layers, self.layer_norm = num_layers, layer_norm
        self.weights = param(zeros, None, (num_layers,), ("layers",))
        self.gamma = param(ones, None, (), ())

    def layer_weights(self):
        return jax.nn.softmax(self.weights[...].astype(jnp.float32))

    def __call__(self, layers_L, mask=None):
        if layers_L.shape[0] != self.num_layers:
            raise ValueError(f"ScalarMix built for {self.num_layers} layers got "
                             f"{layers_L.shape[0]} (shape {layers_L.shape})")
        layers_L = layers_L.astype(jnp.float32)
        if self.layer_norm:
            if mask is None:
                mask = jnp.ones(layers_L.shape[1:-1], bool)
            layers_L = jax.vmap(_masked_layer_norm, in_axes=(0, None))(layers_L, mask)
        s = self.layer_weights().reshape((-1,) + (1,) * (layers_L.ndim - 1))
        return self.gamma[...] * jnp.sum(s * layers_L, axis=0)
