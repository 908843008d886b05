"""A pre-trained backbone with a fine-tuning head (layers/heads.py): `FineTuned`.

    model.name = "finetune"
    model.backbone = the backbone's own model config (bert.size_config("bert_mini"), ...)
    model.head = "classification" | "token" | "span" | "intent_slot"

The backbone's parameters sit under "backbone/" with the paths its own model gives them, so a
pre-training checkpoint loads with `config.init_from=WORKDIR` and
`config.init_from_prefix="backbone"` (training/init_from.py); the head's parameters start
fresh, under "head/".

The backbone interface. A backbone is one entry of BACKBONES, keyed by model.backbone.name:
  build(cfg, rngs) -> nnx.Module   the pre-training model, without the parts fine-tuning never
                                   reads (a BERT's MLM and NSP heads are dropped after they are
                                   built, so they are neither trained, decayed nor saved; their
                                   init is dead code under jit)
  features(module, input_ids, segment_ids, mask, dropout_key) ->
      {"tokens": [B, T, D], "pooled": [B, D], ...more keys the task may read}
  width(cfg) -> D
BERT, RoBERTa and ALBERT (models/bert.py) give "tokens" = the last layer and "pooled" = the
tanh pooler over [CLS] when the model has one (BERT, ALBERT), else the [CLS] / <s> state
(RoBERTa; HF's RobertaClassificationHead adds a dense + tanh of its own, which this head
does not).

GPT (GPT-1's fine-tuning recipe, Radford et al. 2018, section 3.3), model.backbone a
models/gpt.py config: "tokens" = the final hidden states (after the final layer norm where the
variant has one: what the LM head reads), "pooled" = the state of each row's LAST REAL token
(mask.sum(1) - 1: the extract token the data side appends; causal attention makes it
independent of any padding after it), "lm_logits" [B, T, V] float32 from the (tied) output
layer, for the auxiliary LM loss a task may add (glue: config.task.lm_loss_weight). Unused
outputs cost nothing under jit: XLA drops the [B, T, V] logits when the loss does not read
them. GPT-1's layout for a pair is start + A + delimiter + B + extract (a sentence: start + A
+ extract); a pre-trained GPT's vocabulary has no such tokens (a char or word vocabulary none
at all, GPT-2's byte-level BPE only <|endoftext|>), so, as GPT-1 did, they are new embeddings:
ids V, V + 1, V + 2 (GPT_SPECIALS; V = the backbone's vocab_size) index a [3, D] table under
"adapter/" that starts fresh (init_from reports it new) while every pre-trained tensor,
the token table included, keeps its shape and loads. segment_ids are ignored.

ELMo, model.backbone a models/elmo.py config: input_ids are char ids int32[B, T, max_chars] of
whitespace words (data/chars.py; the glue task builds them), "tokens" = a ScalarMix
(layers/scalar_mix.py, Peters et al. 2018 eq. 1) of the biLM's L + 1 layers, [B, T, 2P],
"pooled" = the masked mean (model.elmo_pool="mean") or max ("max") of the mixed vectors over
the real words. The mix is a fine-tuning parameter, owned by the adapter: its weights and
gamma sit under "adapter/mix/", outside "backbone/", so init_from reports them new. The biLM's
softmax (pre-training only) is dropped, as BERT's heads are. model.freeze_backbone=True (the
paper's setting) stops gradients at the biLM's layers; pair it with
optimizer.param_groups=(param_group("^backbone/", frozen=True),) so that weight decay does not
move the frozen weights either (the glue task checks this; configs/glue.py:elmo sets both).
The biLM runs without its own dropout here (head_dropout regularises the classifier). The
ELMo paper's SST-5 model was a biattentive classification network (McCann et al. 2017) over
the ELMo vectors; that model is out of scope: this adapter is the simple pooled classifier.

An adapter is a Backbone entry: build, features, width, and an optional `extra(model_cfg,
backbone_cfg, rngs)` whose module FineTuned keeps as `self.adapter` and hands to
`features(..., adapter=)`.

A small random encoder (the from-scratch baseline) is just a backbone without init_from: the
"scratch" variant of configs/glue.py builds the same BERT shape at random.
model.backbone is checked field by field against the defaults of model.backbone.name's family
(config_schema's unknown-key check, and FineTuned itself).
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm_jax import ops
from llm_jax.data.chars import PAD
from llm_jax.layers.heads import (
    ClassificationHead,
    IntentSlotHead,
    SpanHead,
    TagTransitions,
    TokenHead,
)
from llm_jax.layers.params import add_f32, config_dtype, dense, normal, param
from llm_jax.layers.scalar_mix import ScalarMix
from llm_jax.models import bert, elmo, gpt

HEADS = ("classification", "token", "span", "intent_slot")
ELMO_POOLS = ("mean", "max")
# GPT-1's input tokens, new embeddings with ids V + index (V: the backbone's vocab_size)
GPT_SPECIALS = ("start", "delimiter", "extract")


def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field FineTuned reads; model.backbone is the backbone model's own."""
    return ml_collections.ConfigDict(dict(
        name="finetune",
        backbone=bert.default_config(),  # its name picks the adapter (BACKBONES)
        head="classification",  # "classification" | "token" | "span" | "intent_slot"
        num_labels=2,    # classes (1: regression) | tags per token | intent_slot: slot tags
        num_intents=0,   # intent_slot: intent classes
        head_dropout=0.1,  # before the head's dense layer (HF: classifier / hidden dropout)
        head_init_std=0.02,
        # token, intent_slot: a linear-chain CRF over the words' tags (ops/crf.py; JointBERT's
        # --use_crf): the loss is its sentence NLL and prediction its Viterbi path
        crf=False,
        vocab_size=0,    # 0: the tokenizer's; fills model.backbone.vocab_size when that is 0
        freeze_backbone=False,  # bert, elmo: no gradient reaches the backbone (stop_gradient)
        elmo_pool="mean",  # elmo: "mean" | "max" over the real words of the mixed layers
    ))


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How FineTuned builds and reads one model family (see the module docstring)."""
    build: Callable
    features: Callable
    width: Callable
    extra: Callable | None = None  # (model_cfg, backbone_cfg, rngs) -> the adapter's module
    defaults: Callable | None = None  # the family's default_config (field check)
    freezable: bool = True  # model.freeze_backbone is supported


# --- BERT, RoBERTa, ALBERT ------------------------------------------------------------------

BERT_PRETRAINING_HEADS = ("mlm_dense", "mlm_ln", "mlm_bias", "sentence")


def build_bert(cfg, rngs):
    model = bert.Bert(cfg, rngs=rngs)
    for name in BERT_PRETRAINING_HEADS:  # AttributeError if bert.py renames one: not silent
        delattr(model, name)
    return model


def bert_features(model, input_ids_BT, segment_ids_BT, mask_BT, dropout_key, adapter=None):
    h_BTD = model.encode(input_ids_BT, segment_ids_BT, mask_BT, dropout_key=dropout_key)
    pooled_BD = model.pool(h_BTD) if model.pooler is not None else h_BTD[:, 0]
    return {"tokens": h_BTD, "pooled": pooled_BD}


# --- GPT ------------------------------------------------------------------------------------


class GPTSpecials(nnx.Module):
    """The embeddings of GPT_SPECIALS, [3, D]: new parameters, under "adapter/"."""

    def __init__(self, dim, *, init_std, param_dtype, rngs):
        self.table = param(normal(init_std), rngs.params(), (len(GPT_SPECIALS), dim),
                           (None, "embed"), param_dtype)


def build_gpt_specials(model_cfg, b, rngs):
    return GPTSpecials(b.embed_dim, init_std=b.init_std,
                       param_dtype=config_dtype("backbone.param_dtype", b.param_dtype), rngs=rngs)


def last_real(h_BTD, mask_BT):
    """h at each row's last real position (mask.sum(1) - 1; the last position without mask)."""
    B, T = h_BTD.shape[:2]
    last_B = (jnp.full((B,), T - 1, jnp.int32) if mask_BT is None
              else jnp.maximum(jnp.sum(mask_BT, axis=1).astype(jnp.int32) - 1, 0))
    return jnp.take_along_axis(h_BTD, last_B[:, None, None], axis=1)[:, 0]


