"""Sparse attention patterns of Child et al. 2019 (Sparse Transformers) and banded attention.

Masks are boolean [q_len, kv_len] with True = may attend, for `dot_product_attention`'s
`mask` (they broadcast to [B, H, T, S]); every pattern is causal. As in `causal_mask`, query i
sits at position `q_offset + i` (a traced scalar during KV-cache decoding) and key j at j.

  local:   keys i-w+1 .. i (a band of width w; openai/sparse_attention's "local").
  strided: the band of width `window` plus every key j with (i - j) % stride == 0: the union
           of the paper's two factorised heads as one mask (its "merged" head, Section 4.3).
           window=0 leaves only the strided keys (openai's "strided" head on its own).
  fixed:   keys in the query's block of `stride` positions, plus the last `c` ("summary")
           positions of every earlier block.

A masked-dense call still computes all T x S logits; `local_attention` computes the band block
by block, in O(T * w) memory, with the same numbers as the masked-dense call.
"""

import math
import numbers

import jax
import jax.numpy as jnp


def _check_positive(name, value):
    if not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")


def _positions(q_len, kv_len, q_offset):
    kv_len = q_len if kv_len is None else kv_len
    q_pos = jnp.arange(q_len)[:, None] + q_offset
    k_pos = jnp.arange(kv_len)[None, :]
    return q_pos, k_pos


def local_mask(q_len: int, kv_len: int | None = None, *, window: int, q_offset=0):
    """bool[q_len, kv_len]: query at position p sees keys p-window+1 .. p."""
    _check_positive("window", window)
    q_pos, k_pos = _positions(q_len, kv_len, q_offset)
    dist = q_pos - k_pos
    return (dist >= 0) & (dist < window)


def strided_mask(q_len: int, kv_len: int | None = None, *, stride: int, window: int | None = None,
                 q_offset=0):
    """bool[q_len, kv_len]: the causal band of width `window` (default: `stride`, as in the
    paper) plus the keys a multiple of `stride` behind the query (the query itself included)."""
    _check_positive("stride", stride)
    window = stride if window is None else window
    if window != 0:
        _check_positive("window", window)
    q_pos, k_pos = _positions(q_len, kv_len, q_offset)
    dist = q_pos - k_pos
    return (dist >= 0) & ((dist < window) | (dist % stride == 0))


def fixed_mask(q_len: int, kv_len: int | None = None, *, stride: int, c: int, q_offset=0):
    """bool[q_len, kv_len]: causal keys in the query's block (floor(j / stride) equal) or among
    the last `c` positions of a block (j % stride >= stride - c)."""
    _check_positive("stride", stride)
    _check_positive("c", c)
    if c > stride:
        raise ValueError(f"c={c} summary positions do not fit in a block of stride={stride}")
    q_pos, k_pos = _positions(q_len, kv_len, q_offset)
    same_block = (q_pos // stride) == (k_pos // stride)
    summary = (k_pos % stride) >= stride - c
    return (k_pos <= q_pos) & (same_block | summary)


def local_attention(q_BTHD, k_BTHD, v_BTHD, *, window: int, scale=None):
    """Causal attention in a band of width `window`, equal to
    `dot_product_attention(q, k, v, local_mask(T, window=window))`, block by block.

    Queries come in blocks of w = min(window, T); a block's keys are its own block and the one
    before it (2w keys, of which the band keeps w per query), so logits take B*H*T*2w floats
    instead of B*H*T*T. T is zero-padded to a multiple of w; padded keys lie after every real
    query, so the causal band never reaches them, and padded queries are dropped. Logits and
    softmax are float32; k/v may have fewer heads than q (grouped-query attention).
    """
    _check_positive("window", window)
    if q_BTHD.ndim != 4 or k_BTHD.shape != v_BTHD.shape or k_BTHD.shape[:2] != q_BTHD.shape[:2]:
        raise ValueError(f"local_attention needs q [B, T, H, D] and k, v [B, T, H_kv, D] over "
                         f"the same positions; got {q_BTHD.shape}, {k_BTHD.shape}, "
                         f"{v_BTHD.shape}")
    B, T, H, D = q_BTHD.shape
    H_kv = k_BTHD.shape[2]
    if H % H_kv:
        raise ValueError(f"query heads ({H}) must be a multiple of key/value heads ({H_kv})")
    if H_kv != H:
        k_BTHD = jnp.repeat(k_BTHD, H // H_kv, axis=2)
        v_BTHD = jnp.repeat(v_BTHD, H // H_kv, axis=2)
    w = min(window, T)  # a band at least T wide is plain causal attention
    N = -(-T // w)
    pad = N * w - T

    def blocks(x):  # [B, T, H, D] -> [B, N, w, H, D]
        return jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(B, N, w, H, D)

    def with_previous(x):  # [B, N, w, ...] -> [B, N, 2w, ...]: block n-1 (zeros for 0), then n
        prev = jnp.pad(x[:, :-1], ((0, 0), (1, 0)) + ((0, 0),) * (x.ndim - 2))
        return jnp.concatenate([prev, x], axis=2)

    q_BNWHD = blocks(q_BTHD)
    k_BNCHD, v_BNCHD = with_previous(blocks(k_BTHD)), with_previous(blocks(v_BTHD))
    logits_BNHWC = jnp.einsum(
        "bnqhd,bnkhd->bnhqk", q_BNWHD, k_BNCHD, preferred_element_type=jnp.float32
    ) * (1.0 / math.sqrt(D) if scale is None else scale)
    # Query a of block n is at n*w + a, key c at (n-1)*w + c: distance a + w - c in [0, w).
    a, c = jnp.arange(w)[:, None], jnp.arange(2 * w)[None, :]
    band_WC = (c > a) & (c <= a + w)
    # Block 0's "previous block" is padding before position 0.
    keep_NWC = band_WC[None] & ((jnp.arange(N) > 0)[:, None, None] | (c >= w)[None])
    logits_BNHWC = jnp.where(keep_NWC[None, :, None], logits_BNHWC, jnp.finfo(jnp.float32).min)
    probs_BNHWC = jax.nn.softmax(logits_BNHWC, axis=-1)
    out_BNWHD = jnp.einsum("bnhqk,bnkhd->bnqhd", probs_BNHWC.astype(v_BNCHD.dtype), v_BNCHD,
                           preferred_element_type=jnp.float32)
    return out_BNWHD.reshape(B, N * w, H, D)[:, :T].astype(q_BTHD.dtype)
