"""Beam search over a `tokens_to_logits(tokens_BT, cache) -> (logits_BTV, cache)` callback.

The bookkeeping is that of Flax's wmt decode.py and T5X: `beam_size` alive hypotheses (none
ending in EOS) and the `beam_size` best finished ones, scored by log-probability over a length
penalty. Each step takes the 2 * beam_size best extensions, so at least beam_size of them are
still alive however many end in EOS. The search stops once no alive hypothesis can beat the
worst finished one, which is exact because log-probabilities only fall as a hypothesis grows.

`hf_rules=True` follows Hugging Face's `generate(num_beams=K)` instead (early_stopping=False),
so an imported checkpoint decodes to the same ids as there: only the K best of the 2K
extensions may finish, and a row stops once every one of its K finished slots is filled and the
best alive hypothesis, divided by the penalty of its current length, cannot beat the worst
finished one (a heuristic: a longer hypothesis could still win under a length penalty).
`force_eos_at_max_len` is Hugging Face's `forced_eos_token_id`: the last position can only be
EOS, at no cost (log-probability 0).

Beams are flattened into the batch ([B * beam_size], row b * beam_size + k) for the callback,
and the cache follows its hypotheses: each cache leaf is repeated and gathered along its batch
axis, named by `batch_axes` (see `map_batch`) instead of guessed from sizes, since GPT's KV
cache has batch on axis 1 and its shared position index has none. Anything per example that the
callback needs besides its cache (an encoder's output and mask, for the Transformer or T5) can
ride in the cache so it is tiled with it.
"""

import jax
import jax.numpy as jnp

LENGTH_PENALTIES = ("gnmt", "hf")


def length_penalty(n, alpha: float, kind: str = "gnmt"):
    """What a hypothesis's log-probability is divided by, for n generated tokens (EOS counted).

    "gnmt": ((5 + n) / 6) ** alpha (Wu et al. 2016, as in Flax's wmt and T5X);
    "hf": n ** alpha (Hugging Face's `length_penalty`). alpha 0 ranks by log-probability.
    """
    n = jnp.asarray(n, jnp.float32)
    if kind == "gnmt":
        return ((5.0 + n) / 6.0) ** alpha
    if kind == "hf":
        return n ** alpha
    raise ValueError(f"length_penalty={kind!r}: expected one of {LENGTH_PENALTIES}")


def map_batch(fn, cache, batch_axes=None, batch_size=None):
    """`cache` with fn(leaf, axis) applied to every leaf that has a batch axis.

    batch_axes is a pytree prefix of the cache whose leaves are an int (that subtree's batch
    axis) or None (no batch axis: left alone). The default is 0 for every array of rank >= 1
    and None for scalars. GPT's cache is {"k": 1, "v": 1, "index": None}; an RNN carry is 0.
    With batch_size, every batch axis must have that size.
    """
    def apply(x, ax):
        if ax is None:
            return x
        if not -jnp.ndim(x) <= ax < jnp.ndim(x):
            raise ValueError(f"batch_axes: axis {ax} is out of range for a cache leaf of shape "
                             f"{jnp.shape(x)}")
        if batch_size is not None and jnp.shape(x)[ax] != batch_size:
            raise ValueError(f"batch_axes: a cache leaf of shape {jnp.shape(x)} has size "
                             f"{jnp.shape(x)[ax]} on its batch axis {ax}, expected {batch_size}")
        return fn(x, ax)

    if batch_axes is None:
        return jax.tree.map(lambda x: apply(x, 0 if jnp.ndim(x) >= 1 else None), cache)
    try:
        return jax.tree.map(lambda ax, sub: jax.tree.map(lambda x: apply(x, ax), sub),
                            batch_axes, cache, is_leaf=lambda x: x is None)
    except ValueError as e:
        if str(e).startswith("batch_axes"):
            raise
        raise ValueError(f"batch_axes={batch_axes!r} is not a pytree prefix of the cache "
                         f"{jax.tree.structure(cache)}") from None


