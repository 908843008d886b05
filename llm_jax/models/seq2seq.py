"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Sinusoidal positions, embeddings scaled by sqrt(d_model), post-LN blocks (pre-LN, with a final
LayerNorm after each stack, as a switch), residual / attention / activation dropout, and one
vocabulary for source and target with the paper's three-way weight tie (source embedding =
target embedding = output projection), or a looser tie. With `logits_bias` and
`position_layout="concat"` it is Hugging Face's MarianMTModel (interop/marian.py).

A batch's source padding is a boolean `src_mask` [B, S] (True = real token) built by the data
pipeline; the target side needs no mask beyond causality, as its padding is on the right and
weighted out of the loss.
"""

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm_jax import ops
from llm_jax.layers import BlockConfig, DecoderStack, Embed, EncoderStack, LayerNorm
from llm_jax.layers.params import config_dtype, dense, normal, param, zeros

TIES = ("all", "decoder", "none")  # all: src = tgt = output; decoder: tgt = output; none


def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field a Transformer config may set; defaults are the paper's base model."""
    return ml_collections.ConfigDict(dict(
        name="transformer", vocab_size=0,  # 0: the tokenizer's (shared) vocabulary size
        max_len=256,  # longest source or target sequence the model accepts
        num_encoder_layers=6, num_decoder_layers=6, num_heads=8, embed_dim=512, mlp_dim=2048,
        dropout_rate=0.1,  # P_drop: residuals and the embedding + position sums
        attention_dropout=0.0, activation_dropout=0.0,
        activation="relu", pre_ln=False, scale_embeddings=True,
        position_layout="concat",  # "concat" (tensor2tensor, fairseq, Marian) | "interleaved"
        tie_embeddings="all", logits_bias=False,  # Marian's final_logits_bias
        init_std=0.0,  # 0: embed_dim ** -0.5
        ln_eps=1e-5, dtype="float32", param_dtype="float32",
        remat="none", scan_layers=True,
    ))