def gpt_features(model, input_ids_BT, segment_ids_BT, mask_BT, dropout_key, adapter=None):
    """GPT.forward (no cache) with ids >= V looked up in the adapter's special table."""
    del segment_ids_BT  # GPT has no segment embedding: the delimiter separates a pair
    T = input_ids_BT.shape[1]
    if T > model.max_len:
        raise ValueError(f"sequence length {T} exceeds model.backbone.max_len={model.max_len}")
    V = model.embed.table.shape[0]
    k_emb = k_stack = None
    if dropout_key is not None:
        k_emb, k_stack = jax.random.split(dropout_key)
    special_BT = input_ids_BT >= V
    x_BTD = model.embed(jnp.where(special_BT, 0, input_ids_BT))
    if adapter is not None:
        s_BTD = jnp.take(adapter.table[...], jnp.clip(input_ids_BT - V, 0, len(GPT_SPECIALS) - 1),
                         axis=0).astype(x_BTD.dtype)
        x_BTD = jnp.where(special_BT[..., None], s_BTD, x_BTD)
    x_BTD = add_f32(x_BTD, model.positions(jnp.arange(T)))
    x_BTD = ops.dropout(x_BTD, model.dropout_rate, k_emb)
    sparse = {}
    if model.sparse_layers is not None:
        sparse = dict(sparse_layers=model.sparse_layers,
                      sparse_mask=ops.local_mask(T, T, window=model.local_window, q_offset=0))
    h_BTD, _ = model.stack(x_BTD, dropout_key=k_stack, cache=None, **sparse)
    if model.final_ln is not None:
        h_BTD = model.final_ln(h_BTD)
    if model.head is None:
        logits_BTV = model.embed.attend(h_BTD)
    else:
        logits_BTV = dense(h_BTD, model.head[...].astype(model.dtype))
    return {"tokens": h_BTD, "pooled": last_real(h_BTD, mask_BT),
            "lm_logits": logits_BTV.astype(jnp.float32)}


