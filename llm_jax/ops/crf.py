"""A linear-chain conditional random field over tag sequences (Lafferty et al., 2001), as
BiLSTM-CRF taggers (Lample et al., 2016) and JointBERT's `--use_crf` (through pytorch-crf) put
it on top of per-token tag scores.

score(y) = start[y_1] + sum_i emit[i, y_i] + sum_i trans[y_{i-1}, y_i] + end[y_n], over the
positions where `mask` is True only: the chain skips every other position (the later sub-words
of a word, [CLS], [SEP], padding), so tags sit on each word's first sub-word and the
transitions link consecutive words. A row with no such position scores 0 and decodes to
nothing.

  crf_log_likelihood  log p(tags | emissions) per row: score(tags) - logsumexp_y score(y)
  crf_decode          the highest-scoring tags per row (Viterbi)

Both scan over time in float32, O(T * C^2) per row; C is a tag set (tens to a few hundred).
"""

import jax
import jax.numpy as jnp


def _check(emissions_BTC, mask_BT, transitions_CC, start_C, end_C):
    B, T, C = emissions_BTC.shape
    if mask_BT.shape != (B, T):
        raise ValueError(f"mask shape {mask_BT.shape} must be emissions' [B, T] {(B, T)}")
    if transitions_CC.shape != (C, C) or start_C.shape != (C,) or end_C.shape != (C,):
        raise ValueError(f"transitions {transitions_CC.shape}, start {start_C.shape} and end "
                         f"{end_C.shape} must be [{C}, {C}], [{C}] and [{C}] for {C} tags")


def _time_major(emissions_BTC, mask_BT):
    return (jnp.swapaxes(emissions_BTC.astype(jnp.float32), 0, 1),
            jnp.swapaxes(mask_BT.astype(bool), 0, 1))


def crf_log_likelihood(emissions_BTC, tags_BT, mask_BT, transitions_CC, start_C, end_C):
    """float32 [B]: log p(tags | emissions) over each row's masked positions (0: none)."""
    _check(emissions_BTC, mask_BT, transitions_CC, start_C, end_C)
    B, _, C = emissions_BTC.shape
    trans = jnp.asarray(transitions_CC, jnp.float32)
    start, end = jnp.asarray(start_C, jnp.float32), jnp.asarray(end_C, jnp.float32)
    e_TBC, m_TB = _time_major(emissions_BTC, mask_BT)
    y_TB = jnp.swapaxes(tags_BT.astype(jnp.int32), 0, 1)

    def step(carry, x):
        alpha_BC, gold_B, prev_B, started_B = carry
        e_BC, m_B, y_B = x
        # forward variables: log-sum over every path ending in each tag
        moved_BC = jax.nn.logsumexp(alpha_BC[:, :, None] + trans[None], axis=1) + e_BC
        new_BC = jnp.where(started_B[:, None], moved_BC, start[None] + e_BC)
        alpha_BC = jnp.where(m_B[:, None], new_BC, alpha_BC)
        # the gold path's score
        link_B = jnp.where(started_B, trans[prev_B, y_B], start[y_B])
        emit_B = jnp.take_along_axis(e_BC, y_B[:, None], axis=1)[:, 0]
        gold_B = gold_B + jnp.where(m_B, link_B + emit_B, 0.0)
        prev_B = jnp.where(m_B, y_B, prev_B)
        return (alpha_BC, gold_B, prev_B, started_B | m_B), None

    init = (jnp.zeros((B, C), jnp.float32), jnp.zeros((B,), jnp.float32),
            jnp.zeros((B,), jnp.int32), jnp.zeros((B,), bool))
    (alpha_BC, gold_B, prev_B, started_B), _ = jax.lax.scan(step, init, (e_TBC, m_TB, y_TB))
    log_z_B = jax.nn.logsumexp(alpha_BC + end[None], axis=1)
    return jnp.where(started_B, gold_B + end[prev_B] - log_z_B, 0.0)


def crf_decode(emissions_BTC, mask_BT, transitions_CC, start_C, end_C):
    """int32 [B, T]: the Viterbi tags at the masked positions (elsewhere the tag of the
    nearest masked position before, or of the first one after: ignore them)."""
    _check(emissions_BTC, mask_BT, transitions_CC, start_C, end_C)
    B, _, C = emissions_BTC.shape
    trans = jnp.asarray(transitions_CC, jnp.float32)
    start, end = jnp.asarray(start_C, jnp.float32), jnp.asarray(end_C, jnp.float32)
    e_TBC, m_TB = _time_major(emissions_BTC, mask_BT)
    same_BC = jnp.broadcast_to(jnp.arange(C, dtype=jnp.int32), (B, C))

    def forward(carry, x):
        delta_BC, started_B = carry
        e_BC, m_B = x
        cand_BCC = delta_BC[:, :, None] + trans[None]   # [previous tag, this tag]
        best_BC = jnp.max(cand_BCC, axis=1) + e_BC
        back_BC = jnp.argmax(cand_BCC, axis=1).astype(jnp.int32)
        new_BC = jnp.where(started_B[:, None], best_BC, start[None] + e_BC)
        # a skipped position, or the first of the chain, points each tag at itself
        back_BC = jnp.where((m_B & started_B)[:, None], back_BC, same_BC)
        return (jnp.where(m_B[:, None], new_BC, delta_BC), started_B | m_B), back_BC

    init = (jnp.zeros((B, C), jnp.float32), jnp.zeros((B,), bool))
    (delta_BC, _), back_TBC = jax.lax.scan(forward, init, (e_TBC, m_TB))
    last_B = jnp.argmax(delta_BC + end[None], axis=1).astype(jnp.int32)

    def backward(tag_B, back_BC):
        return jnp.take_along_axis(back_BC, tag_B[:, None], axis=1)[:, 0], tag_B

    _, tags_TB = jax.lax.scan(backward, last_B, back_TBC, reverse=True)
    return jnp.swapaxes(tags_TB, 0, 1)
