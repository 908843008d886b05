"""Absolute position encodings: sinusoidal table and learned-table lookup."""

import jax
import jax.numpy as jnp
import numpy as np


def sinusoidal_positions(length: int, dim: int, *, offset=0, max_timescale=10000.0,
                         layout: str = "interleaved"):
    """float32[length, dim]: PE[p, 2i] = sin(p / T^(2i/dim)), PE[p, 2i+1] = cos(...).

    layout "interleaved" is the paper's formula; "concat" puts every sine first and every
    cosine after them (tensor2tensor, fairseq, Hugging Face Marian): the same features,
    permuted. Positions are offset + arange(length); `offset` may be traced (decoding).
    """
    if layout not in ("interleaved", "concat"):
        raise ValueError(f"layout={layout!r}: expected 'interleaved' or 'concat'")
    if length < 0 or dim <= 0:
        raise ValueError(f"need length >= 0 and dim > 0, got length={length}, dim={dim}")
    # Frequencies are static: compute them in float64 on the host.
    inv_timescales = max_timescale ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    pos = (jnp.arange(length) + offset).astype(jnp.float32)
    angles = pos[:, None] * jnp.asarray(inv_timescales, jnp.float32)[None, :]
    if layout == "concat":  # an odd dim gets one more sine than cosines, as in Marian
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], -1)[:, :dim]
    # Interleave sin/cos so channel 2i is sin and 2i+1 is cos; trim if dim is odd.
    table = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return table.reshape(length, -1)[:, :dim]


def learned_positions(table_PD, positions):
    """table_PD[positions] (gathered on axis 0) for any integer array `positions`.

    Raises ValueError when the positions are concrete and fall outside the table.
    """
    table_PD = jnp.asarray(table_PD)
    positions = jnp.asarray(positions)
    if not jnp.issubdtype(positions.dtype, jnp.integer):
        raise ValueError(f"positions must be integers, got dtype {positions.dtype}")
    try:
        concrete = np.asarray(positions)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        concrete = None  # traced: rows past the end read as NaN (fill mode).
    if concrete is not None and concrete.size:
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi >= table_PD.shape[0]:
            raise ValueError(
                f"positions span [{lo}, {hi}] but the position table has "
                f"{table_PD.shape[0]} rows (max_len); raise max_len or shorten inputs"
            )
    return jnp.take(table_PD, positions, axis=0, mode="fill")