# --- ELMo -----------------------------------------------------------------------------------

ELMO_PRETRAINING_PARTS = ("softmax_kernel", "softmax_bias")


def build_elmo(cfg, rngs):
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    cfg.vocab_size = max(int(cfg.vocab_size), 1)  # the softmax it sizes is dropped below
    model = elmo.ELMoBiLM(cfg, rngs=rngs)
    for name in ELMO_PRETRAINING_PARTS:
        delattr(model, name)
    # CharCNN keeps its filters as a list: a tuple keeps the graphdef hashable, as a static
    # argument of jax.jit (the glue task's prediction) needs it to be
    model.token_encoder.filters = tuple(model.token_encoder.filters)
    return model


class ELMoMix(nnx.Module):
    """ELMo's task-specific part: the scalar mix of the biLM's layers, and how to pool it."""

    def __init__(self, num_layers, pool, *, rngs):
        if pool not in ELMO_POOLS:
            raise ValueError(f"model.elmo_pool={pool!r}: expected one of {ELMO_POOLS}")
        self.pool = pool
        self.mix = ScalarMix(num_layers, rngs=rngs)


def build_elmo_mix(model_cfg, b, rngs):
    return ELMoMix(b.num_layers + 1, model_cfg.get("elmo_pool", "mean"), rngs=rngs)


def elmo_features(model, chars_BTC, segment_ids_BT, mask_BT, dropout_key, adapter=None,
                  freeze=False):
    del segment_ids_BT, dropout_key  # one word sequence; the biLM runs without its dropout
    if chars_BTC.ndim != 3:
        raise ValueError(f"an ELMo backbone reads char ids [B, T, max_chars], got shape "
                         f"{chars_BTC.shape}")
    layers_LBTD = model.layers(chars_BTC)  # padding words are zero
    if freeze:
        layers_LBTD = jax.lax.stop_gradient(layers_LBTD)
    if mask_BT is None:
        mask_BT = chars_BTC[..., 0] != PAD
    h_BTD = adapter.mix(layers_LBTD, mask_BT)
    m_BT1 = mask_BT[..., None]
    if adapter.pool == "mean":
        n_B1 = jnp.maximum(jnp.sum(m_BT1, axis=1), 1).astype(jnp.float32)
        pooled_BD = jnp.sum(jnp.where(m_BT1, h_BTD, 0.0), axis=1) / n_B1
    else:  # a row without real words pools to 0, not -inf
        pooled_BD = jnp.max(jnp.where(m_BT1, h_BTD, -jnp.inf), axis=1)
        pooled_BD = jnp.where(jnp.any(mask_BT, axis=1)[:, None], pooled_BD, 0.0)
    return {"tokens": h_BTD, "pooled": pooled_BD}


BACKBONES = {
    "bert": Backbone(build_bert, bert_features, lambda cfg: cfg.embed_dim,
                     defaults=bert.default_config),
    "gpt": Backbone(lambda cfg, rngs: gpt.GPT(cfg, rngs=rngs), gpt_features,
                    lambda cfg: cfg.embed_dim, extra=build_gpt_specials,
                    defaults=gpt.default_config, freezable=False),
    "elmo": Backbone(build_elmo, elmo_features, lambda cfg: 2 * cfg.proj_dim, extra=build_elmo_mix,
                     defaults=elmo.default_config),
}


def backbone_config(cfg) -> ml_collections.ConfigDict:
    """model.backbone with its vocab_size filled from model.vocab_size when 0 (a copy)."""
    b = ml_collections.ConfigDict(cfg.backbone.to_dict())
    vocab = int(cfg.get("vocab_size", 0))
    if not b.get("vocab_size"):
        b.vocab_size = vocab
    elif vocab > b.vocab_size:
        raise ValueError(f"model.backbone.vocab_size={b.vocab_size} is smaller than the "
                         f"tokenizer's vocabulary ({vocab})")
    return b


