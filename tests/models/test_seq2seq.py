"""The encoder-decoder Transformer: sizes, masking, causality, cached decoding, positions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax import ops
from llm_jax.models import seq2seq


def config(**overrides):
    c = seq2seq.default_config()
    c.update(vocab_size=40, max_len=32, num_encoder_layers=2, num_decoder_layers=2, num_heads=4,
             embed_dim=16, mlp_dim=24, dropout_rate=0.0)
    c.update(overrides)
    return c


def build(**overrides):
    return seq2seq.Transformer(config(**overrides), rngs=nnx.Rngs(0))


def count(cfg):
    model = nnx.eval_shape(lambda: seq2seq.Transformer(cfg, rngs=nnx.Rngs(0)))
    return sum(x.size for x in jax.tree.leaves(nnx.state(model)))


def test_base_and_big_have_the_papers_sizes():
    """Table 3 of the paper: about 65M (base) and 213M (big) with a 37k shared vocabulary."""
    base = seq2seq.default_config()
    base.vocab_size = 37000
    big = seq2seq.default_config()
    big.update(vocab_size=37000, embed_dim=1024, mlp_dim=4096, num_heads=16)
    assert count(base) == 63_082_496  # 6 x 3.15M encoder + 6 x 4.20M decoder + 18.9M embedding
    assert count(big) == 214_245_376
    assert abs(count(base) / 65e6 - 1) < 0.05 and abs(count(big) / 213e6 - 1) < 0.01


def test_weight_ties():
    """all: one table for source, target and output; decoder: a source table of its own;
    none: also an output projection of its own."""
    table = 40 * 16
    assert count(config(tie_embeddings="decoder")) == count(config()) + table
    assert count(config(tie_embeddings="none")) == count(config()) + 2 * table
    with pytest.raises(ValueError, match="model.tie_embeddings"):
        build(tie_embeddings="both")


def batch(rng=0):
    r = np.random.default_rng(rng)
    src = r.integers(1, 40, (2, 7))
    mask = np.arange(7)[None] < np.array([[7], [4]])
    tgt = r.integers(1, 40, (2, 5))
    return jnp.asarray(src), jnp.asarray(mask), jnp.asarray(tgt)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_source_padding_is_invisible(pre_ln):
    model = build(pre_ln=pre_ln)
    src, mask, tgt = batch()
    other = src.at[1, 4:].set(jnp.array([9, 3, 17]))  # different tokens under the padding
    a, b = model(src, mask, tgt), model(other, mask, tgt)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(model(other, jnp.ones_like(mask), tgt), a)  # the mask is what hides it


def test_decoder_is_causal_through_gradients():
    model = build()
    src, mask, tgt = batch()
    graphdef, state = nnx.split(model)

    def logit_at_2(emb_tgt):
        m = nnx.merge(graphdef, state)
        enc = m.encode(src, mask)
        x = emb_tgt * m.embed_scale + ops.sinusoidal_positions(5, 16, layout="concat")
        h, _ = m.decoder(x, encoded=enc, cross_mask=mask[:, None, None, :])
        return m.embed.attend(h)[:, 2].sum()

    emb = model.embed(tgt)
    grad = np.asarray(jax.grad(logit_at_2)(emb))
    assert np.abs(grad[:, :3]).sum() > 0
    np.testing.assert_array_equal(grad[:, 3:], 0.0)


def test_cached_decoding_equals_teacher_forcing():
    model = build(logits_bias=True)
    src, mask, tgt = batch()
    full = np.asarray(model(src, mask, tgt))
    cache = model.init_cache(model.encode(src, mask), max_len=8)
    steps = []
    for t in range(tgt.shape[1]):
        logits, cache = model.decode(tgt[:, t:t + 1], None, mask, cache=cache)
        steps.append(np.asarray(logits[:, 0]))
    # float32 rounding only: a wrong position offset or cache slot changes logits by > 1e-2
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_positions_follow_the_paper_and_marian():
    pos, dim = np.arange(6)[:, None], 8
    angle = pos / 10000 ** (2 * (np.arange(dim) // 2) / dim)
    paper = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    np.testing.assert_allclose(ops.sinusoidal_positions(6, dim), paper, atol=1e-6)
    marian = np.concatenate([np.sin(angle[:, 0::2]), np.cos(angle[:, 1::2])], 1)
    np.testing.assert_allclose(ops.sinusoidal_positions(6, dim, layout="concat"), marian, atol=1e-6)


def test_too_long_inputs_name_max_len():
    model = build(max_len=6)
    src, mask, tgt = batch()
    with pytest.raises(ValueError, match="model.max_len=6"):
        model(src, mask, tgt)
