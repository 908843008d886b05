"""The encoder-decoder Transformer as a decoding callback: greedy decoding and beam search.

The source is encoded once; the decoder's cache holds every layer's cross-attention keys and
values of it, and the source mask rides in the cache too. Beam search tiles and reorders only
the self-attention cache with the hypotheses (llm_jax.decoding.map_batch): the encoder's K/V
and mask keep one row per source, which its beams share (layers/attention.py reads them as
one longer query sequence per source), so no step copies them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_jax.decoding import beam_search, decode
from llm_jax.tasks.lm_decoding import Decoder

# {"decoder": DecoderStack cache ([L, B, ...] but a shared index), "src_mask": [B, S]}; the
# source's leaves are per source, not per hypothesis (None: beam search leaves them alone)
CACHE_BATCH_AXES = {"decoder": {"k": 1, "v": 1, "cross_k": None, "cross_v": None,
                                "index": None},
                    "src_mask": None}


def transformer_decoder(model, src_BS, src_mask_BS, max_len: int) -> Decoder:
    """Decoding of up to `max_len` target tokens (decoder start included) from a source batch."""
    encoded = model.encode(src_BS, src_mask_BS)

    def tokens_to_logits(tokens_BT, cache):
        logits, dec = model.decode(tokens_BT, None, cache["src_mask"], cache=cache["decoder"])
        return logits, {"decoder": dec, "src_mask": cache["src_mask"]}

    cache = {"decoder": model.init_cache(encoded, max_len), "src_mask": src_mask_BS}
    return Decoder(tokens_to_logits, cache, CACHE_BATCH_AXES)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_len", "beam_size", "bos_id",
                                             "eos_id", "pad_id", "alpha", "length_penalty",
                                             "hf_rules", "force_eos", "min_len",
                                             "banned_ids", "no_repeat_ngram"))
def _translate(graphdef, params, src_BS, src_mask_BS, *, max_len, beam_size, bos_id, eos_id,
               pad_id, alpha, length_penalty, hf_rules, force_eos, min_len, banned_ids,
               no_repeat_ngram):
    model = nnx.merge(graphdef, params)
    B = src_BS.shape[0]
    dec = transformer_decoder(model, src_BS, src_mask_BS, max_len)
    cache, batch_axes = dec.cache, dec.batch_axes
    if no_repeat_ngram:
        # the tokens so far ride in the cache, so beam search reorders them with the beams
        cache = {**cache, "history": jnp.full((B, max_len), -1, jnp.int32)}
        batch_axes = {**batch_axes, "history": 0}

    def tokens_to_logits(tokens_BT, cache):  # the model, and the history n-gram bans read
        index = cache["decoder"]["index"]
        logits, out = dec.tokens_to_logits(tokens_BT, {k: cache[k] for k in dec.cache})
        cache = {**cache, **out}
        if no_repeat_ngram:
            cache["history"] = jax.lax.dynamic_update_slice(cache["history"], tokens_BT,
                                                            (0, index))
        return logits, cache

    def constrain(scores_NV, cache):  # -inf on what may not come next
        if banned_ids:
            scores_NV = scores_NV.at[:, jnp.asarray(banned_ids)].set(-jnp.inf)
        if min_len > 1:  # no EOS before min_len tokens (decoder start counted), as HF's min_length
            too_short = cache["decoder"]["index"] < min_len
            scores_NV = scores_NV.at[:, eos_id].set(jnp.where(too_short, -jnp.inf,
                                                              scores_NV[:, eos_id]))
        if no_repeat_ngram:
            scores_NV = ban_repeated_ngrams(scores_NV, cache["history"],
                                            cache["decoder"]["index"], no_repeat_ngram)
        return scores_NV

    start_B1 = jnp.full((B, 1), bos_id, jnp.int32)
    if beam_size == 1 and not hf_rules:
        def constrained(tokens_BT, cache):  # greedy: -inf on logits keeps the same argmax
            logits, cache = tokens_to_logits(tokens_BT, cache)
            return logits.at[:, -1].set(constrain(logits[:, -1], cache)), cache
        tokens, lengths = decode(constrained, cache, start_B1, None, max_len - 1,
                                 temperature=0.0, eos_id=eos_id, pad_id=pad_id)
        return tokens[:, None], jnp.zeros((B, 1)), lengths[:, None]
    return beam_search(tokens_to_logits, cache, start_B1, beam_size=beam_size,
                       max_len=max_len, eos_id=eos_id, alpha=alpha,
                       length_penalty=length_penalty, batch_axes=batch_axes, pad_id=pad_id,
                       hf_rules=hf_rules, force_eos_at_max_len=force_eos, constrain=constrain)


def translate_array(model, src_BS, src_mask_BS, *, bos_id: int, eos_id: int, max_len: int,
                    beam_size: int = 1, alpha: float = 0.6, length_penalty: str = "gnmt",
                    pad_id: int = 0, hf_rules: bool = False, force_eos: bool = False,
                    min_len: int = 0, banned_ids: tuple = (), no_repeat_ngram: int = 0):
    """(sequences [B, K, max_len], scores [B, K], lengths [B, K]), best hypothesis first.

    Each sequence starts with `bos_id` (the decoder start) and ends at its first `eos_id`
    (kept) or at max_len; positions past its length hold `pad_id`. beam_size 1 is greedy.
    no_repeat_ngram n > 0: no n-gram occurs twice in a hypothesis (decoder start included), as
    Hugging Face's no_repeat_ngram_size.
    """
    if beam_size < 1:
        raise ValueError(f"--beam_size={beam_size} must be >= 1")
    graphdef, params = nnx.split(model)
    out = _translate(graphdef, nnx.to_pure_dict(params), jnp.asarray(src_BS, jnp.int32),
                     jnp.asarray(src_mask_BS, bool), max_len=int(max_len),
                     beam_size=int(beam_size), bos_id=int(bos_id), eos_id=int(eos_id),
                     pad_id=int(pad_id), alpha=float(alpha), length_penalty=length_penalty,
                     hf_rules=bool(hf_rules), force_eos=bool(force_eos), min_len=int(min_len),
                     banned_ids=tuple(int(i) for i in banned_ids),
                     no_repeat_ngram=int(no_repeat_ngram))
    return tuple(np.asarray(x) for x in jax.device_get(out))


def ban_repeated_ngrams(logits_NV, history_NL, length, n: int):
    """logits_NV with -inf on every token that would repeat an n-gram of history_NL[:, :length].

    The next token completes the n-gram whose first n - 1 tokens are the history's last n - 1;
    each earlier occurrence j of those n - 1 tokens bans the token that followed it, j + n - 1.
    """
    N, L = history_NL.shape
    if n == 1:  # every token already generated
        seen = jnp.where(jnp.arange(L)[None] < length, history_NL, logits_NV.shape[-1])
        return logits_NV.at[jnp.arange(N)[:, None], seen].set(-jnp.inf, mode="drop")
    starts = jnp.arange(L - n + 1)
    last = jax.lax.dynamic_slice_in_dim(history_NL, length - (n - 1), n - 1, axis=1)
    match = starts[None] + n - 1 < length  # the n-gram at j lies wholly inside the history
    for k in range(n - 1):
        match &= history_NL[:, k:k + L - n + 1] == last[:, k:k + 1]
    follower = jnp.where(match, history_NL[:, n - 1:], logits_NV.shape[-1])  # V: dropped
    return logits_NV.at[jnp.arange(N)[:, None], follower].set(-jnp.inf, mode="drop")


def best_outputs(sequences_BKL, lengths_BK, eos_id: int) -> list[list[int]]:
    """Each row's best hypothesis without its decoder-start token and its final EOS."""
    rows = []
    for seq, n in zip(sequences_BKL[:, 0], lengths_BK[:, 0]):
        ids = [int(i) for i in seq[1:int(n)]]
        rows.append(ids[:-1] if ids and ids[-1] == eos_id else ids)
    return rows
