"""LMBatches: determinism, shift-by-one targets, epoch coverage, exact resume."""

import json

import numpy as np
import pytest

from llm_jax.data import LMBatches, eval_batches

T, B = 8, 4
# Token value == position, so a window's first input is its start offset.
TOKENS = np.arange(T * 41 + 5)  # 40 windows per epoch: 10 batches, whatever the offset


def _take(batches, n):
    return [next(batches) for _ in range(n)]


def _equal(xs, ys):
    return len(xs) == len(ys) and all(
        np.array_equal(x["inputs"], y["inputs"]) and np.array_equal(x["targets"], y["targets"])
        for x, y in zip(xs, ys)
    )


def test_shapes_and_targets_shifted_by_one():
    for batch in _take(LMBatches(TOKENS * 7 % 101, T, B, seed=0), 12):
        assert batch["inputs"].shape == batch["targets"].shape == (B, T)
        assert batch["inputs"].dtype == batch["targets"].dtype == np.int32
    for batch in _take(LMBatches(TOKENS, T, B, seed=0), 12):
        starts = batch["inputs"][:, :1]
        np.testing.assert_array_equal(batch["inputs"], starts + np.arange(T))
        np.testing.assert_array_equal(batch["targets"], batch["inputs"] + 1)


def test_deterministic_from_seed():
    assert _equal(
        _take(LMBatches(TOKENS, T, B, seed=3), 25), _take(LMBatches(TOKENS, T, B, seed=3), 25)
    )
    assert not _equal(
        _take(LMBatches(TOKENS, T, B, seed=3), 5), _take(LMBatches(TOKENS, T, B, seed=4), 5)
    )
    batches = LMBatches(TOKENS, T, B, seed=3)
    assert _equal([batches.batch(13)], _take(batches, 14)[13:])  # random access == iteration


@pytest.mark.parametrize("num_tokens", [len(TOKENS), len(TOKENS) + 3 * T])  # 40 or 43 windows
def test_every_epoch_covers_the_corpus(num_tokens):
    batches = LMBatches(np.arange(num_tokens), T, B, seed=1)
    w = batches.windows_per_epoch
    starts = np.concatenate([b["inputs"][:, 0] for b in _take(batches, 5 * w // B + 1)])
    offsets = set()
    for epoch in range(5):
        epoch_starts = np.sort(starts[epoch * w : (epoch + 1) * w])
        offset = epoch_starts[0]
        assert 0 <= offset < T
        # Each non-overlapping window of this epoch's offset, exactly once.
        np.testing.assert_array_equal(epoch_starts, offset + T * np.arange(w))
        offsets.add(int(offset))
    assert len(offsets) > 1  # a fresh offset per epoch


@pytest.mark.parametrize("prefetch", [0, 3])
@pytest.mark.parametrize("k", [0, 7, 10, 23])
def test_state_restore_is_exact(k, prefetch):
    original = LMBatches(TOKENS, T, B, seed=5, prefetch=prefetch)
    _take(original, k)
    state = json.loads(json.dumps(original.get_state()))  # as a checkpoint stores it
    assert state["step"] == k
    expected = _take(original, 15)
    resumed = LMBatches(TOKENS, T, B, seed=5, prefetch=prefetch)
    _take(resumed, 2)  # a position of its own, to be overwritten
    resumed.set_state(state)
    assert _equal(_take(resumed, 15), expected)


def test_restore_into_other_settings_is_refused():
    state = LMBatches(TOKENS, T, B, seed=5).get_state()
    with pytest.raises(ValueError, match="`seed`"):
        LMBatches(TOKENS, T, B, seed=6).set_state(state)
    with pytest.raises(ValueError, match="`batch_size`"):
        LMBatches(TOKENS, T, B + 1, seed=5).set_state(state)


def test_too_short_corpus():
    with pytest.raises(ValueError, match="batch_size=4.*seq_len=8"):
        LMBatches(np.arange(4 * T), T, B, seed=0)
    with pytest.raises(ValueError, match="batch_size=4.*seq_len=8"):
        eval_batches(np.arange(4 * T), T, B)


def test_eval_batches_sequential():
    tokens = np.arange(T * 30 + 3)  # 30 windows of T+1 tokens fit: 7 full batches
    batches = list(eval_batches(tokens, T, B))
    assert len(batches) == 7
    starts = np.concatenate([b["inputs"][:, 0] for b in batches])
    np.testing.assert_array_equal(starts, T * np.arange(28))
    for b in batches:
        np.testing.assert_array_equal(b["targets"], b["inputs"] + 1)
    assert len(list(eval_batches(tokens, T, B, max_batches=2))) == 2
