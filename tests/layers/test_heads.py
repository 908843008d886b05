"""Fine-tuning heads: shapes, float32 logits from bfloat16 features, logical axes, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.layers.heads import ClassificationHead, IntentSlotHead, SpanHead, TokenHead

B, T, D = 3, 5, 8


def features(dtype=jnp.bfloat16):
    k1, k2 = jax.random.split(jax.random.key(0))
    return (jax.random.normal(k1, (B, D)).astype(dtype),
            jax.random.normal(k2, (B, T, D)).astype(dtype))


def axes(module):
    spec = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(module)))
    return jax.tree.map(tuple, spec, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))


def test_classification_and_regression_heads():
    pooled, _ = features()
    for num_labels in (3, 1):  # 1: a regression score
        head = ClassificationHead(D, num_labels, rngs=nnx.Rngs(0))
        logits = head(pooled)
        assert logits.shape == (B, num_labels) and logits.dtype == jnp.float32
    kernel = head.out.dense.kernel[...]
    np.testing.assert_allclose(np.asarray(logits), np.asarray(pooled, np.float32) @ np.asarray(kernel),
                               rtol=1e-5, atol=1e-6)  # bias starts at zero
    assert axes(head)["out"]["dense"] == {"kernel": ("embed", None), "bias": (None,)}


def test_token_span_and_intent_slot_heads():
    pooled, tokens = features()
    logits = TokenHead(D, 4, rngs=nnx.Rngs(0))(tokens)
    assert logits.shape == (B, T, 4) and logits.dtype == jnp.float32
    span = SpanHead(D, rngs=nnx.Rngs(1))
    start, end = span(tokens)
    assert start.shape == end.shape == (B, T) and start.dtype == jnp.float32
    both = np.asarray(tokens, np.float32) @ np.asarray(span.out.dense.kernel[...])
    np.testing.assert_allclose(np.asarray(start), both[..., 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(end), both[..., 1], rtol=1e-5, atol=1e-6)
    intent, slots = IntentSlotHead(D, 6, 4, rngs=nnx.Rngs(2))(pooled, tokens)
    assert intent.shape == (B, 6) and slots.shape == (B, T, 4)
    assert intent.dtype == slots.dtype == jnp.float32


def test_dropout_only_with_a_key_and_bad_settings():
    pooled, _ = features(jnp.float32)
    head = ClassificationHead(D, 2, dropout_rate=0.5, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(head(pooled), head(pooled))
    assert not np.allclose(head(pooled), head(pooled, dropout_key=jax.random.key(1)))
    with pytest.raises(ValueError, match="at least one output"):
        TokenHead(D, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dropout rate"):
        ClassificationHead(D, 2, dropout_rate=1.0, rngs=nnx.Rngs(0))