def beam_search(tokens_to_logits, cache, prompts_BP, *, beam_size: int, max_len: int,
                eos_id: int | None, alpha: float = 0.6, length_penalty: str = "gnmt",
                batch_axes=None, pad_id: int = 0, hf_rules: bool = False,
                force_eos_at_max_len: bool = False, constrain=None):
    """(sequences_BKL, scores_BK, lengths_BK): the beam_size best hypotheses per row, best first.

    prompts_BP: the tokens every hypothesis starts with (all rows the same length P >= 1; a
    decoder-start token for seq2seq, a prompt for an LM). `cache` is the callback's initial
    cache for the B rows (the prompt but its last token is fed in one call before the beams
    split). A hypothesis ends at its first `eos_id` (kept) or at max_len tokens (prompt
    included); its score is log p(generated | prompt) / length_penalty(generated tokens), and
    positions past its length hold `pad_id`. Scores are -inf where a row has fewer than
    beam_size hypotheses (a vocabulary smaller than the beam).

    constrain(logp_NV, cache) -> logp_NV (N = B * beam_size, `cache` the callback's new one) may
    set -inf on tokens not allowed next (a minimum length, banned ids, repeated n-grams). It
    sees log-probabilities, so the allowed tokens keep theirs unrenormalised, as Hugging Face's
    logits processors and fairseq do.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size={beam_size} must be >= 1")
    if length_penalty not in LENGTH_PENALTIES:
        raise ValueError(f"length_penalty={length_penalty!r}: expected one of {LENGTH_PENALTIES}")
    prompts_BP = jnp.asarray(prompts_BP, jnp.int32)
    if prompts_BP.ndim != 2 or prompts_BP.shape[1] == 0:
        raise ValueError(f"prompts must be a non-empty [batch, length] array, got shape "
                         f"{prompts_BP.shape}")
    B, P = prompts_BP.shape
    K, L = beam_size, max_len
    if L <= P:
        raise ValueError(f"max_len={L} must exceed the prompt length {P}")
    penalty = lambda n: _penalty(n, alpha, length_penalty)  # noqa: E731
    if P > 1:
        _, cache = tokens_to_logits(prompts_BP[:, :P - 1], cache)
    cache = map_batch(lambda x, ax: jnp.repeat(x, K, axis=ax), cache, batch_axes, B)
    seqs_BKL = jnp.broadcast_to(jnp.pad(prompts_BP, ((0, 0), (0, L - P)), constant_values=pad_id)
                                [:, None], (B, K, L))
    # Only beam 0 is alive at first, so the first step does not pick the same token K times.
    live_lp_BK = jnp.where(jnp.arange(K) == 0, 0.0, -jnp.inf)[None].repeat(B, 0)
    if force_eos_at_max_len and eos_id is None:
        raise ValueError("force_eos_at_max_len needs an eos_id")
    state = dict(t=jnp.asarray(P, jnp.int32), live_seqs=seqs_BKL, live_lp=live_lp_BK,
                 fin_seqs=seqs_BKL, fin_scores=jnp.full((B, K), -jnp.inf),
                 fin_len=jnp.full((B, K), P, jnp.int32), cache=cache,
                 done=jnp.zeros((B,), bool))

    def cond(s):
        if hf_rules:
            return (s["t"] < L) & ~jnp.all(s["done"])
        # The best an alive hypothesis can reach: its log-probability only falls from here,
        # divided by the largest penalty of the lengths it may still end at.
        most = jnp.maximum(penalty(s["t"] + 1 - P), penalty(L - P))
        can_improve = s["live_lp"][:, 0] / most > s["fin_scores"][:, -1]
        return (s["t"] < L) & jnp.any(can_improve)

    def body(s):
        t = s["t"]
        last_N1 = s["live_seqs"][:, :, t - 1].reshape(B * K, 1)
        logits, cache = tokens_to_logits(last_N1, s["cache"])
        logp_NV = jax.nn.log_softmax(logits[:, -1].astype(jnp.float32), axis=-1)
        if constrain is not None:
            logp_NV = constrain(logp_NV, cache)
        logp_BKV = logp_NV.reshape(B, K, -1)
        V = logp_BKV.shape[-1]
        if force_eos_at_max_len:
            # forced, so it costs nothing: log-probability 0, as Hugging Face scores it
            forced = jnp.where(jnp.arange(V) == eos_id, 0.0, -jnp.inf)
            logp_BKV = jnp.where(t == L - 1, forced, logp_BKV)
        cand_lp, cand_idx = jax.lax.top_k((s["live_lp"][:, :, None] + logp_BKV).reshape(B, K * V),
                                          min(2 * K, K * V))
        cand_beam, cand_tok = cand_idx // V, cand_idx % V
        cand_seqs = _take(s["live_seqs"], cand_beam).at[:, :, t].set(cand_tok)
        ends = jnp.broadcast_to(t == L - 1, cand_tok.shape)  # max_len finishes every hypothesis
        if eos_id is not None:
            ends |= cand_tok == eos_id

        live_lp, pick = jax.lax.top_k(jnp.where(ends, -jnp.inf, cand_lp), K)
        src_N = (jnp.arange(B)[:, None] * K + _take(cand_beam, pick)).reshape(B * K)
        cache = map_batch(lambda x, ax: jnp.take(x, src_N, axis=ax), cache, batch_axes)

        may_finish = ends
        if hf_rules:  # only the K best extensions, and only in rows still searching
            may_finish &= (jnp.arange(cand_tok.shape[1]) < K)[None] & ~s["done"][:, None]
        new_scores = jnp.where(may_finish, cand_lp / penalty(t + 1 - P), -jnp.inf)
        fin_scores, keep = jax.lax.top_k(jnp.concatenate([s["fin_scores"], new_scores], 1), K)
        fin_seqs = _take(jnp.concatenate([s["fin_seqs"], cand_seqs], 1), keep)
        fin_len = _take(jnp.concatenate([s["fin_len"], jnp.full_like(cand_tok, t + 1)], 1), keep)
        done = s["done"]
        if hf_rules:
            full = jnp.all(fin_scores > -jnp.inf, axis=1)
            done = done | (full & (live_lp[:, 0] / penalty(t + 1 - P) <= fin_scores[:, -1]))
        return dict(t=t + 1, live_seqs=_take(cand_seqs, pick), live_lp=live_lp,
                    fin_seqs=fin_seqs, fin_scores=fin_scores, fin_len=fin_len, cache=cache,
                    done=done)

    s = jax.lax.while_loop(cond, body, state)
    return s["fin_seqs"], s["fin_scores"], s["fin_len"]


_penalty = length_penalty  # beam_search's `length_penalty` argument shadows the function


def _take(x_BK, idx_BJ):
    """x[b, idx[b, j]] along axis 1, for x of rank 2 or 3."""
    idx = idx_BJ.reshape(idx_BJ.shape + (1,) * (x_BK.ndim - 2))
    return jnp.take_along_axis(x_BK, idx, axis=1)

