"""configs/gpt2.py builds the published GPT-2 sizes (shapes only: nothing is allocated)."""

import jax
import pytest
from flax import nnx

from llm_jax.models import build_model
from tests.conftest import load_config


@pytest.mark.parametrize("size,millions", [("124m", 124.4), ("350m", 354.8), ("774m", 773.0),
                                           ("1.5b", 1557.6)])
def test_parameter_counts(size, millions):
    cfg = load_config("gpt2", size).model
    model = nnx.eval_shape(lambda: build_model(cfg, rngs=nnx.Rngs(0)))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model)))
    # GPT-2's counts with the 50,304-row (padded) tied embedding and 1,024 positions
    assert count / 1e6 == pytest.approx(millions, rel=0.01)


def test_unknown_size_is_named():
    with pytest.raises(ValueError, match="gpt2.py:2b"):
        load_config("gpt2", "2b")


def test_cpu_variant_is_gpt2_recipe_at_a_small_shape():
    cfg = load_config("gpt2", "cpu,gpt2_bpe")
    assert (cfg.model.num_layers, cfg.model.embed_dim, cfg.model.max_len) == (4, 128, 256)
    assert cfg.data.tokenizer == "gpt2_bpe" and cfg.model.dtype == "float32"
    model = nnx.eval_shape(lambda: build_model(cfg.model, rngs=nnx.Rngs(0)))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model)))
    # 50,304 x 128 tied embedding + 256 x 128 positions + 4 blocks of 12 d^2 + biases and norms
    assert count == 50304 * 128 + 256 * 128 + 4 * (12 * 128**2 + 13 * 128) + 2 * 128
