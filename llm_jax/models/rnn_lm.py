"""Stacked recurrent language model (Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network
Regularization"): embedding -> L recurrent layers -> softmax, with dropout only on the
non-recurrent connections (the embedding output, between layers, before the softmax).

The model is a function of (tokens, carry): the carry is one cell carry per layer and is
returned updated, so a task can continue it across batches (truncated BPTT).
"""

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import config_dtype, dense, param, uniform
from llm_jax.layers.recurrent import make_cell, run_cell


def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field an RNN LM config may set; defaults are Zaremba's small LSTM."""
    return ml_collections.ConfigDict(dict(
        name="rnn_lm", cell="lstm",   # "lstm" | "gru" | "rnn" (tanh Elman)
        vocab_size=0,                 # 0: take the tokenizer's vocabulary size
        embed_dim=0,                  # 0: hidden_dim (needed for tie_embeddings)
        hidden_dim=200, num_layers=2, dropout_rate=0.0,
        init_scale=0.1,               # every weight uniform in +-init_scale; cell biases zero
        forget_bias=0.0,              # LSTM only; ptb_word_lm.py uses 0
        tie_embeddings=False,         # Press & Wolf 2017 / Inan et al. 2017
        dtype="float32", param_dtype="float32",
    ))



class RNNLM(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        self.dtype = config_dtype("dtype", cfg.dtype)
        param_dtype = config_dtype("param_dtype", cfg.param_dtype)
        if cfg.num_layers < 1 or cfg.hidden_dim < 1:
            raise ValueError(f"model.num_layers={cfg.num_layers} and model.hidden_dim="
                             f"{cfg.hidden_dim} must be >= 1")
        if not cfg.init_scale or cfg.init_scale <= 0:
            raise ValueError(f"model.init_scale={cfg.init_scale!r} must be > 0")
        embed_dim = cfg.embed_dim or cfg.hidden_dim
        if cfg.tie_embeddings and embed_dim != cfg.hidden_dim:
            raise ValueError(f"model.tie_embeddings needs model.embed_dim ({embed_dim}) equal to "
                             f"model.hidden_dim ({cfg.hidden_dim})")
        init = uniform(cfg.init_scale)
        self.dropout_rate, self.tie = cfg.dropout_rate, cfg.tie_embeddings
        self.table = param(init, rngs.params(), (cfg.vocab_size, embed_dim), ("vocab", "embed"),
                           param_dtype)
        cell_opts = dict(rngs=rngs, init_scale=cfg.init_scale, dtype=self.dtype,
                         param_dtype=param_dtype)
        if cfg.cell == "lstm":
            cell_opts["forget_bias"] = cfg.forget_bias
        # A Python loop over 2-3 layers of different input widths; scanning would need equal ones.
        self.cells = nnx.List([
            make_cell(cfg.cell, embed_dim if i == 0 else cfg.hidden_dim, cfg.hidden_dim, **cell_opts)
            for i in range(cfg.num_layers)])
        self.out_kernel = None if self.tie else param(
            init, rngs.params(), (cfg.hidden_dim, cfg.vocab_size), ("embed", "vocab"), param_dtype)
        self.out_bias = param(init, rngs.params(), (cfg.vocab_size,), ("vocab",), param_dtype)

    def initial_carry(self, batch_size: int):
        return tuple(cell.initial_carry(batch_size) for cell in self.cells)

    def __call__(self, tokens_BT, carry=None, *, dropout_key=None):
        """(logits_BTV, new carry); carry None starts from zeros."""
        if carry is None:
            carry = self.initial_carry(tokens_BT.shape[0])
        keys = (list(jax.random.split(dropout_key, len(self.cells) + 1))
                if dropout_key is not None else [None] * (len(self.cells) + 1))
        x = jnp.take(self.table[...], tokens_BT, axis=0).astype(self.dtype)
        x = ops.dropout(x, self.dropout_rate, keys[0])
        new_carry = []
        for cell, c, key in zip(self.cells, carry, keys[1:], strict=True):
            c, x = run_cell(cell, c, x)
            x = ops.dropout(x, self.dropout_rate, key)
            new_carry.append(c)
        kernel = self.table[...].T if self.tie else self.out_kernel[...]
        logits_BTV = dense(x, kernel.astype(self.dtype)) + self.out_bias[...].astype(self.dtype)
        return logits_BTV, tuple(new_carry)
