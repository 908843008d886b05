"""Zaremba-style parallel-stream batches: layout, continuity, resets, resumable position."""

import numpy as np
import pytest

from llm_jax.data.stream_batches import StreamBatches, stream_eval_batches


def test_layout_matches_ptb_producer():
    """ptb_word_lm.py's reader: data[:B*L].reshape(B, L); batch i = columns [i*T, (i+1)*T)."""
    tokens = np.arange(103, dtype=np.int32)
    b = StreamBatches(tokens, batch_size=4, num_steps=5)
    data = tokens[:100].reshape(4, 25)
    assert b.steps_per_epoch == (25 - 1) // 5 == 4
    for i in range(4):
        batch = next(b)
        np.testing.assert_array_equal(batch["inputs"], data[:, i * 5:(i + 1) * 5])
        np.testing.assert_array_equal(batch["targets"], data[:, i * 5 + 1:(i + 1) * 5 + 1])
        assert batch["reset"].shape == (4,) and batch["reset"].all() == (i == 0)


def test_windows_continue_each_stream_and_epochs_repeat():
    tokens = np.random.default_rng(0).integers(0, 50, 1000).astype(np.int32)
    b = StreamBatches(tokens, batch_size=8, num_steps=7)
    first = [next(b) for _ in range(b.steps_per_epoch)]
    for prev, cur in zip(first, first[1:], strict=False):
        np.testing.assert_array_equal(prev["targets"][:, -1], cur["inputs"][:, 0])
        assert not cur["reset"].any()
    again = next(b)  # epoch 2 starts over, from a reset
    np.testing.assert_array_equal(again["inputs"], first[0]["inputs"])
    assert again["reset"].all()


def test_state_restores_the_position():
    tokens = np.arange(500, dtype=np.int32)
    a = StreamBatches(tokens, 3, 4)
    for _ in range(50):
        next(a)
    state = a.get_state()
    assert state["step"] == 50 and state["epoch"] == 50 // a.steps_per_epoch
    b = StreamBatches(tokens, 3, 4)
    b.set_state(state)
    for _ in range(60):
        x, y = next(a), next(b)
        np.testing.assert_array_equal(x["inputs"], y["inputs"])
        np.testing.assert_array_equal(x["reset"], y["reset"])
    with pytest.raises(ValueError, match="batch_size"):
        StreamBatches(tokens, 4, 4).set_state(state)


def test_eval_batches_are_one_pass():
    tokens = np.arange(61, dtype=np.int32)
    batches = list(stream_eval_batches(tokens, 1, 7))
    assert len(batches) == (61 - 1) // 7
    np.testing.assert_array_equal(np.concatenate([x["inputs"][0] for x in batches]), tokens[:56])
    assert [bool(x["reset"][0]) for x in batches] == [True] + [False] * 7
    assert len(list(stream_eval_batches(tokens, 1, 7, max_batches=3))) == 3


def test_too_short_or_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        StreamBatches(np.arange(10), 4, 5)
    with pytest.raises(ValueError, match="1-D integer"):
        StreamBatches(np.zeros((3, 3), np.int32), 1, 1)
