"""Autoregressive decoding (greedy, temperature, top-k, top-p) over a `tokens_to_logits` callback.

The callback is `tokens_to_logits(tokens_BT, cache) -> (logits_BTV, cache)`: it sees only the
new tokens and carries everything else (a KV cache, an RNN carry, a window of past tokens) in
`cache`. Only the last position of the returned logits is read, so a callback may return
[B, 1, V]. Decoding never calls a model itself; llm_jax.tasks.lm_decoding builds the callbacks.

Prompts of different lengths share one batch the way Flax's lm1b temperature_sampler does:
they are right-padded, the shortest prompt (all but its last token) is fed in one prefill call,
and from there every row steps one position at a time, its own prompt tokens forced in place of
samples until its prompt ends. Every row sees exactly the positions it would see alone, and
the sampling key of a row at a position is fold_in(row key, position), so a row's output does
not depend on what else is in the batch.
"""

import jax
import jax.numpy as jnp
import numpy as np


def filter_logits(logits_BV, *, top_k: int = 0, top_p: float = 1.0):
    """Sets to -inf every logit outside the top-k and outside the top-p nucleus."""
    neg = jnp.finfo(logits_BV.dtype).min
    if top_k:
        kth = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
        logits_BV = jnp.where(logits_BV < kth, neg, logits_BV)
    if top_p < 1.0:
        sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
        cum = jnp.cumsum(jax.nn.softmax(sorted_BV, axis=-1), axis=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        keep = jnp.concatenate([jnp.ones_like(cum[:, :1], bool), cum[:, :-1] < top_p], axis=-1)
        cutoff = jnp.min(jnp.where(keep, sorted_BV, jnp.inf), axis=-1, keepdims=True)
        logits_BV = jnp.where(logits_BV < cutoff, neg, logits_BV)
    return logits_BV


def sample_token(logits_BV, key, *, temperature: float, top_k: int = 0, top_p: float = 1.0):
    """One token per row. `key` is one key for the batch, or one key per row ([B] keys)."""
    if temperature == 0.0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    logits_BV = filter_logits(logits_BV / temperature, top_k=top_k, top_p=top_p)
    if jnp.ndim(key) == 0:
        return jax.random.categorical(key, logits_BV, axis=-1).astype(jnp.int32)
    return jax.vmap(jax.random.categorical)(key, logits_BV).astype(jnp.int32)


def check_sampling_args(temperature, top_k, top_p):
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 0; got "
                         f"temperature={temperature}, top_p={top_p}, top_k={top_k}")


def row_keys(key, batch: int):
    """[batch] keys: fold_in(key, row) for one key, or `key` itself when it is one key per row."""
    key = jax.random.key(0) if key is None else jnp.asarray(key)
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # a raw uint32 key from jax.random.PRNGKey
    if key.ndim == 0:
        return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(batch))
    if key.shape != (batch,):
        raise ValueError(f"key must be one key or one per row ({batch}), got shape {key.shape}")
    return key


def _concrete(x):
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def decode(tokens_to_logits, cache, prompts_BP, prompt_lengths_B, max_new_tokens: int, *,
           key=None, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           eos_id: int | None = None, pad_id: int = 0, prefill_len: int | None = None):
    """(tokens_BL, lengths_B) with L = P + max_new_tokens.

    Row b holds its prompt (the first prompt_lengths_B[b] entries of prompts_BP[b]; None: all
    P) followed by up to max_new_tokens generated tokens, ending at its first generated `eos_id`
    (kept). `lengths_B` counts prompt and generated tokens; every position past it holds
    `pad_id`. The loop stops as soon as every row is done. `cache` must hold L - 1 positions.
    temperature 0 is greedy. `key` is one key (each row gets fold_in(key, row)) or [B] keys.
    `prefill_len` (default: the shortest prompt length, which must then be concrete) is how
    many leading positions every row shares as prompt; all but the last are fed in one call.
    """
    check_sampling_args(temperature, top_k, top_p)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    prompts_BP = jnp.asarray(prompts_BP, jnp.int32)
    B, P = prompts_BP.shape
    L = P + max_new_tokens
    if prompt_lengths_B is None:
        prompt_lengths_B = np.full((B,), P, np.int32)
    known = _concrete(prompt_lengths_B)
    if known is not None and (known.shape != (B,) or known.min() < 1 or known.max() > P):
        raise ValueError(f"prompt_lengths_B={known.tolist()} must be {B} lengths in [1, {P}]")
    if prefill_len is None and known is None:
        raise ValueError("prompt_lengths_B is traced (decode inside jit): pass prefill_len, a "
                         "Python int <= the shortest prompt length")
    m = int(known.min()) if prefill_len is None else int(prefill_len)
    if not 1 <= m <= (P if known is None else known.min()):
        raise ValueError(f"prefill_len={m} must be in [1, shortest prompt length]")
    lengths_B = jnp.asarray(prompt_lengths_B, jnp.int32)
    in_prompt_BL = jnp.arange(L)[None] < lengths_B[:, None]
    tokens_BL = jnp.where(in_prompt_BL, jnp.pad(prompts_BP, ((0, 0), (0, max_new_tokens))), pad_id)
    limit_B = lengths_B + max_new_tokens
    keys_B = None if temperature == 0.0 else row_keys(key, B)
    if m > 1:
        _, cache = tokens_to_logits(tokens_BL[:, :m - 1], cache)

    def cond(state):
        t, _, _, done_B, _ = state
        return (t < L) & ~jnp.all(done_B)

    def body(state):
        t, tokens_BL, cache, done_B, out_len_B = state
        logits, cache = tokens_to_logits(jax.lax.dynamic_slice_in_dim(tokens_BL, t - 1, 1, 1), cache)
        step_keys = None if keys_B is None else jax.vmap(jax.random.fold_in, (0, None))(keys_B, t)
        sampled_B = sample_token(logits[:, -1], step_keys, temperature=temperature, top_k=top_k,
                                 top_p=top_p)
        forced_B = t < lengths_B
        generated_B = ~forced_B & ~done_B
        tok_B = jnp.where(forced_B, tokens_BL[:, t], jnp.where(done_B, pad_id, sampled_B))
        out_len_B = jnp.where(generated_B, t + 1, out_len_B)
        finished_B = generated_B & (t + 1 >= limit_B)
        if eos_id is not None:
            finished_B |= generated_B & (tok_B == eos_id)
        tokens_BL = jax.lax.dynamic_update_slice_in_dim(tokens_BL, tok_B[:, None], t, 1)
        return t + 1, tokens_BL, cache, done_B | finished_B, out_len_B

    state = (jnp.asarray(m, jnp.int32), tokens_BL, cache, jnp.zeros((B,), bool), lengths_B)
    _, tokens_BL, _, _, out_len_B = jax.lax.while_loop(cond, body, state)
    return tokens_BL, out_len_B
