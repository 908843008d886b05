"""Inverted dropout."""

import jax
import jax.numpy as jnp


def dropout(x, rate: float, key, deterministic: bool = False):
    """Zeroes each element with probability `rate` and scales the rest by 1/(1-rate).

    Identity when `deterministic`, `rate == 0` or `key is None`.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    if deterministic or rate == 0.0 or key is None:
        return x
    x = jnp.asarray(x)
    keep_prob = 1.0 - rate
    keep = jax.random.bernoulli(key, keep_prob, x.shape)
    # Scaling at train time keeps E[output] == x, so eval needs no rescale.
    return jnp.where(keep, x / keep_prob, jnp.zeros_like(x)).astype(x.dtype)
