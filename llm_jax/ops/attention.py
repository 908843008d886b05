"""Attention masks and scaled dot-product attention.

Masks are boolean with True = may attend, broadcastable to [B, H, T, S]. Additive biases
(T5's relative position bias, ALiBi) are float arrays broadcastable to the same shape.
"""

import math

import jax
import jax.numpy as jnp

from llm_jax.ops.dropout import dropout


def causal_mask(q_len: int, kv_len: int | None = None, q_offset=0):
    """bool[q_len, kv_len]: query i (at position q_offset + i) sees keys j <= q_offset + i.

    `q_offset` may be a traced scalar (KV-cache decoding), hence arange comparisons.
    """
    kv_len = q_len if kv_len is None else kv_len
    q_pos = jnp.arange(q_len)[:, None] + q_offset
    k_pos = jnp.arange(kv_len)[None, :]
    return k_pos <= q_pos


def padding_mask(valid_BS):
    """bool[B, 1, 1, S] from bool[B, S] marking real (non-pad) key positions."""
    valid_BS = jnp.asarray(valid_BS)
    if valid_BS.ndim != 2:
        raise ValueError(f"padding_mask expects a [B, S] array, got shape {valid_BS.shape}")
    return valid_BS.astype(bool)[:, None, None, :]


def segment_mask(segment_ids_q_BT, segment_ids_kv_BS):
    """bool[B, 1, T, S]: True where query and key belong to the same packed example.

    Give padding an id of its own (usually 0): real tokens then never see it, and padded
    queries still see each other, so no row is fully masked.
    """
    seg_q, seg_kv = jnp.asarray(segment_ids_q_BT), jnp.asarray(segment_ids_kv_BS)
    if seg_q.ndim != 2 or seg_kv.ndim != 2 or seg_q.shape[0] != seg_kv.shape[0]:
        raise ValueError(f"segment_mask expects [B, T] and [B, S] segment ids, got shapes "
                         f"{seg_q.shape} and {seg_kv.shape}")
    return (seg_q[:, :, None] == seg_kv[:, None, :])[:, None]


def combine_masks(*masks):
    """Logical AND of the non-None masks (broadcasting); None if all are None."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    out = jnp.asarray(masks[0], dtype=bool)
    for m in masks[1:]:
        out = jnp.logical_and(out, m)
    return out


def dot_product_attention(q_BTHD, k_BSHD, v_BSHD, mask=None, bias=None, *, scale=None,
                          dropout_rate=0.0, dropout_key=None):
    """softmax(scale * q k^T + bias, where mask) v, with logits and softmax in float32.

    `scale` defaults to 1 / sqrt(D); T5 uses 1.0 (its initialisation absorbs the factor).
    `bias` must be finite: masking is the boolean `mask`'s job, which is applied after the
    bias so a fully masked row stays finite. k/v may have fewer heads than q (grouped-query
    attention): query head h reads kv head h // (H_q // H_kv). Output has q's dtype.
    """
    if q_BTHD.ndim != 4 or k_BSHD.ndim != 4 or v_BSHD.ndim != 4:
        raise ValueError(
            "q, k, v must be [B, T|S, H, D]; got shapes "
            f"{q_BTHD.shape}, {k_BSHD.shape}, {v_BSHD.shape}"
        )
    B, _, H, D = q_BTHD.shape
    if k_BSHD.shape[:3] != v_BSHD.shape[:3] or k_BSHD.shape[0] != B or k_BSHD.shape[3] != D:
        raise ValueError(
            f"incompatible shapes q {q_BTHD.shape}, k {k_BSHD.shape}, v {v_BSHD.shape}"
        )
    H_kv = k_BSHD.shape[2]
    if H % H_kv:
        raise ValueError(f"query heads ({H}) must be a multiple of key/value heads ({H_kv})")
    if H_kv != H:
        k_BSHD = jnp.repeat(k_BSHD, H // H_kv, axis=2)
        v_BSHD = jnp.repeat(v_BSHD, H // H_kv, axis=2)

    # float32 accumulation: bf16 logits would make the softmax visibly wrong.
    logits_BHTS = jnp.einsum(
        "bthd,bshd->bhts", q_BTHD, k_BSHD, preferred_element_type=jnp.float32
    ) * (1.0 / math.sqrt(D) if scale is None else scale)
    if bias is not None:
        bias = jnp.asarray(bias)
        if not jnp.issubdtype(bias.dtype, jnp.floating):
            # A boolean mask passed as bias would add 0/1 to the logits and mask nothing.
            raise ValueError(f"bias must be a float array (additive), got dtype {bias.dtype}; "
                             "pass boolean masks as `mask`")
        logits_BHTS = logits_BHTS + bias.astype(jnp.float32)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            # An additive (0 / -inf) mask here would be silently misread.
            raise ValueError(f"mask must be boolean (True = keep), got dtype {mask.dtype}")
        # Finite minimum, not -inf: a fully masked row then softmaxes to uniform, not NaN.
        logits_BHTS = jnp.where(mask, logits_BHTS, jnp.finfo(jnp.float32).min)
    probs_BHTS = jax.nn.softmax(logits_BHTS, axis=-1)
    if dropout_rate > 0.0 and dropout_key is not None:
        probs_BHTS = dropout(probs_BHTS, dropout_rate, dropout_key)
    out_BTHD = jnp.einsum(
        "bhts,bshd->bthd",
        probs_BHTS.astype(v_BSHD.dtype),
        v_BSHD,
        preferred_element_type=jnp.float32,
    )
    return out_BTHD.astype(q_BTHD.dtype)
