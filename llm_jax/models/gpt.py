"""GPT-1 (post-LN) and GPT-2 (pre-LN, final LN, scaled residual init, tied embeddings).

GPT-3 is GPT-2's block with `attention_pattern="alternating"`: "alternating dense and locally
banded sparse attention patterns in the layers" (Brown et al. 2020, section 2.1): layers 0, 2,
4, ... attend to every earlier position, layers 1, 3, ... to the last `local_window` only.
"""

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm_jax import ops
from llm_jax.layers import (
    BlockConfig,
    DecoderStack,
    Embed,
    LayerNorm,
    LearnedPositions,
)
from llm_jax.layers.params import add_f32, config_dtype, dense, normal, param

VARIANTS = {
    # pre_ln, final_ln, scaled_residual_init
    "gpt1": (False, False, False),
    "gpt2": (True, True, True),
}

def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field a GPT config may set, with GPT-2-small-like defaults."""
    return ml_collections.ConfigDict(dict(
        name="gpt", variant="gpt2", vocab_size=0,  # 0: take the tokenizer's vocabulary size
        max_len=1024, num_layers=12, num_heads=12, embed_dim=768, mlp_dim=0,  # 0: 4 * embed
        dropout_rate=0.0, use_bias=True, activation="gelu_tanh", init_std=0.02,
        tie_embeddings=True,
        # Mixed precision: dtype="bfloat16" (the GPU configs' default) runs matmuls and
        # activations in bfloat16 while parameters, Adam moments, gradients, softmax,
        # layer-norm statistics and the loss stay float32 (param_dtype="float32").
        dtype="float32", param_dtype="float32",
        remat="none",  # "none" | "full" | "dots"
        scan_layers=True,  # False: a Python loop over the same stacked layer parameters
        head_dim=0,  # 0: embed_dim // num_heads; else heads of this width (n_heads * head_dim)
        attention_pattern="dense",  # "dense" | "alternating" (odd layers: local band)
        local_window=256,  # the band's width in "alternating": keys t-w+1..t
    ))


ATTENTION_PATTERNS = ("dense", "alternating")


class GPT(nnx.Module):
    """Decoder-only LM. `cfg` is the `model` ConfigDict of a config file (see configs/)."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.variant not in VARIANTS:
            raise ValueError(f"model.variant={cfg.variant!r}: expected one of {sorted(VARIANTS)}")
        pre_ln, final_ln, scaled = VARIANTS[cfg.variant]
        self.dtype = config_dtype("dtype", cfg.dtype)
        param_dtype = config_dtype("param_dtype", cfg.param_dtype)
        self.max_len, self.dropout_rate = cfg.max_len, cfg.dropout_rate
        # .get: configs saved in workdirs before these fields existed still load.
        pattern, window = cfg.get("attention_pattern", "dense"), cfg.get("local_window", 256)
        if pattern not in ATTENTION_PATTERNS:
            raise ValueError(f"model.attention_pattern={pattern!r}: expected one of "
                             f"{ATTENTION_PATTERNS}")
        if pattern != "dense" and not (isinstance(window, int) and window >= 1):
            raise ValueError(f"model.local_window={window!r} must be an int >= 1")
        self.local_window = window
        # A static tuple, not an array attribute: it is structure, not state.
        self.sparse_layers = (None if pattern == "dense" else
                              tuple(i % 2 == 1 for i in range(cfg.num_layers)))
        head_dim = cfg.get("head_dim", 0)
        if head_dim < 0:
            raise ValueError(f"model.head_dim={head_dim} must be >= 0 (0: embed_dim // num_heads)")
        self.block_cfg = BlockConfig(
            embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, head_dim=head_dim or None,
            mlp_dim=cfg.mlp_dim or 4 * cfg.embed_dim, num_layers=cfg.num_layers,
            pre_ln=pre_ln, dropout_rate=cfg.dropout_rate, use_bias=cfg.use_bias,
            activation=cfg.activation, init_std=cfg.init_std, scaled_residual_init=scaled,
            dtype=self.dtype, param_dtype=param_dtype)
        emb = dict(init_std=cfg.init_std, dtype=self.dtype, param_dtype=param_dtype, rngs=rngs)
        self.embed = Embed(cfg.vocab_size, cfg.embed_dim, **emb)
        self.positions = LearnedPositions(cfg.max_len, cfg.embed_dim, **emb)
        # .get: configs saved in workdirs before scan_layers existed still load.
        self.stack = DecoderStack(self.block_cfg, remat=cfg.remat,
                                  scan_layers=cfg.get("scan_layers", True), rngs=rngs)
        self.final_ln = (LayerNorm(cfg.embed_dim, use_bias=cfg.use_bias, param_dtype=param_dtype,
                                   rngs=rngs) if final_ln else None)
        self.head = None if cfg.tie_embeddings else param(
            normal(cfg.init_std), rngs.params(), (cfg.embed_dim, cfg.vocab_size),
            ("embed", "vocab"), param_dtype)

    def __call__(self, tokens_BT, *, dropout_key=None):
        """Logits (float32) for every position of a batch of token ids."""
        logits_BTV, _ = self.forward(tokens_BT, dropout_key=dropout_key)
        return logits_BTV

    def forward(self, tokens_BT, *, dropout_key=None, cache=None):
        T = tokens_BT.shape[1]
        start = 0 if cache is None else cache["index"]
        if cache is None and T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds model.max_len={self.max_len}")
        k_emb = k_stack = None
        if dropout_key is not None:
            k_emb, k_stack = jax.random.split(dropout_key)
        # add_f32: the positions' gradient is a sum over the batch, kept out of bfloat16.
        x_BTD = add_f32(self.embed(tokens_BT), self.positions(start + jnp.arange(T)))
        x_BTD = ops.dropout(x_BTD, self.dropout_rate, k_emb)
        sparse = {}
        if self.sparse_layers is not None:
            # Masked dense, not ops.local_attention: the dense layers in between need T x T
            # logits anyway, and with a cache the band's keys are the cache's slots.
            S = T if cache is None else cache["k"].shape[2]
            sparse = dict(sparse_layers=self.sparse_layers, sparse_mask=ops.local_mask(
                T, S, window=self.local_window, q_offset=start))
        x_BTD, cache = self.stack(x_BTD, dropout_key=k_stack, cache=cache, **sparse)
        if self.final_ln is not None:
            x_BTD = self.final_ln(x_BTD)
        if self.head is None:
            logits_BTV = self.embed.attend(x_BTD)
        else:
            logits_BTV = dense(x_BTD, self.head[...].astype(self.dtype))
        return logits_BTV.astype(jnp.float32), cache

    def init_cache(self, batch, max_len=None):
        """An empty KV cache for `batch` sequences of up to `max_len` (default model.max_len)."""
        return self.stack.init_cache(batch, max_len or self.max_len, self.dtype)
