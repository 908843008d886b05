import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.ops import dropout

KEY = jax.random.key(0)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_statistics(rate):
    x = jnp.ones((100, 100))
    y = np.asarray(dropout(x, rate, KEY))
    zero_frac = np.mean(y == 0)
    assert abs(zero_frac - rate) < 0.02
    # Survivors are scaled so the expectation is preserved.
    np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.05


def test_identity_paths():
    x = jnp.arange(6.0)
    for y in (
        dropout(x, 0.5, KEY, deterministic=True),
        dropout(x, 0.0, KEY),
        dropout(x, 0.5, None),
    ):
        np.testing.assert_array_equal(y, x)


def test_keeps_dtype_and_is_deterministic_per_key():
    x = jnp.ones((64,), jnp.bfloat16)
    y = dropout(x, 0.25, KEY)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(y, dropout(x, 0.25, KEY))
    assert not np.array_equal(y, dropout(x, 0.25, jax.random.key(1)))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        dropout(jnp.ones(3), rate, KEY)
