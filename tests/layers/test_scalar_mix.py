import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.layers.scalar_mix import ScalarMix


def test_scalar_mix_is_gamma_times_softmax_weighted_sum():
    mix = ScalarMix(3)
    layers = jax.random.normal(jax.random.key(0), (3, 2, 4, 5))
    # equal weights at init: the mean of the layers
    np.testing.assert_allclose(mix(layers), layers.mean(0), rtol=1e-5, atol=1e-6)
    mix.weights[...] = jnp.array([1.0, 0.0, -1.0])
    mix.gamma[...] = jnp.array(2.0)
    s = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    expected = 2.0 * np.einsum("l,l...->...", s, np.asarray(layers))
    np.testing.assert_allclose(mix(layers), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mix.layer_weights().sum(), 1.0, rtol=1e-6)


def test_scalar_mix_weights_and_gamma_are_trainable():
    mix = ScalarMix(2)
    layers = jnp.stack([jnp.ones((2, 3)), -jnp.ones((2, 3))])
    grads = nnx.grad(lambda m: jnp.sum(m(layers)))(mix)
    assert float(jnp.abs(grads.weights[...]).sum()) > 0
    # the mix at init is 0 (the mean of +1 and -1), so d/dgamma = 0 here; d/dw is not
    mix.weights[...] = jnp.array([0.5, 0.0])
    grads = nnx.grad(lambda m: jnp.sum(m(layers)))(mix)
    assert float(jnp.abs(grads.gamma[...])) > 0


def test_scalar_mix_layer_norm_ignores_padding():
    mix = ScalarMix(2, layer_norm=True)
    layers = jax.random.normal(jax.random.key(1), (2, 1, 4, 3))
    mask = jnp.array([[True, True, False, False]])
    padded = layers.at[:, :, 2:].set(100.0)  # what padding holds must not matter
    np.testing.assert_allclose(mix(layers, mask)[:, :2], mix(padded, mask)[:, :2], rtol=1e-5)


def test_scalar_mix_checks_layer_count():
    with pytest.raises(ValueError, match="3 layers got 2"):
        ScalarMix(3)(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least one layer"):
        ScalarMix(0)
