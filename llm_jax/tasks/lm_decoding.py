"""Language models as decoding callbacks, and generation from token-id prompts.

llm_jax.decoding only knows `tokens_to_logits(tokens_BT, cache) -> (logits_BTV, cache)`; here
is where a model becomes one. GPT decodes with its KV cache while prompt + new tokens fit in
`model.max_len`; past that the cache cannot hold the context, so it slides a window over the
last `max_len` tokens without a cache (as nanoGPT does), recomputing the window each step. The
recurrent LM's carry is its cache.
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_jax.decoding import check_sampling_args, decode
from llm_jax.models.gpt import GPT
from llm_jax.models.rnn_lm import RNNLM

# GPT's cache is {"k", "v": [layers, batch, length, heads, head_dim], "index": shared scalar}.
GPT_CACHE_BATCH_AXES = {"k": 1, "v": 1, "index": None}


class Decoder(NamedTuple):
    """What a decoder needs from a model: the callback, its initial cache for `batch` rows, and
    the cache's batch axes (for beam search; see llm_jax.decoding.map_batch)."""
    tokens_to_logits: Callable
    cache: Any
    batch_axes: Any


def gpt_decoder(model: GPT, batch: int, length: int) -> Decoder:
    """KV-cache decoding of sequences of up to `length` tokens (<= model.max_len)."""
    if length > model.max_len:
        raise ValueError(f"sequence length {length} exceeds model.max_len={model.max_len}: the KV "
                         f"cache cannot hold it (use gpt_window_decoder)")

    def tokens_to_logits(tokens_BT, cache):
        return model.forward(tokens_BT, cache=cache)

    return Decoder(tokens_to_logits, model.init_cache(batch, length), GPT_CACHE_BATCH_AXES)


def gpt_window_decoder(model: GPT, batch: int, length: int) -> Decoder:
    """No cache: each call reruns the model on the last min(max_len, length) tokens seen.

    The cache is the window, left-aligned while it is not yet full: {"ctx": [B, W] token ids,
    "count": how many of them are real}. Positions past `count` hold stale ids, inert under the
    causal mask. Only the last position's logits are returned.
    """
    W = min(model.max_len, length)

    def tokens_to_logits(tokens_BT, cache):
        T = tokens_BT.shape[1]
        buf = jnp.concatenate([cache["ctx"], jnp.zeros_like(tokens_BT)], axis=1)
        buf = jax.lax.dynamic_update_slice_in_dim(buf, tokens_BT, cache["count"], 1)
        total = cache["count"] + T
        ctx = jax.lax.dynamic_slice_in_dim(buf, jnp.maximum(total - W, 0), W, 1)
        count = jnp.minimum(total, W)
        last_B1V = jax.lax.dynamic_slice_in_dim(model(ctx), count - 1, 1, 1)
        return last_B1V, {"ctx": ctx, "count": count}

    cache = {"ctx": jnp.zeros((batch, W), jnp.int32), "count": jnp.zeros((), jnp.int32)}
    return Decoder(tokens_to_logits, cache, {"ctx": 0, "count": None})


def rnn_lm_decoder(model: RNNLM, batch: int) -> Decoder:
    """The carry (one per layer, batch first) is the cache."""
    return Decoder(lambda tokens_BT, carry: model(tokens_BT, carry), model.initial_carry(batch), 0)


def lm_decoder(model, batch: int, length: int, *, use_cache: bool | None = None) -> Decoder:
    """The decoder for a GPT or RNNLM generating `batch` sequences of up to `length` tokens.

    use_cache (GPT only): None uses the KV cache when `length` fits in model.max_len and the
    sliding window otherwise; True insists on the cache, False on the window.
    """
    if isinstance(model, RNNLM):
        return rnn_lm_decoder(model, batch)
    if not isinstance(model, GPT):
        raise TypeError(f"generation supports model.name 'gpt' and 'rnn_lm', not "
                        f"{type(model).__name__}")
    if use_cache is None:
        use_cache = length <= model.max_len
    return (gpt_decoder if use_cache else gpt_window_decoder)(model, batch, length)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "prefill_len",
                                             "temperature", "top_k", "top_p", "eos_id", "pad_id",
                                             "use_cache"))