class Transformer(nnx.Module):
    """Encoder-decoder Transformer; `cfg` is the `model` ConfigDict of a config file."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.tie_embeddings not in TIES:
            raise ValueError(f"model.tie_embeddings={cfg.tie_embeddings!r}: expected one of {TIES}")
        if cfg.position_layout not in ("concat", "interleaved"):
            raise ValueError(f"model.position_layout={cfg.position_layout!r}: expected 'concat' "
                             "or 'interleaved'")
        self.dtype = config_dtype("dtype", cfg.dtype)
        param_dtype = config_dtype("param_dtype", cfg.param_dtype)
        d = cfg.embed_dim
        std = cfg.init_std or d ** -0.5
        self.max_len, self.dropout_rate = cfg.max_len, cfg.dropout_rate
        self.embed_scale = d ** 0.5 if cfg.scale_embeddings else 1.0
        self.position_layout, self.tie = cfg.position_layout, cfg.tie_embeddings

        def block_cfg(layers):
            return BlockConfig(
                embed_dim=d, num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim, num_layers=layers,
                pre_ln=cfg.pre_ln, dropout_rate=cfg.dropout_rate,
                attention_dropout=cfg.attention_dropout,
                activation_dropout=cfg.activation_dropout, activation=cfg.activation,
                ln_eps=cfg.ln_eps, init_std=std, scaled_residual_init=False, dtype=self.dtype,
                param_dtype=param_dtype)

        emb = dict(init_std=std, dtype=self.dtype, param_dtype=param_dtype, rngs=rngs)
        self.embed = Embed(cfg.vocab_size, d, **emb)  # the target's (and, tied, the source's)
        self.src_embed = None if cfg.tie_embeddings == "all" else Embed(cfg.vocab_size, d, **emb)
        stack = dict(remat=cfg.remat, scan_layers=cfg.scan_layers, rngs=rngs)
        self.encoder = EncoderStack(block_cfg(cfg.num_encoder_layers), **stack)
        self.decoder = DecoderStack(block_cfg(cfg.num_decoder_layers), cross_attention=True,
                                    **stack)
        ln = dict(eps=cfg.ln_eps, param_dtype=param_dtype, rngs=rngs)
        # Post-LN output is already normalised; pre-LN needs one LayerNorm after each stack.
        self.encoder_ln = LayerNorm(d, **ln) if cfg.pre_ln else None
        self.decoder_ln = LayerNorm(d, **ln) if cfg.pre_ln else None
        self.head = None if cfg.tie_embeddings != "none" else param(
            normal(std), rngs.params(), (d, cfg.vocab_size), ("embed", "vocab"), param_dtype)
        self.logits_bias = (param(zeros, None, (cfg.vocab_size,), ("vocab",), param_dtype)
                            if cfg.logits_bias else None)

    def _embed(self, table, tokens_BT, offset, dropout_key):
        T = tokens_BT.shape[1]
        x = table(tokens_BT) * self.embed_scale
        x = x + ops.sinusoidal_positions(T, x.shape[-1], offset=offset,
                                         layout=self.position_layout).astype(self.dtype)
        return ops.dropout(x, self.dropout_rate, dropout_key)

    def _check_len(self, n, what):
        if n > self.max_len:
            raise ValueError(f"{what} length {n} exceeds model.max_len={self.max_len}")

    def encode(self, src_BS, src_mask_BS, *, dropout_key=None):
        """The encoder output [B, S, D]; `src_mask_BS` is True at real (non-pad) tokens."""
        self._check_len(src_BS.shape[1], "source")
        k_emb = k_stack = None
        if dropout_key is not None:
            k_emb, k_stack = jax.random.split(dropout_key)
        table = self.embed if self.src_embed is None else self.src_embed
        x = self._embed(table, src_BS, 0, k_emb)
        x = self.encoder(x, mask=src_mask_BS[:, None, None, :], dropout_key=k_stack)
        return x if self.encoder_ln is None else self.encoder_ln(x)

    def decode(self, tgt_in_BT, encoded_BSD, src_mask_BS, *, dropout_key=None, cache=None):
        """(logits_BTV in float32, cache). With a cache (from `init_cache`) the encoder's
        keys/values come from it and `encoded_BSD` must be None; positions continue from the
        cache index."""
        start = 0 if cache is None else cache["index"]
        if cache is None:
            self._check_len(tgt_in_BT.shape[1], "target")
        k_emb = k_stack = None
        if dropout_key is not None:
            k_emb, k_stack = jax.random.split(dropout_key)
        x = self._embed(self.embed, tgt_in_BT, start, k_emb)
        x, cache = self.decoder(x, encoded=encoded_BSD, cross_mask=src_mask_BS[:, None, None, :],
                                dropout_key=k_stack, cache=cache)
        if self.decoder_ln is not None:
            x = self.decoder_ln(x)
        logits = self.embed.attend(x) if self.head is None else dense(x, self.head[...].astype(x.dtype))
        logits = logits.astype(jnp.float32)
        if self.logits_bias is not None:
            logits = logits + self.logits_bias[...].astype(jnp.float32)
        return logits, cache

    def __call__(self, src_BS, src_mask_BS, tgt_in_BT, *, dropout_key=None):
        """Teacher-forced logits [B, T, V] (float32) of the next target tokens."""
        k_enc = k_dec = None
        if dropout_key is not None:
            k_enc, k_dec = jax.random.split(dropout_key)
        encoded = self.encode(src_BS, src_mask_BS, dropout_key=k_enc)
        return self.decode(tgt_in_BT, encoded, src_mask_BS, dropout_key=k_dec)[0]

    def init_cache(self, encoded_BSD, max_len: int):
        """A decoding cache for up to `max_len` target tokens, holding every decoder layer's
        cross-attention keys/values of `encoded_BSD` (computed once, here)."""
        self._check_len(max_len, "target")
        return self.decoder.init_cache(encoded_BSD.shape[0], max_len, self.dtype,
                                       encoded=encoded_BSD)
