import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.decoding import beam_search, decode, length_penalty, map_batch
from llm_jax.tasks.lm_decoding import GPT_CACHE_BATCH_AXES, gpt_decoder, rnn_lm_decoder
from tests.decoding.helpers import normalised, recompute_decoder, table_decoder, tiny_gpt, tiny_rnn

EOS, PAD = 1, 0
# start 0; a=2 ends at once with p .4; b=3 ends with p .9; c=4 loops. Greedy takes a (.55)
# and ends with p .55 * .4 = .22; b's branch ends with .45 * .9 = .405.
GREEDY_TRAP = normalised([[0, 0, .55, .45, 0], [0, 1, 0, 0, 0], [0, .4, 0, .3, .3],
                          [0, .9, 0, 0, .1], [0, .5, 0, 0, .5]])
# start 0; x=2, y=3. [EOS] has log p -1; [x y EOS] has log p log(.6 * .9 * .4) ~ -1.53 but
# three tokens: GNMT's mild penalty keeps [EOS] first, Hugging Face's n ** alpha prefers it.
LENGTHS = normalised([[0, math.exp(-1), .6, 1 - .6 - math.exp(-1)], [0, 1, 0, 0],
                      [0, .05, .05, .9], [0, .4, .3, .3]])


def search(probs, **kw):
    cb, cache = table_decoder(probs, 1)
    return jax.device_get(beam_search(cb, cache, np.zeros((1, 1)), eos_id=EOS, **kw))


def test_beam_2_finds_the_sequence_greedy_misses():
    cb, cache = table_decoder(GREEDY_TRAP, 1)
    greedy, _ = decode(cb, cache, np.zeros((1, 1)), [1], 5, temperature=0.0, eos_id=EOS)
    np.testing.assert_array_equal(greedy[0], [0, 2, 1, PAD, PAD, PAD])
    seqs, scores, lengths = search(GREEDY_TRAP, beam_size=2, max_len=6, alpha=0.0)
    np.testing.assert_array_equal(seqs[0], [[0, 3, 1, PAD, PAD, PAD], [0, 2, 1, PAD, PAD, PAD]])
    p = GREEDY_TRAP
    np.testing.assert_allclose(scores[0], np.log([p[0, 3] * p[3, 1], p[0, 2] * p[2, 1]]), rtol=1e-6)
    np.testing.assert_array_equal(lengths[0], [3, 3])


def test_length_penalties_rank_differently_with_hand_scores():
    p = np.log(LENGTHS)
    short = p[0, 1]  # [EOS]
    long = p[0, 2] + p[2, 3] + p[3, 1]  # [x, y, EOS]
    seqs, scores, lengths = search(LENGTHS, beam_size=3, max_len=9, alpha=1.0, length_penalty="gnmt")
    np.testing.assert_array_equal(seqs[0, :2, :4], [[0, 1, PAD, PAD], [0, 2, 3, 1]])
    np.testing.assert_allclose(scores[0, :2], [short / ((5 + 1) / 6), long / ((5 + 3) / 6)], rtol=1e-5)
    np.testing.assert_array_equal(lengths[0, :2], [2, 4])
    seqs, scores, _ = search(LENGTHS, beam_size=3, max_len=9, alpha=1.0, length_penalty="hf")
    np.testing.assert_array_equal(seqs[0, :2, :4], [[0, 2, 3, 1], [0, 2, 3, 2]])
    assert scores[0, 0] == pytest.approx(long / 3, rel=1e-5)
    assert short / 1 < scores[0, 2]  # [EOS] is not even in the top three under n ** alpha
    np.testing.assert_allclose(length_penalty(np.array([1, 3]), 0.6, "gnmt"), [1, (8 / 6) ** 0.6])
    np.testing.assert_allclose(length_penalty(np.array([1, 3]), 0.6, "hf"), [1, 3 ** 0.6])


