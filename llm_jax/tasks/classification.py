"""Sentence classification over token vectors, with a choice of what feeds the tokens.

One classifier, four inputs (the ELMo paper's comparison, on a small scale):
  "ids":        token ids -> a trainable embedding table (random init, or a given init);
  "vectors":    fixed per-token vectors computed outside (e.g. frozen word2vec), [B, T, D];
  "layers":     a frozen biLM's stacked layers [B, L, T, D], combined by a trained ScalarMix;
  "ids+layers": the paper's recipe: the trainable embedding concatenated with the ScalarMix
                of the biLM layers (both of width in_dim), so the token vector is 2 * in_dim.
Then: dense + ReLU per token, mean- and max-pooling over the real tokens, a hidden layer and
the class logits. A batch is {"ids" and/or "vectors" | "layers", "mask": bool[B, T], "labels": int32[B]}.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import dense, normal, param, zeros
from llm_jax.layers.scalar_mix import ScalarMix

INPUT_KINDS = ("ids", "vectors", "layers", "ids+layers")


class SentenceClassifier(nnx.Module):
    def __init__(self, input_kind, in_dim, *, num_classes=2, hidden=128, dropout_rate=0.2,
                 vocab_size=0, num_layers=0, embed_init=None, rngs):
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind={input_kind!r}: expected one of {INPUT_KINDS}")
        self.input_kind, self.dropout_rate = input_kind, dropout_rate
        embed = mix = None  # each assigned once: nnx fixes an attribute's kind on first assignment
        if "ids" in input_kind:
            if vocab_size < 1:
                raise ValueError(f"input_kind={input_kind!r} needs vocab_size >= 1")
            init = (normal(in_dim ** -0.5) if embed_init is None
                    else lambda *_: jnp.asarray(embed_init, jnp.float32))
            embed = param(init, rngs.params(), (vocab_size, in_dim), ("vocab", "embed"))
        if "layers" in input_kind:
            mix = ScalarMix(num_layers)
        self.embed, self.mix = embed, mix
        k = rngs.params
        token_dim = 2 * in_dim if input_kind == "ids+layers" else in_dim
        self.token_proj = param(normal(token_dim ** -0.5), k(), (token_dim, hidden), ("embed", "mlp"))
        self.token_bias = param(zeros, None, (hidden,), ("mlp",))
        self.hidden = param(normal((2 * hidden) ** -0.5), k(), (2 * hidden, hidden), ("mlp", "embed"))
        self.hidden_bias = param(zeros, None, (hidden,), ("embed",))
        self.out = param(normal(hidden ** -0.5), k(), (hidden, num_classes), ("embed", "vocab"))
        self.out_bias = param(zeros, None, (num_classes,), ("vocab",))

    def token_vectors(self, batch):
        if self.input_kind == "ids":
            return jnp.take(self.embed[...], batch["ids"], axis=0)
        if self.input_kind == "vectors":
            return batch["vectors"].astype(jnp.float32)
        mixed = self.mix(jnp.swapaxes(batch["layers"], 0, 1), batch["mask"])  # [L, B, T, D]
        if self.input_kind == "layers":
            return mixed
        return jnp.concatenate([jnp.take(self.embed[...], batch["ids"], axis=0), mixed], -1)

    def __call__(self, batch, *, dropout_key=None):
        keys = jax.random.split(dropout_key, 2) if dropout_key is not None else (None, None)
        mask = batch["mask"]
        x = ops.dropout(self.token_vectors(batch), self.dropout_rate, keys[0])
        h = jax.nn.relu(dense(x, self.token_proj[...]) + self.token_bias[...])
        m = mask[..., None].astype(h.dtype)
        n = jnp.maximum(m.sum(1), 1.0)  # an empty sentence pools to zeros, not NaN
        mean = (h * m).sum(1) / n
        mx = jnp.where(m > 0, h, -jnp.inf).max(1)
        mx = jnp.where(jnp.isfinite(mx), mx, 0.0)
        pooled = ops.dropout(jnp.concatenate([mean, mx], -1), self.dropout_rate, keys[1])
        z = jax.nn.relu(pooled @ self.hidden[...] + self.hidden_bias[...])
        return z @ self.out[...] + self.out_bias[...]


def classification_loss(model, batch, dropout_key=None):
    """(mean cross-entropy, {"loss", "accuracy"}) of the class logits."""
    logits = model(batch, dropout_key=dropout_key)
    loss, nll = ops.softmax_cross_entropy(logits, batch["labels"])
    acc = jnp.mean((jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32))
    return loss, {"loss": nll, "accuracy": acc}
