import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.ops import learned_positions, sinusoidal_positions


def ref_sinusoid(length, dim, offset=0):
    pe = np.zeros((length, dim))
    for p in range(length):
        for c in range(dim):
            angle = (p + offset) / 10000.0 ** (2 * (c // 2) / dim)
            pe[p, c] = np.sin(angle) if c % 2 == 0 else np.cos(angle)
    return pe


@pytest.mark.parametrize("length,dim", [(7, 8), (5, 6), (3, 5)])
def test_sinusoidal_table(length, dim):
    pe = sinusoidal_positions(length, dim)
    assert pe.shape == (length, dim) and pe.dtype == jnp.float32
    np.testing.assert_allclose(pe, ref_sinusoid(length, dim), atol=1e-6)
    np.testing.assert_allclose(pe[0, 0::2], 0.0)
    np.testing.assert_allclose(pe[0, 1::2], 1.0)


def test_sinusoidal_traced_offset():
    pe = jax.jit(lambda off: sinusoidal_positions(3, 8, offset=off))(jnp.int32(40))
    np.testing.assert_allclose(pe, ref_sinusoid(3, 8, offset=40), atol=1e-5)
    np.testing.assert_allclose(pe, sinusoidal_positions(43, 8)[40:], atol=1e-6)


def test_learned_positions_lookup():
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    pos = np.array([[0, 1, 5], [2, 2, 3]])
    np.testing.assert_array_equal(learned_positions(table, pos), table[pos])
    traced = jax.jit(learned_positions)(table, jnp.asarray(pos))
    np.testing.assert_array_equal(traced, table[pos])


def test_learned_positions_out_of_range():
    table = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="4 rows"):
        learned_positions(table, np.arange(5))
    with pytest.raises(ValueError, match="integers"):
        learned_positions(table, np.zeros(2, np.float32))
