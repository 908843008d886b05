"""Tiny models and callbacks shared by the decoding tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm_jax.models import gpt, rnn_lm


@functools.cache
def tiny_gpt(max_len=64):
    cfg = gpt.default_config()
    # init_std 0.3 spreads the logits, so argmax ties (and float-noise flips) are unlikely.
    cfg.update(num_layers=2, embed_dim=32, num_heads=4, vocab_size=50, max_len=max_len,
               init_std=0.3)
    return gpt.GPT(cfg, rngs=nnx.Rngs(0))


@functools.cache
def tiny_rnn(cell="lstm"):
    cfg = rnn_lm.default_config()
    cfg.update(cell=cell, vocab_size=50, hidden_dim=32, num_layers=2, init_scale=0.5)
    return rnn_lm.RNNLM(cfg, rngs=nnx.Rngs(0))


def logits_of(model, tokens_BT):
    out = model(tokens_BT)
    return out[0] if isinstance(out, tuple) else out  # RNNLM returns (logits, carry)


def recompute_decoder(model, batch, length):
    """A callback with no model state in its cache: it keeps every token seen and reruns the
    model on all of them each call (the reference for cached decoding)."""
    def tokens_to_logits(tokens_BT, cache):
        buf = jax.lax.dynamic_update_slice_in_dim(cache["buf"], tokens_BT, cache["n"], 1)
        n = cache["n"] + tokens_BT.shape[1]
        return jax.lax.dynamic_slice_in_dim(logits_of(model, buf), n - 1, 1, 1), {"buf": buf, "n": n}

    return tokens_to_logits, {"buf": jnp.zeros((batch, length), jnp.int32),
                              "n": jnp.zeros((), jnp.int32)}


def table_decoder(probs_VV, batch):
    """A Markov chain: the next-token distribution is row `last token` of probs_VV. The cache
    counts calls per row, so it has a batch axis for beam search to reorder."""
    logp_VV = jnp.log(jnp.asarray(probs_VV, jnp.float32))

    def tokens_to_logits(tokens_BT, calls_B):
        return logp_VV[tokens_BT[:, -1]][:, None], calls_B + 1

    return tokens_to_logits, jnp.zeros((batch,), jnp.int32)


def normalised(rows):
    p = np.asarray(rows, np.float64) + 1e-9  # no exact zeros: log 0 would be -inf
    return p / p.sum(-1, keepdims=True)
