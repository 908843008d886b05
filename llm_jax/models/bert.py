"""BERT (Devlin et al., 2019), RoBERTa (Liu et al., 2019) and ALBERT (Lan et al., 2020).

One post-LN bidirectional encoder with three switches between the families:
  BERT:    token + segment + learned position embeddings, LayerNorm eps 1e-12, exact GELU,
           a tanh pooler over [CLS], the MLM head (dense + GELU + LayerNorm + the tied word
           embedding + an output bias) and the next-sentence head on the pooled output.
  RoBERTa: positions counted over real tokens from past the padding index
           (`position_ids="cumsum_mask"`), one segment type, eps 1e-5, no sentence head.
  ALBERT:  embeddings of size E < H projected to the hidden size (`embedding_dim`), one
           layer applied `num_layers` times (`shared_layers`), the sentence-order head.
With the fields a Hugging Face config.json gives (interop/bert.py) the numbers are those of
BertForPreTraining, RobertaForMaskedLM and AlbertForPreTraining.

The padding mask is a boolean [B, T] (True = real token) built by the data pipeline.
"""

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm_jax import ops
from llm_jax.layers import BlockConfig, Dense, Embed, EncoderStack, LayerNorm, LearnedPositions
from llm_jax.layers.mlp import ACTIVATIONS
from llm_jax.layers.params import config_dtype, param, zeros

POSITION_IDS = ("arange", "cumsum_mask")
SENTENCE_HEADS = ("nsp", "sop", "")

# (num_layers, embed_dim, num_heads, mlp_dim, embedding_dim) of the published sizes
SIZES = {
    # Turc et al. (2019), "Well-Read Students Learn Better": the small BERTs
    "bert_tiny": (2, 128, 2, 512, 0), "bert_mini": (4, 256, 4, 1024, 0),
    "bert_small": (4, 512, 8, 2048, 0), "bert_medium": (8, 512, 8, 2048, 0),
    "bert_base": (12, 768, 12, 3072, 0), "bert_large": (24, 1024, 16, 4096, 0),
    "roberta_base": (12, 768, 12, 3072, 0), "roberta_large": (24, 1024, 16, 4096, 0),
    # Lan et al. (2020), Table 1
    "albert_base": (12, 768, 12, 3072, 128), "albert_large": (24, 1024, 16, 4096, 128),
    "albert_xlarge": (24, 2048, 16, 8192, 128), "albert_xxlarge": (12, 4096, 64, 16384, 128),
}


