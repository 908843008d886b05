import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.data.chars import BOW, EOW, NUM_SPECIAL, PAD, UNK, batch_char_ids, word_char_ids
from llm_jax.layers.char_cnn import CharCNN, Highway

FILTERS = ((1, 4), (2, 4), (3, 8))


def _cnn(**kw):
    return CharCNN(filters=FILTERS, char_dim=5, out_dim=6, rngs=nnx.Rngs(0), **kw)


def test_word_char_ids_marks_bytes_and_clips():
    ids = word_char_ids("ab", 6)
    np.testing.assert_array_equal(ids, [BOW, ord("a") + NUM_SPECIAL, ord("b") + NUM_SPECIAL, EOW, PAD, PAD])
    long = word_char_ids("abcdefgh", 5)  # clipped, but still closed by end-of-word
    assert long[0] == BOW and long[-1] == EOW and len(long) == 5
    # a non-ASCII letter is its UTF-8 bytes; a lone surrogate has none and is UNK
    assert list(word_char_ids("é", 5)[1:3]) == [0xC3 + NUM_SPECIAL, 0xA9 + NUM_SPECIAL]
    assert word_char_ids("\ud800", 4)[1] == UNK
    with pytest.raises(ValueError, match="max_chars"):
        word_char_ids("a", 2)


def test_batch_char_ids_pads_and_masks_empty_sentences():
    chars, mask = batch_char_ids([["a", "bc"], []], 6)
    assert chars.shape == (2, 2, 6)
    np.testing.assert_array_equal(mask, [[True, True], [False, False]])
    assert (chars[1] == PAD).all()
    chars, mask = batch_char_ids([], 6)
    assert chars.shape == (0, 1, 6) and mask.shape == (0, 1)
    with pytest.raises(ValueError, match="list of tokens"):
        batch_char_ids(["not split"], 6)


def test_char_cnn_shapes_any_leading_dims():
    cnn = _cnn()
    chars, _ = batch_char_ids([["the", "cat"], ["sat"]], 8)
    assert cnn(jnp.asarray(chars)).shape == (2, 2, 6)
    assert cnn(jnp.asarray(chars[0])).shape == (2, 6)
    assert cnn(jnp.zeros((0, 3, 8), jnp.int32)).shape == (0, 3, 6)


def test_char_cnn_word_vector_is_independent_of_its_neighbours():
    cnn = _cnn()
    a, _ = batch_char_ids([["cat", "on", "mat"]], 8)
    b, _ = batch_char_ids([["dog", "on", "a"]], 8)
    np.testing.assert_allclose(cnn(jnp.asarray(a))[0, 1], cnn(jnp.asarray(b))[0, 1], atol=1e-6)
    assert not np.allclose(cnn(jnp.asarray(a))[0, 0], cnn(jnp.asarray(b))[0, 0])


def test_char_cnn_handles_unknown_characters_and_rejects_bad_settings():
    cnn = _cnn()
    chars, _ = batch_char_ids([["\ud800", "日本"]], 8)
    assert np.isfinite(np.asarray(cnn(jnp.asarray(chars)))).all()
    with pytest.raises(ValueError, match="widest char filter"):
        cnn(jnp.zeros((1, 2), jnp.int32))
    with pytest.raises(ValueError, match="char_activation"):
        _cnn(activation="swish")
    with pytest.raises(ValueError, match="char_filters"):
        CharCNN(filters=((0, 4),), rngs=nnx.Rngs(0))


def test_highway_starts_near_identity_and_carries_gradients():
    hw = Highway(6, 2, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(0), (3, 6))
    y = hw(x)
    assert y.shape == x.shape
    # gate bias -2: sigmoid(-2) = 0.12 of the transform, so the output stays close to x
    assert float(jnp.mean(jnp.abs(y - x))) < 0.5 * float(jnp.mean(jnp.abs(x)))
    g = jax.grad(lambda m: jnp.sum(m(x) ** 2))(hw)
    assert all(float(jnp.abs(v).sum()) > 0 for v in jax.tree.leaves(g))
