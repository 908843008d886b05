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

Adding a family later is one BACKBONES entry (ELMo's also one optional Backbone field):
  GPT (GPT-1's recipe): "pooled" = the state of each row's last real token (the extract token
    the data side appends; pairs are joined by a delimiter token by the tokenizer, which is
    why segment_ids may be None), "tokens" = every state, plus "lm_logits" [B, T, V] from the
    tied output layer for the auxiliary LM loss that the task adds with weight 0.5 when its
    switch is on. __call__ passes such extra keys through to its output.
  ELMo: the biLM's layers mixed by a trainable ScalarMix (layers/scalar_mix.py). The mix's
    weights are fine-tuning parameters, not pre-trained ones: add an optional `extra(cfg, rngs)`
    builder to Backbone whose module FineTuned keeps as `self.adapter` and hands to `features`
    (so the mix lives under "adapter/", outside "backbone/", and init_from reports it as new),
    and pool by a masked mean or max over tokens.
  A small random encoder (the from-scratch baseline) is just a backbone without init_from: the
    "scratch" variant of configs/glue.py builds the same BERT shape at random.
model.backbone is checked field by field against bert.default_config() (config_schema's
unknown-key check reads model defaults by name); another family's adapter needs that check to
read the defaults of model.backbone.name instead.
"""

import dataclasses
from typing import Callable

import jax
import ml_collections
from flax import nnx

from llm_jax.layers.heads import ClassificationHead, IntentSlotHead, SpanHead, TokenHead
from llm_jax.layers.params import config_dtype
from llm_jax.models import bert

HEADS = ("classification", "token", "span", "intent_slot")


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
        vocab_size=0,    # 0: the tokenizer's; fills model.backbone.vocab_size when that is 0
    ))


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How FineTuned builds and reads one model family (see the module docstring)."""
    build: Callable
    features: Callable
    width: Callable


BERT_PRETRAINING_HEADS = ("mlm_dense", "mlm_ln", "mlm_bias", "sentence")


def build_bert(cfg, rngs):
    model = bert.Bert(cfg, rngs=rngs)
    for name in BERT_PRETRAINING_HEADS:  # AttributeError if bert.py renames one: not silent
        delattr(model, name)
    return model


def bert_features(model, input_ids_BT, segment_ids_BT, mask_BT, dropout_key):
    h_BTD = model.encode(input_ids_BT, segment_ids_BT, mask_BT, dropout_key=dropout_key)
    pooled_BD = model.pool(h_BTD) if model.pooler is not None else h_BTD[:, 0]
    return {"tokens": h_BTD, "pooled": pooled_BD}


BACKBONES = {"bert": Backbone(build_bert, bert_features, lambda cfg: cfg.embed_dim)}


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


class FineTuned(nnx.Module):
    """backbone + head; `cfg` is a config's `model` ConfigDict (default_config())."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        name = cfg.backbone.get("name", "")
        if name not in BACKBONES:
            raise ValueError(f"model.backbone.name={name!r}: fine-tuning reads one of "
                             f"{sorted(BACKBONES)}")
        if cfg.head not in HEADS:
            raise ValueError(f"model.head={cfg.head!r}: expected one of {HEADS}")
        if cfg.head != "span" and cfg.num_labels < 1:
            raise ValueError(f"model.num_labels={cfg.num_labels} must be >= 1 for "
                             f"model.head={cfg.head!r}")
        if cfg.head == "intent_slot" and cfg.num_intents < 1:
            raise ValueError(f"model.num_intents={cfg.num_intents} must be >= 1 for "
                             "model.head='intent_slot'")
        b = backbone_config(cfg)
        self.kind, self.head_kind = name, cfg.head
        adapter = BACKBONES[name]
        self.backbone = adapter.build(b, rngs)
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

    def features(self, input_ids_BT, segment_ids_BT=None, mask_BT=None, *, dropout_key=None):
        """The backbone's {"tokens": [B, T, D], "pooled": [B, D], ...}."""
        return BACKBONES[self.kind].features(self.backbone, input_ids_BT, segment_ids_BT,
                                             mask_BT, dropout_key)

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

