"""The biLM: causality of each direction, ELMo layers, contextual vectors, export/load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.data.chars import batch_char_ids
from llm_jax.models import elmo

MAX_CHARS = 10


def tiny_cfg(**kw):
    c = elmo.default_config()
    c.update(dict(dict(vocab_size=30, max_chars=MAX_CHARS, char_dim=4,
                       char_filters=((1, 8), (2, 8), (3, 8)), num_highway=1, proj_dim=8,
                       hidden_dim=12, dropout_rate=0.0), **kw))
    return c


@pytest.fixture(scope="module")
def model():
    return elmo.ELMoBiLM(tiny_cfg(), rngs=nnx.Rngs(0))


def _chars(*sentences):
    return jnp.asarray(batch_char_ids([s.split() for s in sentences], MAX_CHARS)[0])


def test_forward_never_sees_later_tokens_and_backward_never_earlier(model):
    """Change word s: forward outputs before s and backward outputs after s must not move."""
    s = 3
    a = _chars("the cat sat on the warm mat")
    b = _chars("the cat sat under the warm mat")
    (fa, ba), (fb, bb) = model(a), model(b)
    np.testing.assert_array_equal(fa[0, :s], fb[0, :s])
    np.testing.assert_array_equal(ba[0, s + 1:], bb[0, s + 1:])
    # ... while the positions that may see it do move (the test would pass vacuously otherwise)
    assert all(not np.allclose(fa[0, t], fb[0, t]) for t in range(s, fa.shape[1]))
    assert all(not np.allclose(ba[0, t], bb[0, t]) for t in range(s + 1))


def test_causality_through_gradients(model):
    """d forward_t / d token_u == 0 for u > t; d backward_t / d token_u == 0 for u < t."""
    x = model.encode_tokens(_chars("a b c d e"))
    fwd_jac = jax.jacobian(lambda x: model.contextual(x)[0][-1].sum(-1))(x)  # [1,T,1,T,P]
    bwd_jac = jax.jacobian(lambda x: model.contextual(x)[1][-1].sum(-1))(x)
    dep_f = np.abs(np.asarray(fwd_jac[0, :, 0])).sum(-1) > 0  # [t, u]
    dep_b = np.abs(np.asarray(bwd_jac[0, :, 0])).sum(-1) > 0
    T = x.shape[1]
    np.testing.assert_array_equal(dep_f, np.tril(np.ones((T, T), bool)))
    np.testing.assert_array_equal(dep_b, np.triu(np.ones((T, T), bool)))


def test_padding_does_not_change_real_tokens(model):
    short = model.layers(_chars("the cat"))
    padded = model.layers(jnp.asarray(batch_char_ids([["the", "cat"]], MAX_CHARS, min_len=5)[0]))
    np.testing.assert_allclose(padded[:, :, :2], short, atol=1e-5)
    assert (np.asarray(padded[:, :, 2:]) == 0).all()


def test_layers_shape_and_same_word_differs_by_context(model):
    layers = model.layers(_chars("the bank of the river", "money in the bank ."))
    assert layers.shape == (3, 2, 5, 16)
    bank_1, bank_2 = layers[:, 0, 1], layers[:, 1, 3]
    np.testing.assert_allclose(bank_1[0], bank_2[0], atol=1e-6)  # token layer: context-free
    for j in (1, 2):  # biLSTM layers: contextual
        assert float(jnp.abs(bank_1[j] - bank_2[j]).max()) > 1e-4


def test_export_load_embed_roundtrip(model, tmp_path):
    words = [f"w{i}" for i in range(30)]
    elmo.export_bilm(tmp_path, nnx.state(model), tiny_cfg(), words)
    loaded = elmo.load_bilm(tmp_path)
    assert loaded.words == words and loaded.num_layers == 3 and loaded.dim == 16
    sentences = [["the", "bank"], [], ["日本", "\ud800"]]  # empty; unseen and unencodable chars
    vecs = loaded.embed(sentences)
    assert [v.shape for v in vecs] == [(3, 2, 16), (3, 0, 16), (3, 2, 16)]
    assert all(np.isfinite(v).all() for v in vecs)
    np.testing.assert_allclose(vecs[0], model.layers(_chars("the bank"))[:, 0], atol=1e-5)
    assert loaded.embed([]) == []


def test_load_names_missing_or_mismatched_files(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="params.npz"):
        elmo.load_bilm(tmp_path)
    elmo.export_bilm(tmp_path, nnx.state(model), tiny_cfg(proj_dim=4), ["a"] * 30)
    with pytest.raises(ValueError, match="shape"):
        elmo.load_bilm(tmp_path)


def test_bad_config_is_named():
    c = tiny_cfg()
    c.vocab_size = 0
    with pytest.raises(ValueError, match="model.vocab_size"):
        elmo.ELMoBiLM(c, rngs=nnx.Rngs(0))


def test_paper_variant_matches_the_released_2x4096_512_model():
    """93.6M parameters outside the softmax, as in elmo_2x4096_512_2048cnn_2xhighway."""
    from tests.conftest import load_config
    c = load_config("elmo", "paper")
    c.model.vocab_size = 33278  # WikiText-2's vocabulary
    m = nnx.eval_shape(lambda: elmo.ELMoBiLM(c.model, rngs=nnx.Rngs(0)))
    total = sum(x.size for x in jax.tree.leaves(nnx.state(m)))
    assert total - 512 * 33278 - 33278 == 93_600_832
