"""Fine-tuning heads: dropout and one dense layer over a backbone's features.

  ClassificationHead  pooled [B, D] -> [B, num_labels]; num_labels=1 is a regression (STS-B)
  TokenHead           tokens [B, T, D] -> [B, T, num_labels] (tagging: NER, slots)
  SpanHead            tokens [B, T, D] -> start and end logits [B, T] each (extractive QA)
  IntentSlotHead      pooled and tokens -> intent [B, num_intents] and slots [B, T, num_labels]
  TagTransitions      a linear-chain CRF's start, end and tag-to-tag scores (ops/crf.py), for
                      model.crf=True on the token and intent_slot heads

They are the heads of Hugging Face's BertFor{SequenceClassification, TokenClassification,
QuestionAnswering} and of joint BERT (Chen et al., 2019): a dense layer initialised N(0,
init_std) with a zero bias, after dropout (HF's question-answering head has none: pass
dropout_rate=0.0). Which features they read comes from models/finetune.py's backbone adapters.

Heads compute in float32 whatever the backbone's activations (`dtype` default): their cost is
D x num_labels per row, and a regression score or a logit rounded to bfloat16 (8 significant
bits) would cost accuracy for nothing. The class dimension has no logical axis name (None):
a handful of labels is never split over devices.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.dense import Dense
from llm_jax.layers.params import param, zeros


class _Projection(nnx.Module):
    """dropout(x) @ kernel + bias over the last axis, float32 out."""

    def __init__(self, in_dim, out_dim, *, dropout_rate, init_std, dtype, param_dtype, rngs):
        if out_dim < 1:
            raise ValueError(f"a head needs at least one output, got {out_dim}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"head dropout rate must be in [0, 1), got {dropout_rate!r}")
        self.dropout_rate = dropout_rate
        self.dense = Dense(in_dim, out_dim, axes=("embed", None), init_std=init_std, dtype=dtype,
                           param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x, dropout_key=None):
        x = ops.dropout(x.astype(self.dense.dtype), self.dropout_rate, dropout_key)
        return self.dense(x).astype(jnp.float32)


class ClassificationHead(nnx.Module):
    """Class logits [B, num_labels] of a pooled vector [B, D]; num_labels=1: a score [B, 1]."""

    def __init__(self, in_dim, num_labels, *, dropout_rate=0.1, init_std=0.02,
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        self.num_labels = num_labels
        self.out = _Projection(in_dim, num_labels, dropout_rate=dropout_rate, init_std=init_std,
                               dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, pooled_BD, *, dropout_key=None):
        return self.out(pooled_BD, dropout_key)


class TokenHead(nnx.Module):
    """Per-token logits [B, T, num_labels] of token states [B, T, D]."""

    def __init__(self, in_dim, num_labels, *, dropout_rate=0.1, init_std=0.02,
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        self.num_labels = num_labels
        self.out = _Projection(in_dim, num_labels, dropout_rate=dropout_rate, init_std=init_std,
                               dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, tokens_BTD, *, dropout_key=None):
        return self.out(tokens_BTD, dropout_key)


class SpanHead(nnx.Module):
    """(start_logits, end_logits), [B, T] each, of token states [B, T, D]: one dense D -> 2,
    as HF's qa_outputs (column 0 the start, 1 the end)."""

    def __init__(self, in_dim, *, dropout_rate=0.0, init_std=0.02, dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs):
        self.out = _Projection(in_dim, 2, dropout_rate=dropout_rate, init_std=init_std,
                               dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, tokens_BTD, *, dropout_key=None):
        logits_BT2 = self.out(tokens_BTD, dropout_key)
        return logits_BT2[..., 0], logits_BT2[..., 1]


class IntentSlotHead(nnx.Module):
    """Joint intent detection and slot filling: intent logits [B, num_intents] of the pooled
    vector and slot logits [B, T, num_slots] of the token states, with independent dropout."""

    def __init__(self, in_dim, num_intents, num_slots, *, dropout_rate=0.1, init_std=0.02,
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        kw = dict(dropout_rate=dropout_rate, init_std=init_std, dtype=dtype,
                  param_dtype=param_dtype, rngs=rngs)
        self.intent = ClassificationHead(in_dim, num_intents, **kw)
        self.slots = TokenHead(in_dim, num_slots, **kw)

    def __call__(self, pooled_BD, tokens_BTD, *, dropout_key=None):
        k_intent = k_slots = None
        if dropout_key is not None:
            k_intent, k_slots = jax.random.split(dropout_key)
        return (self.intent(pooled_BD, dropout_key=k_intent),
                self.slots(tokens_BTD, dropout_key=k_slots))


class TagTransitions(nnx.Module):
    """The CRF parameters over num_tags tags, zero at the start (pytorch-crf draws them from
    U(-0.1, 0.1); zeros make the untrained CRF decode exactly as the argmax does)."""

    def __init__(self, num_tags, *, param_dtype=jnp.float32, rngs):
        if num_tags < 1:
            raise ValueError(f"a CRF needs at least one tag, got {num_tags}")
        key = rngs.params()
        self.transitions = param(zeros, key, (num_tags, num_tags), (None, None), param_dtype)
        self.start = param(zeros, key, (num_tags,), (None,), param_dtype)
        self.end = param(zeros, key, (num_tags,), (None,), param_dtype)

    def arrays(self):
        """(transitions [C, C], start [C], end [C]) for ops/crf.py."""
        return self.transitions[...], self.start[...], self.end[...]
