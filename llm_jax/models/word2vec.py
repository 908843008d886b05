"""word2vec: an input embedding table (the word vectors) and an output table.

The output table holds one row per word for negative sampling (gensim's syn1neg) or one row per
inner node of the Huffman tree for hierarchical softmax (syn1). Initialised as the reference tool
does: inputs uniform in [-0.5/dim, 0.5/dim), outputs zero.
"""

import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm_jax.layers.params import param, uniform


def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field word2vec reads."""
    return ml_collections.ConfigDict(dict(
        name="word2vec",
        vocab_size=0,    # 0: the vocabulary built from the corpus
        output_rows=0,   # 0: vocab_size (negative sampling); the task sets V-1 for hierarchical softmax
        dim=100,
        param_dtype="float32",
    ))



class Word2Vec(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.vocab_size < 1:
            raise ValueError(f"model.vocab_size={cfg.vocab_size} must be >= 1 (set from the vocabulary)")
        if cfg.dim < 1:
            raise ValueError(f"model.dim={cfg.dim} must be >= 1")
        if cfg.param_dtype != "float32":
            # Plain SGD adds updates of ~alpha * 1e-3 to rows of ~1e-2: bfloat16 would lose them.
            raise ValueError(f"model.param_dtype={cfg.param_dtype!r}: word2vec supports 'float32'")
        rows = cfg.output_rows or cfg.vocab_size
        self.input = param(uniform(0.5 / cfg.dim), rngs.params(), (cfg.vocab_size, cfg.dim),
                           ("vocab", "embed"))
        self.output = param(nnx.initializers.zeros, rngs.params(), (rows, cfg.dim), ("vocab", "embed"))

    def __call__(self, word_ids):
        """The word vectors of `word_ids`."""
        return jnp.take(self.input[...], word_ids, axis=0)
