import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.decoding import decode, row_keys
from llm_jax.tasks.lm_decoding import gpt_decoder, rnn_lm_decoder
from tests.decoding.helpers import normalised, recompute_decoder, table_decoder, tiny_gpt, tiny_rnn

EOS = 1
# 0 -> 2 -> 3 -> EOS; 4 <-> 5 never ends.
CHAIN = normalised([[0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0],
                    [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0]])


def run(callback, cache, prompts, lengths, new, key=None, **kw):
    """decode under jit, as the adapters run it (lengths traced, so prefill_len is given)."""
    prefill = int(np.min(lengths))
    fn = jax.jit(lambda c, p, n, k: decode(callback, c, p, n, new, key=k, prefill_len=prefill, **kw))
    key = jax.random.key(0) if key is None else key
    return jax.device_get(fn(cache, jnp.asarray(prompts), jnp.asarray(lengths), key))


def test_eos_stops_rows_and_pads_after():
    cb, cache = table_decoder(CHAIN, 3)
    prompts = np.array([[0, 0], [4, 0], [2, 3]])
    tokens, lengths = decode(cb, cache, prompts, [1, 1, 2], 6, temperature=0.0, eos_id=EOS, pad_id=9)
    np.testing.assert_array_equal(tokens, [[0, 2, 3, 1, 9, 9, 9, 9],
                                           [4, 5, 4, 5, 4, 5, 4, 9],
                                           [2, 3, 1, 9, 9, 9, 9, 9]])
    np.testing.assert_array_equal(lengths, [4, 7, 3])


def test_loop_stops_once_every_row_is_done():
    calls = []
    cb, cache = table_decoder(CHAIN, 2)

    def counted(tokens_BT, c):
        jax.debug.callback(lambda: calls.append(1))
        return cb(tokens_BT, c)

    tokens, lengths = decode(counted, cache, np.array([[0], [2]]), [1, 1], 50, temperature=0.0,
                             eos_id=EOS)
    assert tokens.shape == (2, 51)
    np.testing.assert_array_equal(lengths, [4, 3])
    assert len(calls) == 3  # three steps, not fifty


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_gpt_kv_cache_equals_recomputing_the_prefix(temperature):
    m = tiny_gpt()
    prompts = np.random.RandomState(0).randint(0, 50, (3, 6))
    lengths = np.array([6, 2, 4])
    dec = gpt_decoder(m, 3, 6 + 20)
    ref_cb, ref_cache = recompute_decoder(m, 3, 6 + 20)
    kw = dict(temperature=temperature, top_k=10, key=jax.random.key(7))
    cached, cached_len = run(dec.tokens_to_logits, dec.cache, prompts, lengths, 20, **kw)
    full, full_len = run(ref_cb, ref_cache, prompts, lengths, 20, **kw)
    np.testing.assert_array_equal(cached, full)
    np.testing.assert_array_equal(cached_len, lengths + 20)
    np.testing.assert_array_equal(cached_len, full_len)
    for row, n in zip(cached, lengths):
        assert len(set(row[n:].tolist())) > 3  # a real continuation, not one token repeated


def test_rnn_carry_equals_recomputing_the_prefix():
    m = tiny_rnn()
    prompts = np.random.RandomState(1).randint(0, 50, (2, 5))
    dec = rnn_lm_decoder(m, 2)
    ref_cb, ref_cache = recompute_decoder(m, 2, 5 + 12)
    a = run(dec.tokens_to_logits, dec.cache, prompts, [5, 3], 12, temperature=0.0)
    b = run(ref_cb, ref_cache, prompts, [5, 3], 12, temperature=0.0)
    np.testing.assert_array_equal(a[0], b[0])


def test_keys_are_per_row_and_per_position():
    keys = row_keys(jax.random.key(3), 4)
    np.testing.assert_array_equal(jax.random.key_data(keys[2]),
                                  jax.random.key_data(jax.random.fold_in(jax.random.key(3), 2)))
    np.testing.assert_array_equal(jax.random.key_data(row_keys(keys, 4)), jax.random.key_data(keys))
    with pytest.raises(ValueError, match="one per row"):
        row_keys(keys, 3)
    # A uniform chain: rows with the same key sample the same, rows with another key do not.
    cb, cache = table_decoder(np.full((6, 6), 1 / 6), 3)
    k = jax.random.key(0)
    tokens, _ = decode(cb, cache, np.zeros((3, 1)), [1, 1, 1], 30,
                       key=jnp.stack([k, k, jax.random.key(1)]))
    np.testing.assert_array_equal(tokens[0], tokens[1])
    assert not np.array_equal(tokens[0], tokens[2])
    other, _ = decode(cb, cache, np.zeros((3, 1)), [1, 1, 1], 30, key=jax.random.key(0))
    assert not np.array_equal(other[0], other[1])


def test_bad_lengths_are_named():
    cb, cache = table_decoder(CHAIN, 2)
    with pytest.raises(ValueError, match="prompt_lengths_B"):
        decode(cb, cache, np.zeros((2, 3)), [0, 3], 4)
    with pytest.raises(ValueError, match="prefill_len"):
        decode(cb, cache, np.zeros((2, 3)), [2, 3], 4, prefill_len=3)
    with pytest.raises(ValueError, match="prefill_len"):
        jax.jit(lambda n: decode(cb, cache, np.zeros((2, 3)), n, 4))(jnp.array([2, 3]))