def test_beam_1_equals_greedy():
    m = tiny_gpt()
    prompts = np.random.RandomState(0).randint(0, 50, (3, 4))
    dec = gpt_decoder(m, 3, 20)
    greedy, lengths = decode(dec.tokens_to_logits, dec.cache, prompts, [4, 4, 4], 16, temperature=0.0)
    beam = functools.partial(beam_search, dec.tokens_to_logits, dec.cache, prompts, beam_size=1,
                             max_len=20, alpha=0.0, batch_axes=GPT_CACHE_BATCH_AXES)
    seqs, scores, beam_len = beam(eos_id=None)
    np.testing.assert_array_equal(seqs[:, 0], greedy)
    np.testing.assert_array_equal(beam_len[:, 0], lengths)
    # With EOS, one beam still weighs 2 candidates a step: the answer is greedy's path until it
    # either ends by itself or leaves greedy for an EOS that scores better than greedy's end.
    eos_id = int(greedy[1, 9])
    seqs, with_eos, beam_len = beam(eos_id=eos_id)
    for row, n, g in zip(seqs[:, 0], beam_len[:, 0], greedy):
        assert row[n - 1] == eos_id and np.array_equal(row[:n - 1], g[:n - 1])
    assert np.all(with_eos[:, 0] >= scores[:, 0])


@pytest.mark.parametrize("model", ["gpt", "rnn"])
def test_cache_reordered_by_beam_equals_recomputing(model):
    """GPT's KV cache (batch on axis 1) and the LSTM carry (axis 0) follow their beams."""
    m = tiny_gpt() if model == "gpt" else tiny_rnn()
    prompts = np.random.RandomState(1).randint(0, 50, (3, 3))
    dec = gpt_decoder(m, 3, 14) if model == "gpt" else rnn_lm_decoder(m, 3)
    kw = dict(beam_size=4, max_len=14, eos_id=7, alpha=0.6)
    run = jax.jit(lambda cache, p: beam_search(dec.tokens_to_logits, cache, p,
                                               batch_axes=dec.batch_axes, **kw))
    seqs, scores, lengths = run(dec.cache, prompts)
    ref_cb, ref_cache = recompute_decoder(m, 3, 14)
    ref = beam_search(ref_cb, ref_cache, prompts, **kw)
    np.testing.assert_array_equal(seqs, ref[0])
    np.testing.assert_allclose(scores, ref[1], rtol=1e-5)
    np.testing.assert_array_equal(lengths, ref[2])
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    assert len({tuple(s) for s in np.asarray(seqs[0])}) == 4  # four distinct hypotheses


def test_batch_axes_are_explicit_and_checked():
    cache = {"k": jnp.zeros((2, 3, 5)), "index": jnp.zeros((), jnp.int32)}
    tiled = map_batch(lambda x, ax: jnp.repeat(x, 2, axis=ax), cache, {"k": 1, "index": None})
    assert tiled["k"].shape == (2, 6, 5) and tiled["index"].shape == ()
    assert map_batch(lambda x, ax: x[:1], cache)["k"].shape == (1, 3, 5)  # default: axis 0
    with pytest.raises(ValueError, match="batch_axes.*expected 3"):
        map_batch(lambda x, ax: x, cache, None, batch_size=3)
    with pytest.raises(ValueError, match="prefix"):
        map_batch(lambda x, ax: x, cache, {"v": 1})
    m = tiny_gpt()
    dec = gpt_decoder(m, 3, 8)
    with pytest.raises(ValueError, match="batch_axes"):  # GPT's axis 0 is its 2 layers
        beam_search(dec.tokens_to_logits, dec.cache, np.zeros((3, 2)), beam_size=2, max_len=8,
                    eos_id=None)
    with pytest.raises(ValueError, match="length_penalty"):
        search(LENGTHS, beam_size=2, max_len=4, length_penalty="wu")
    with pytest.raises(ValueError, match="max_len"):
        search(LENGTHS, beam_size=2, max_len=1)
