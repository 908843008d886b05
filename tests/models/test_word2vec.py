"""The word2vec model: table shapes, the reference initialisation, clear config errors."""

import numpy as np
import pytest
from flax import nnx

from llm_jax.models import build_model, default_model_config


def _cfg(**kw):
    c = default_model_config("word2vec")
    c.update({"vocab_size": 50, "dim": 16, **kw})
    return c


def test_tables_and_initialisation():
    m = build_model(_cfg(), rngs=nnx.Rngs(params=0))
    w_in, w_out = np.asarray(m.input[...]), np.asarray(m.output[...])
    assert w_in.shape == (50, 16) and w_out.shape == (50, 16)
    assert np.abs(w_in).max() <= 0.5 / 16 and w_in.std() > 0.1 / 16  # uniform(-0.5/d, 0.5/d)
    assert not w_out.any()
    np.testing.assert_array_equal(m(np.array([3, 7])), w_in[[3, 7]])
    hs = build_model(_cfg(output_rows=49), rngs=nnx.Rngs(params=0))
    assert hs.output[...].shape == (49, 16)  # one row per inner node of the Huffman tree


def test_same_seed_same_tables():
    a = build_model(_cfg(), rngs=nnx.Rngs(params=3)).input[...]
    b = build_model(_cfg(), rngs=nnx.Rngs(params=3)).input[...]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("field,value,match", [("vocab_size", 0, "model.vocab_size"),
                                               ("dim", 0, "model.dim"),
                                               ("param_dtype", "bfloat16", "model.param_dtype")])
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        build_model(_cfg(**{field: value}), rngs=nnx.Rngs(params=0))