def _generate(graphdef, params, prompts_BP, lengths_B, key, *, max_new_tokens, prefill_len,
              temperature, top_k, top_p, eos_id, pad_id, use_cache):
    model = nnx.merge(graphdef, params)
    if isinstance(model, GPT):
        model.stack.hoist_layers()  # each layer's weights sliced once, not at every step
    B, P = prompts_BP.shape
    dec = lm_decoder(model, B, P + max_new_tokens, use_cache=use_cache)
    return decode(dec.tokens_to_logits, dec.cache, prompts_BP, lengths_B, max_new_tokens,
                  key=key, temperature=temperature, top_k=top_k, top_p=top_p, eos_id=eos_id,
                  pad_id=pad_id, prefill_len=prefill_len)


def generate_array(model, prompts_BP, prompt_lengths_B, max_new_tokens: int, *, key=None,
                   temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   eos_id: int | None = None, pad_id: int = 0, use_cache: bool | None = None):
    """(tokens [B, P + max_new_tokens], lengths [B]) from right-padded prompts: see
    llm_jax.decoding.decode. `key`: one key (row b samples with fold_in(key, b)) or [B] keys."""
    check_sampling_args(temperature, top_k, top_p)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    prompts_BP = np.asarray(prompts_BP, np.int32)
    lengths_B = np.asarray(prompt_lengths_B, np.int32)
    if prompts_BP.ndim != 2 or lengths_B.shape != prompts_BP.shape[:1] or (
            lengths_B.size and not 1 <= lengths_B.min() <= lengths_B.max() <= prompts_BP.shape[1]):
        raise ValueError(f"prompts must be [batch, length] ids with lengths in [1, length]; got "
                         f"shape {prompts_BP.shape} and lengths {lengths_B.tolist()}")
    if use_cache and isinstance(model, GPT) and prompts_BP.shape[1] + max_new_tokens > model.max_len:
        raise ValueError(f"prompt ({prompts_BP.shape[1]}) + max_new_tokens ({max_new_tokens}) "
                         f"exceeds model.max_len={model.max_len}: the KV cache cannot hold it")
    graphdef, params = nnx.split(model)
    return _generate(graphdef, nnx.to_pure_dict(params), prompts_BP, lengths_B,
                     jax.random.key(0) if key is None else key,
                     max_new_tokens=int(max_new_tokens), prefill_len=int(lengths_B.min()),
                     temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                     eos_id=None if eos_id is None else int(eos_id), pad_id=int(pad_id),
                     use_cache=None if use_cache is None else bool(use_cache))


def generate_tokens(model, prompts, max_new_tokens: int, *, key=None, temperature: float = 1.0,
                    top_k: int = 0, top_p: float = 1.0, eos_id: int | None = None,
                    use_cache: bool | None = None) -> list[list[int]]:
    """Each prompt (a list of token ids; lengths may differ) followed by its continuation of up
    to max_new_tokens tokens, stopping after `eos_id` (kept). Decoded as one batch; each row
    comes out as it would alone with the same row key (`key`: one key, or one per prompt)."""
    if len(prompts) == 0 or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty token-id lists")
    lengths = np.asarray([len(p) for p in prompts], np.int32)
    padded = np.zeros((len(prompts), lengths.max()), np.int32)
    for row, p in zip(padded, prompts):
        row[:len(p)] = p
    tokens, out_len = jax.device_get(generate_array(
        model, padded, lengths, max_new_tokens, key=key, temperature=temperature, top_k=top_k,
        top_p=top_p, eos_id=eos_id, use_cache=use_cache))
    return [row[:n].tolist() for row, n in zip(tokens, out_len)]


def generate(model, prompt_BP, max_new_tokens: int, *, key=None, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, use_cache: bool | None = None):
    """Token ids [B, P + max_new_tokens]: each prompt (all of length P) and its continuation.
    temperature 0 is greedy; use_cache as in `lm_decoder`."""
    prompt_BP = np.asarray(prompt_BP, np.int32)
    if prompt_BP.ndim != 2 or prompt_BP.shape[1] == 0:
        raise ValueError(f"prompt must be a non-empty [batch, length] array, got shape "
                         f"{prompt_BP.shape}")
    lengths = np.full(prompt_BP.shape[:1], prompt_BP.shape[1], np.int32)
    tokens, _ = generate_array(model, prompt_BP, lengths, max_new_tokens, key=key,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               use_cache=use_cache)
    return tokens