def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field a BERT-family config may set; defaults are BERT-base uncased."""
    return ml_collections.ConfigDict(dict(
        name="bert", vocab_size=0,  # 0: the tokenizer's
        max_len=512, type_vocab_size=2,
        num_layers=12, num_heads=12, embed_dim=768, mlp_dim=3072,
        embedding_dim=0,  # ALBERT's E; 0: embed_dim (no projection)
        shared_layers=False,  # ALBERT: one layer's parameters for every layer
        dropout_rate=0.1, attention_dropout=0.1, classifier_dropout=0.0,
        activation="gelu", ln_eps=1e-12, init_std=0.02,
        position_ids="arange",  # "cumsum_mask": RoBERTa's, counted over real tokens
        pad_position=1,  # with cumsum_mask: padding's position; real tokens from pad_position + 1
        pooler=True, sentence_head="nsp",  # "nsp" | "sop" (the same classifier) | ""
        dtype="float32", param_dtype="float32", remat="none", scan_layers=True,
    ))


def size_config(size: str) -> ml_collections.ConfigDict:
    """default_config() with the shape and family fields of a published size (SIZES)."""
    if size not in SIZES:
        raise ValueError(f"unknown BERT-family size {size!r}; expected one of {sorted(SIZES)}")
    layers, d, heads, mlp, emb = SIZES[size]
    c = default_config()
    c.update(num_layers=layers, embed_dim=d, num_heads=heads, mlp_dim=mlp, embedding_dim=emb)
    if size.startswith("roberta"):
        c.update(vocab_size=50265, max_len=514, type_vocab_size=1, ln_eps=1e-5,
                 position_ids="cumsum_mask", pooler=False, sentence_head="")
    elif size.startswith("albert"):
        c.update(vocab_size=30000, shared_layers=True, activation="gelu_tanh",
                 sentence_head="sop", attention_dropout=0.0, dropout_rate=0.0,
                 classifier_dropout=0.1)
    else:
        c.vocab_size = 30522
    return c


class Bert(nnx.Module):
    """The encoder and its pre-training heads; `cfg` is a config's `model` ConfigDict."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.position_ids not in POSITION_IDS:
            raise ValueError(f"model.position_ids={cfg.position_ids!r}: expected one of "
                             f"{POSITION_IDS}")
        if cfg.sentence_head not in SENTENCE_HEADS:
            raise ValueError(f"model.sentence_head={cfg.sentence_head!r}: expected one of "
                             f"{SENTENCE_HEADS}")
        if cfg.sentence_head and not cfg.pooler:
            raise ValueError("model.sentence_head reads the pooled [CLS] output: set "
                             "model.pooler=True")
        if cfg.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={cfg.activation!r}: expected one of "
                             f"{sorted(ACTIVATIONS)}")
        self.dtype = config_dtype("dtype", cfg.dtype)
        param_dtype = config_dtype("param_dtype", cfg.param_dtype)
        d, e, std = cfg.embed_dim, cfg.embedding_dim or cfg.embed_dim, cfg.init_std
        self.max_len, self.dropout_rate = cfg.max_len, cfg.dropout_rate
        self.classifier_dropout, self.activation = cfg.classifier_dropout, cfg.activation
        self.position_ids, self.pad_position = cfg.position_ids, cfg.pad_position
        emb = dict(init_std=std, dtype=self.dtype, param_dtype=param_dtype, rngs=rngs)
        ln = dict(eps=cfg.ln_eps, param_dtype=param_dtype, rngs=rngs)
        self.embed = Embed(cfg.vocab_size, e, **emb)
        self.positions = LearnedPositions(cfg.max_len, e, **emb)
        self.segments = Embed(cfg.type_vocab_size, e, **emb)
        self.embed_ln = LayerNorm(e, **ln)

        def linear(n_in, n_out, axes):
            return Dense(n_in, n_out, axes=axes, init_std=std, dtype=self.dtype,
                         param_dtype=param_dtype, rngs=rngs)

        # ALBERT's embedding_hidden_mapping_in: E -> H before the first layer
        self.embed_proj = linear(e, d, ("embed", "mlp")) if e != d else None
        block = BlockConfig(
            embed_dim=d, num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim, num_layers=cfg.num_layers,
            pre_ln=False, dropout_rate=cfg.dropout_rate, attention_dropout=cfg.attention_dropout,
            activation=cfg.activation, ln_eps=cfg.ln_eps, init_std=std,
            scaled_residual_init=False, dtype=self.dtype, param_dtype=param_dtype)
        self.encoder = EncoderStack(block, shared=cfg.shared_layers, remat=cfg.remat,
                                    scan_layers=cfg.scan_layers, rngs=rngs)
        self.pooler = linear(d, d, ("embed", "mlp")) if cfg.pooler else None
        # the MLM transform maps H -> E, so that the tied E-wide word embedding decodes it
        self.mlm_dense = linear(d, e, ("mlp", "embed"))
        self.mlm_ln = LayerNorm(e, **ln)
        self.mlm_bias = param(zeros, None, (cfg.vocab_size,), ("vocab",), param_dtype)
        self.sentence = linear(d, 2, ("embed", None)) if cfg.sentence_head else None

    def _position_ids(self, mask_BT):
        T = mask_BT.shape[1]
        if self.position_ids == "arange":
            return jnp.broadcast_to(jnp.arange(T), mask_BT.shape)
        real = mask_BT.astype(jnp.int32)
        return jnp.cumsum(real, axis=1) * real + self.pad_position

    def encode(self, input_ids_BT, segment_ids_BT=None, mask_BT=None, *, dropout_key=None,
               all_layers=False):
        """The last layer's hidden states [B, T, H]; with `all_layers`, also the input of the
        first layer and every layer's output, [L + 1, B, T, H] (HF's hidden_states)."""
        B, T = input_ids_BT.shape
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds model.max_len={self.max_len}")
        mask_BT = jnp.ones((B, T), bool) if mask_BT is None else mask_BT
        segment_ids_BT = (jnp.zeros((B, T), jnp.int32) if segment_ids_BT is None
                          else segment_ids_BT)
        k_emb = k_stack = None
        if dropout_key is not None:
            k_emb, k_stack = jax.random.split(dropout_key)
        x = (self.embed(input_ids_BT) + self.positions(self._position_ids(mask_BT))
             + self.segments(segment_ids_BT))
        x = ops.dropout(self.embed_ln(x), self.dropout_rate, k_emb)
        if self.embed_proj is not None:
            x = self.embed_proj(x)
        out = self.encoder(x, mask=mask_BT[:, None, None, :], dropout_key=k_stack,
                           all_layers=all_layers)
        if not all_layers:
            return out
        h, states_LBTD = out
        return h, jnp.concatenate([x[None], states_LBTD])

    def pool(self, h_BTD):
        """tanh(dense(h of the first token, [CLS] / <s>)), [B, H]."""
        return jnp.tanh(self.pooler(h_BTD[:, 0]))

    def mlm_logits(self, h_NTD):
        """Masked-LM logits (float32) of hidden states of any leading shape: the task may
        pass only the masked positions."""
        x = ACTIVATIONS[self.activation](self.mlm_dense(h_NTD))
        logits = self.embed.attend(self.mlm_ln(x)).astype(jnp.float32)
        return logits + self.mlm_bias[...].astype(jnp.float32)

    def sentence_logits(self, pooled_BD, *, dropout_key=None):
        """NSP (is-next) or SOP (in-order) logits [B, 2], float32; class 0 = "yes"."""
        pooled_BD = ops.dropout(pooled_BD, self.classifier_dropout, dropout_key)
        return self.sentence(pooled_BD).astype(jnp.float32)

    def __call__(self, input_ids_BT, segment_ids_BT=None, mask_BT=None, *, dropout_key=None):
        """{"hidden": [B, T, H], "mlm_logits": [B, T, V], and with a pooler "pooled" [B, H],
        with a sentence head "sentence_logits" [B, 2]}."""
        k_enc = k_cls = None
        if dropout_key is not None:
            k_enc, k_cls = jax.random.split(dropout_key)
        h = self.encode(input_ids_BT, segment_ids_BT, mask_BT, dropout_key=k_enc)
        out = {"hidden": h, "mlm_logits": self.mlm_logits(h)}
        if self.pooler is not None:
            out["pooled"] = self.pool(h)
            if self.sentence is not None:
                out["sentence_logits"] = self.sentence_logits(out["pooled"], dropout_key=k_cls)
        return out
