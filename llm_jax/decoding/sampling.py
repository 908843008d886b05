"""Autoregressive generation: greedy, temperature, top-k and top-p sampling, batched.

With the KV cache each new token costs one position of compute; without it every step re-reads
the whole context. Past the model's `max_len` the cache cannot hold the context, so generation
slides a window over the last `max_len` tokens (as nanoGPT does) without a cache.
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx


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


def sample_token(logits_BV, key, *, temperature: float, top_k: int, top_p: float):
    if temperature == 0.0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    logits_BV = filter_logits(logits_BV / temperature, top_k=top_k, top_p=top_p)
    return jax.random.categorical(key, logits_BV, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "temperature",
                                             "top_k", "top_p", "use_cache"))
def _generate(graphdef, params, prompt_BP, key, *, max_new_tokens, temperature, top_k, top_p,
              use_cache):
    model = nnx.merge(graphdef, params)
    B, P = prompt_BP.shape
    total = P + max_new_tokens
    tokens = jnp.zeros((B, total), jnp.int32).at[:, :P].set(prompt_BP)
    sample = functools.partial(sample_token, temperature=temperature, top_k=top_k, top_p=top_p)

    if use_cache:
        logits, cache = model.forward(prompt_BP, cache=model.init_cache(B, total))
        tokens = tokens.at[:, P].set(sample(logits[:, -1], jax.random.fold_in(key, 0)))

        def step(i, carry):
            tokens, cache = carry
            pos = P + i - 1
            logits, cache = model.forward(jax.lax.dynamic_slice_in_dim(tokens, pos, 1, 1),
                                          cache=cache)
            nxt = sample(logits[:, -1], jax.random.fold_in(key, i))
            return jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], pos + 1, 1), cache

        tokens, _ = jax.lax.fori_loop(1, max_new_tokens, step, (tokens, cache))
        return tokens

    window = min(model.max_len, total)

    def step(i, tokens):
        cur = P + i  # number of tokens known so far
        start = jnp.clip(cur - window, 0, total - window)
        ctx = jax.lax.dynamic_slice_in_dim(tokens, start, window, 1)
        logits = model(ctx)
        last = jax.lax.dynamic_index_in_dim(logits, cur - 1 - start, 1, keepdims=False)
        nxt = sample(last, jax.random.fold_in(key, i))
        return jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], cur, 1)

    return jax.lax.fori_loop(0, max_new_tokens, step, tokens)


def generate(model, prompt_BP, max_new_tokens: int, *, key=None, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, use_cache=None):
    """Token ids [B, P + max_new_tokens]: each prompt followed by its continuation.

    temperature 0 is greedy decoding. `use_cache=None` uses the KV cache whenever the whole
    sequence fits in the model's `max_len`.
    """
    prompt_BP = jnp.asarray(prompt_BP, jnp.int32)
    if prompt_BP.ndim != 2 or prompt_BP.shape[1] == 0:
        raise ValueError(f"prompt must be a non-empty [batch, length] array, got shape "
                         f"{prompt_BP.shape}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 0; got "
                         f"temperature={temperature}, top_p={top_p}, top_k={top_k}")
    fits = prompt_BP.shape[1] + max_new_tokens <= model.max_len
    if use_cache is None:
        use_cache = fits
    elif use_cache and not fits:
        raise ValueError(f"prompt ({prompt_BP.shape[1]}) + max_new_tokens ({max_new_tokens}) "
                         f"exceeds model.max_len={model.max_len}: the KV cache cannot hold it")
    graphdef, params = nnx.split(model)
    key = jax.random.key(0) if key is None else key
    return _generate(graphdef, nnx.to_pure_dict(params), prompt_BP, key,
                     max_new_tokens=max_new_tokens, temperature=float(temperature),
                     top_k=int(top_k), top_p=float(top_p), use_cache=bool(use_cache))
