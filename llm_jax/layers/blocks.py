"""Transformer encoder and decoder blocks, pre- or post-LN."""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax.layers.attention import Attention
from llm_jax.layers.mlp import MLP
from llm_jax.layers.norms import LayerNorm, RMSNorm


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    embed_dim: int
    num_heads: int
    mlp_dim: int
    num_layers: int
    pre_ln: bool = True  # False: post-LN (original Transformer, BERT, GPT-1)
    dropout_rate: float = 0.0  # residual dropout (on each sub-layer's output)
    attention_dropout: float | None = None  # on attention probabilities; None: dropout_rate
    activation_dropout: float = 0.0  # inside the MLP, after the activation
    use_bias: bool = True
    activation: str = "gelu_tanh"
    norm: str = "layer"  # "layer" | "rms" (T5)
    ln_eps: float = 1e-5
    attn_scale: float | None = None  # None: 1 / sqrt(head_dim); T5: 1.0
    head_dim: int | None = None  # None: embed_dim // num_heads
    init_std: float = 0.02
    scaled_residual_init: bool = True  # GPT-2: residual projections get std / sqrt(2 * layers)
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32


def _residual(pre_ln, norm, fn, x):
    """Pre-LN x + f(LN(x)) or post-LN LN(x + f(x)); `fn` returns (f(x), aux)."""
    y, aux = fn(norm(x) if pre_ln else x)
    x = x + y
    return (x if pre_ln else norm(x)), aux


class _Block(nnx.Module):
    """Self-attention, optional cross-attention, MLP; each a residual sub-layer."""

    def __init__(self, cfg: BlockConfig, *, causal, cross_attention, rngs):
        if cfg.norm not in ("layer", "rms"):
            raise ValueError(f"model.norm={cfg.norm!r}: expected 'layer' or 'rms'")
        out_std = cfg.init_std
        if cfg.scaled_residual_init:
            out_std = cfg.init_std / (2 * cfg.num_layers) ** 0.5
        common = dict(use_bias=cfg.use_bias, init_std=cfg.init_std, out_init_std=out_std,
                      dropout_rate=cfg.dropout_rate, dtype=cfg.dtype,
                      param_dtype=cfg.param_dtype, rngs=rngs)
        attn = dict(scale=cfg.attn_scale, attn_dropout_rate=cfg.attention_dropout,
                    head_dim=cfg.head_dim, **common)

        def norm():
            if cfg.norm == "rms":
                return RMSNorm(cfg.embed_dim, eps=cfg.ln_eps, param_dtype=cfg.param_dtype,
                               rngs=rngs)
            return LayerNorm(cfg.embed_dim, eps=cfg.ln_eps, use_bias=cfg.use_bias,
                             param_dtype=cfg.param_dtype, rngs=rngs)

        self.pre_ln = cfg.pre_ln
        self.ln1 = norm()
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, causal=causal, **attn)
        if cross_attention:
            self.ln_cross = norm()
            self.cross_attn = Attention(cfg.embed_dim, cfg.num_heads, cross=True, **attn)
        else:
            self.ln_cross = self.cross_attn = None
        self.ln2 = norm()
        self.mlp = MLP(cfg.embed_dim, cfg.mlp_dim, activation=cfg.activation,
                       activation_dropout=cfg.activation_dropout, **common)

    def _apply(self, x, *, mask, bias, encoded, cross_mask, cross_bias, dropout_key, cache):
        keys = [None] * 3
        if dropout_key is not None:  # two keys without cross-attention, as GPT always had
            keys = list(jax.random.split(dropout_key, 2 if self.cross_attn is None else 3))
        self_cache = None if cache is None else {n: cache[n] for n in ("k", "v", "index")}
        x, self_cache = _residual(self.pre_ln, self.ln1, lambda h: self.attn(
            h, mask=mask, bias=bias, dropout_key=keys[0], cache=self_cache), x)
        if self.cross_attn is not None:
            cached = cache is not None and "cross_k" in cache
            if cached == (encoded is not None):
                raise ValueError("cross-attention needs `encoded` or a cache with cross_k/cross_v "
                                 "(DecoderStack.init_cache(..., encoded=...)), not both")
            cross = {"k": cache["cross_k"], "v": cache["cross_v"]} if cached else None
            x, _ = _residual(self.pre_ln, self.ln_cross, lambda h: self.cross_attn(
                h, encoded, mask=cross_mask, bias=cross_bias, dropout_key=keys[2],
                cache=cross), x)
        elif encoded is not None:
            raise ValueError("`encoded` given to a block without cross-attention "
                             "(DecoderStack(..., cross_attention=True))")
        x, _ = _residual(self.pre_ln, self.ln2, lambda h: (self.mlp(h, keys[1]), None), x)
        return x, None if cache is None else {**cache, **self_cache}


class EncoderBlock(_Block):
    """Bidirectional self-attention + MLP: BERT, ALBERT, the Transformer and T5 encoders."""

    def __init__(self, cfg: BlockConfig, *, rngs):
        super().__init__(cfg, causal=False, cross_attention=False, rngs=rngs)

    def __call__(self, x_BTD, *, mask=None, bias=None, dropout_key=None):
        """`mask`/`bias` broadcast to [B, H, T, T] (padding, segments; relative bias)."""
        x_BTD, _ = self._apply(x_BTD, mask=mask, bias=bias, encoded=None, cross_mask=None,
                               cross_bias=None, dropout_key=dropout_key, cache=None)
        return x_BTD


class DecoderBlock(_Block):
    """Causal self-attention, then (with `cross_attention`) attention to an encoder output.

    The cache is {"k", "v": [B, S_max, H, D], "index": int32[]} for self-attention, plus
    "cross_k", "cross_v": [B, S_enc, H, D] when cross-attention reads cached encoder K/V.
    """

    def __init__(self, cfg: BlockConfig, *, cross_attention=False, rngs):
        super().__init__(cfg, causal=True, cross_attention=cross_attention, rngs=rngs)

    def __call__(self, x_BTD, *, mask=None, bias=None, encoded=None, cross_mask=None,
                 cross_bias=None, dropout_key=None, cache=None):
        """(x_BTD, cache). `mask`/`bias` are combined with the causal mask; `cross_mask`/
        `cross_bias` broadcast to [B, H, T, S_enc]; `encoded` [B, S_enc, D] unless cached."""
        return self._apply(x_BTD, mask=mask, bias=bias, encoded=encoded, cross_mask=cross_mask,
                           cross_bias=cross_bias, dropout_key=dropout_key, cache=cache)