def check_backbone_fields(name, backbone) -> None:
    """A one-line error naming the fields of model.backbone that `name`'s family lacks."""
    defaults = BACKBONES[name].defaults
    if defaults is None:
        return
    known = defaults().keys()
    extra = sorted(k for k in backbone.keys() if k not in known)
    if extra:
        raise ValueError(f"model.backbone.name={name!r}: model.backbone."
                         f"{', model.backbone.'.join(extra)} are not fields of models/{name}.py's "
                         "config (was model.backbone built for another family?)")


class FineTuned(nnx.Module):
    """backbone + head; `cfg` is a config's `model` ConfigDict (default_config())."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        name = cfg.backbone.get("name", "")
        if name not in BACKBONES:
            raise ValueError(f"model.backbone.name={name!r}: fine-tuning reads one of "
                             f"{sorted(BACKBONES)}")
        check_backbone_fields(name, cfg.backbone)
        if cfg.head not in HEADS:
            raise ValueError(f"model.head={cfg.head!r}: expected one of {HEADS}")
        if cfg.head != "span" and cfg.num_labels < 1:
            raise ValueError(f"model.num_labels={cfg.num_labels} must be >= 1 for "
                             f"model.head={cfg.head!r}")
        if cfg.head == "intent_slot" and cfg.num_intents < 1:
            raise ValueError(f"model.num_intents={cfg.num_intents} must be >= 1 for "
                             "model.head='intent_slot'")
        adapter = BACKBONES[name]
        # .get: configs saved in workdirs before these fields existed still load.
        self.freeze = bool(cfg.get("freeze_backbone", False))
        if self.freeze and not adapter.freezable:
            raise ValueError(f"model.freeze_backbone=True is not supported for "
                             f"model.backbone.name={name!r} (its adapter's parameters feed the "
                             "backbone): freeze it with optimizer.param_groups instead")
        b = backbone_config(cfg)
        self.kind, self.head_kind = name, cfg.head
        self.backbone = adapter.build(b, rngs)
        self.adapter = adapter.extra(cfg, b, rngs) if adapter.extra is not None else None
        param_dtype = config_dtype("backbone.param_dtype", b.get("param_dtype", "float32"))
        d = adapter.width(b)
        kw = dict(dropout_rate=cfg.head_dropout, init_std=cfg.head_init_std,
                  param_dtype=param_dtype, rngs=rngs)
        if cfg.head == "classification":
            self.head = ClassificationHead(d, cfg.num_labels, **kw)
        elif cfg.head == "token":
            self.head = TokenHead(d, cfg.num_labels, **kw)
        elif cfg.head == "span":
            self.head = SpanHead(d, **kw)
        else:
            self.head = IntentSlotHead(d, cfg.num_intents, cfg.num_labels, **kw)
        crf = bool(cfg.get("crf", False))
        if crf and cfg.head not in ("token", "intent_slot"):
            raise ValueError(f"model.crf=True needs a tagging head ('token' or 'intent_slot'), "
                             f"not model.head={cfg.head!r}")
        self.crf = TagTransitions(cfg.num_labels, param_dtype=param_dtype, rngs=rngs) if crf else None

    def features(self, input_ids_BT, segment_ids_BT=None, mask_BT=None, *, dropout_key=None):
        """The backbone's {"tokens": [B, T, D], "pooled": [B, D], ...}."""
        fn = BACKBONES[self.kind].features
        if self.kind == "elmo":
            return fn(self.backbone, input_ids_BT, segment_ids_BT, mask_BT, dropout_key,
                      adapter=self.adapter, freeze=self.freeze)
        feats = fn(self.backbone, input_ids_BT, segment_ids_BT, mask_BT, dropout_key,
                   adapter=self.adapter)
        if self.freeze:
            feats = jax.tree.map(jax.lax.stop_gradient, feats)
        return feats

    def __call__(self, input_ids_BT, segment_ids_BT=None, mask_BT=None, *, dropout_key=None):
        """float32 head outputs: classification / token {"logits": [B, C] / [B, T, C]}; span
        {"start_logits", "end_logits": [B, T]}; intent_slot {"intent_logits": [B, I],
        "slot_logits": [B, T, C]}; plus any extra keys of the backbone's features."""
        k_body = k_head = None
        if dropout_key is not None:
            k_body, k_head = jax.random.split(dropout_key)
        feats = self.features(input_ids_BT, segment_ids_BT, mask_BT, dropout_key=k_body)
        out = {k: v for k, v in feats.items() if k not in ("tokens", "pooled")}
        if self.head_kind == "classification":
            out["logits"] = self.head(feats["pooled"], dropout_key=k_head)
        elif self.head_kind == "token":
            out["logits"] = self.head(feats["tokens"], dropout_key=k_head)
        elif self.head_kind == "span":
            out["start_logits"], out["end_logits"] = self.head(feats["tokens"], dropout_key=k_head)
        else:
            out["intent_logits"], out["slot_logits"] = self.head(
                feats["pooled"], feats["tokens"], dropout_key=k_head)
        return out

