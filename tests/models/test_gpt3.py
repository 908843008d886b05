"""GPT-3: the Table 2.1 sizes (shapes only: nothing is allocated), and GPT's alternating
dense / locally banded attention, with and without a KV cache."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax import ops
from llm_jax.models import build_model, default_model_config
from llm_jax.tasks.lm_decoding import generate_tokens
from llm_jax.training.config_schema import check_config
from tests.conftest import load_config


def count(cfg):
    model = nnx.eval_shape(lambda: build_model(cfg, rngs=nnx.Rngs(0)))
    return sum(x.size for x in jax.tree.leaves(nnx.state(model)))


# Brown et al. 2020, Table 2.1: n_params, n_layers, d_model, n_heads, d_head, batch, lr
TABLE = {"125m": (125e6, 12, 768, 12, 64, 0.5, 6.0e-4),
         "350m": (350e6, 24, 1024, 16, 64, 0.5, 3.0e-4),
         "760m": (760e6, 24, 1536, 16, 96, 0.5, 2.5e-4),
         "1.3b": (1.3e9, 24, 2048, 24, 128, 1, 2.0e-4),
         "2.7b": (2.7e9, 32, 2560, 32, 80, 1, 1.6e-4),
         "6.7b": (6.7e9, 32, 4096, 32, 128, 2, 1.2e-4),
         "13b": (13e9, 40, 5140, 40, 128, 2, 1.0e-4),
         "175b": (175e9, 96, 12288, 96, 128, 3.2, 0.6e-4)}


@pytest.mark.parametrize("size", sorted(TABLE))
def test_sizes_match_table_2_1(size):
    params, layers, d_model, heads, d_head, batch_m, lr = TABLE[size]
    c = load_config("gpt3", size)
    check_config(c)
    m = c.model
    assert (m.num_layers, m.max_len, c.data.seq_len, m.vocab_size) == (layers, 2048, 2048, 50304)
    assert c.data.tokenizer == "gpt2_bpe"  # GPT-2's 50,257 byte-level BPE ids
    assert m.mlp_dim == 4 * m.embed_dim and m.tie_embeddings
    assert (m.attention_pattern, m.local_window) == ("alternating", 256)
    if size == "1.3b":  # 24 x 128 != 2048: d_model and d_head kept, heads 16 (configs/gpt3.py)
        assert (m.embed_dim, m.num_heads, m.head_dim) == (2048, 16, 0)
    elif size == "13b":  # 5140 read as 5120 = 40 x 128
        assert (m.embed_dim, m.num_heads, m.head_dim) == (5120, 40, 0)
    else:
        assert (m.embed_dim, m.num_heads, m.head_dim) == (d_model, heads, 0)
        assert m.embed_dim == heads * d_head
    assert c.optimizer.lr == lr and c.optimizer.min_lr == pytest.approx(lr / 10)
    # 0.5M = 2^19 tokens = 256 sequences; "3.2M" is read as 1536 (3.1M tokens; configs/gpt3.py)
    assert c.train.batch_size == {0.5: 256, 1: 512, 2: 1024, 3.2: 1536}[batch_m]
    assert c.train.steps * c.train.batch_size * 2048 == pytest.approx(300e9, rel=1e-4)
    assert count(m) == pytest.approx(params, rel=0.02)


def test_the_odd_rows_as_printed():
    """Read literally, XL's 3072-wide attention overshoots 1.3B by 17%; 13B's 5140 fits too."""
    xl = load_config("gpt3", "1.3b-printed").model
    assert (xl.embed_dim, xl.num_heads, xl.head_dim) == (2048, 24, 128)
    assert count(xl) / 1.3e9 == pytest.approx(1.167, abs=0.005)
    b13 = load_config("gpt3", "13b-printed").model
    assert (b13.embed_dim, b13.num_heads, b13.head_dim) == (5140, 40, 128)
    assert count(b13) == pytest.approx(13e9, rel=0.02)
    assert load_config("gpt3", "xl").model.to_dict() == load_config("gpt3", "1.3b").model.to_dict()
    with pytest.raises(ValueError, match="gpt3.py:3b"):
        load_config("gpt3", "3b")


def small_cfg(**overrides):
    cfg = default_model_config("gpt")
    cfg.update(vocab_size=37, max_len=16, num_layers=4, num_heads=2, embed_dim=16)
    cfg.update(overrides)
    return cfg


def tokens(B=2, T=14, seed=0):
    return jnp.asarray(np.random.RandomState(seed).randint(0, 37, (B, T)))


def by_hand(model, x, window):
    """Layers run one at a time: even ones dense, odd ones under ops.local_mask."""
    T = x.shape[1]
    h = model.embed(x) + model.positions(jnp.arange(T))
    graphdef, state = nnx.split(model.stack.blocks)
    for i in range(model.block_cfg.num_layers):
        block = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        h, _ = block(h, mask=ops.local_mask(T, window=window) if i % 2 else None)
    return model.embed.attend(model.final_ln(h))


@pytest.mark.parametrize("scan_layers", [True, False])
def test_alternating_layers_are_dense_then_banded(scan_layers):
    cfg = small_cfg(attention_pattern="alternating", local_window=3, scan_layers=scan_layers)
    model = build_model(cfg, rngs=nnx.Rngs(0))
    dense = build_model(small_cfg(scan_layers=scan_layers), rngs=nnx.Rngs(0))
    # the same parameters (and tree): a dense checkpoint loads into an alternating model
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                                     nnx.to_pure_dict(nnx.state(model)),
                                     nnx.to_pure_dict(nnx.state(dense))))
    x = tokens()
    out = np.asarray(model(x))
    np.testing.assert_allclose(out, by_hand(model, x, 3), atol=1e-5)
    # the band matters past the window, and not before it
    assert np.abs(out - np.asarray(dense(x))).max() > 1e-3
    np.testing.assert_allclose(out[:, :3], np.asarray(dense(x))[:, :3], atol=1e-6)


def test_cached_decoding_matches_the_full_forward():
    cfg = small_cfg(attention_pattern="alternating", local_window=3)
    model = build_model(cfg, rngs=nnx.Rngs(1))
    x = tokens()
    full = np.asarray(model(x))
    cache = model.init_cache(2, 16)
    step = jax.jit(lambda t, c: model.forward(t, cache=c))
    logits, cache = step(x[:, :5], cache)  # prefill past the window, then one token a step
    steps = [logits]
    for t in range(5, 14):
        logits, cache = step(x[:, t:t + 1], cache)
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)
    # greedy generation with the cache equals rerunning the full model on all tokens each step
    prompts = [[1, 2, 3, 4, 5], [7, 8]]
    cached = generate_tokens(model, prompts, 9, temperature=0.0, use_cache=True)
    uncached = generate_tokens(model, prompts, 9, temperature=0.0, use_cache=False)
    assert cached == uncached and len(cached[0]) == 14


def test_decoupled_head_dim():
    model = build_model(small_cfg(head_dim=12, num_layers=2), rngs=nnx.Rngs(0))
    attn = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model)))["stack"]["blocks"]["attn"]
    assert attn["qkv"] == (2, 16, 3, 2, 12) and attn["out"] == (2, 2, 12, 16)
    x = tokens(T=6)
    cache = model.init_cache(2, 8)
    assert cache["k"].shape == (2, 2, 8, 2, 12)
    logits, _ = model.forward(x, cache=cache)
    np.testing.assert_allclose(logits, model(x), atol=1e-5)


@pytest.mark.parametrize("field,value", [("attention_pattern", "banded"), ("local_window", 0),
                                         ("head_dim", -1)])
def test_bad_fields_are_named(field, value):
    cfg = small_cfg(**{"attention_pattern": "alternating", field: value})
    with pytest.raises(ValueError, match=f"model.{field}={value!r}"):
        build_model(cfg, rngs=nnx.Rngs(0))
