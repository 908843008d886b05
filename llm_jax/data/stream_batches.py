"""Zaremba-style batching for truncated back-propagation through time.

The token stream is cut into `batch_size` parallel streams (row b is tokens[b * L : (b + 1) * L]
with L = len // batch_size), and batch i of an epoch is the i-th window of `num_steps` tokens of
every stream, so row b of batch i + 1 continues row b of batch i. A recurrent model that carries
its state from batch to batch therefore sees each stream as one long sequence. This is
`ptb_producer` of TensorFlow's ptb_word_lm.py: the same windows in the same order every epoch.

Each batch carries `reset`: bool[batch_size], true on an epoch's first batch, telling the model to
start from a zero state there. Batch i (counted over all epochs) is a pure function of i, and the
iterator's state is {"step": i}, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from llm_jax.data.lm_batches import as_token_array

Batch = dict[str, np.ndarray]


def _streams(tokens: Any, batch_size: int, num_steps: int, what: str) -> np.ndarray:
    tokens = as_token_array(tokens)
    if batch_size < 1 or num_steps < 1:
        raise ValueError(f"batch_size and num_steps must be positive, got {batch_size}, {num_steps}.")
    stream_len = len(tokens) // batch_size
    if (stream_len - 1) // num_steps < 1:
        raise ValueError(f"the {what} split ({len(tokens)} tokens) is too short for one batch of "
                         f"{batch_size} streams x {num_steps} steps; lower the batch size or "
                         "config.data.seq_len")
    # A view (of a memory-mapped token file, say): only each window is copied, as int32.
    return tokens[: batch_size * stream_len].reshape(batch_size, stream_len)


def _window(streams: np.ndarray, i: int, num_steps: int, reset: bool) -> Batch:
    chunk = streams[:, i * num_steps: (i + 1) * num_steps + 1].astype(np.int32)
    return {"inputs": chunk[:, :-1], "targets": chunk[:, 1:],
            "reset": np.full((streams.shape[0],), reset)}


class StreamBatches:
    """Endless iterator of {"inputs", "targets": int32[B, T], "reset": bool[B]} over epochs."""

    def __init__(self, tokens: Any, batch_size: int, num_steps: int):
        self.batch_size, self.num_steps = int(batch_size), int(num_steps)
        self.num_tokens = len(tokens)
        self._streams = _streams(tokens, self.batch_size, self.num_steps, "train")
        # -1: the target of a window's last step is the next window's first input
        self.steps_per_epoch = (self._streams.shape[1] - 1) // self.num_steps
        self._next = 0

    def batch(self, step: int) -> Batch:
        """Batch number `step` (0-based, over all epochs), without moving the iterator."""
        i = step % self.steps_per_epoch
        return _window(self._streams, i, self.num_steps, reset=i == 0)

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        batch = self.batch(self._next)
        self._next += 1
        return batch

    def _settings(self) -> dict[str, int]:
        return {"batch_size": self.batch_size, "num_steps": self.num_steps,
                "num_tokens": self.num_tokens}

    def get_state(self) -> dict[str, int]:
        # "epoch" is informational; "step" is the position.
        return {"step": self._next, "epoch": self._next // self.steps_per_epoch, **self._settings()}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in self._settings().items():
            if key in state and int(state[key]) != value:
                raise ValueError(f"Data state field `{key}` is {state[key]}, but this pipeline has "
                                 f"{key}={value}; a position can only be restored into the same "
                                 "data pipeline.")
        if "step" not in state:
            raise ValueError(f"Data state {state!r} has no field `step`.")
        self._next = int(state["step"])


def stream_eval_batches(tokens: Any, batch_size: int, num_steps: int,
                        max_batches: int | None = None) -> Iterator[Batch]:
    """One pass over a split in the same layout; the first batch resets the state.

    The last (len // batch_size - 1) % num_steps tokens of each stream are not scored, as in
    ptb_word_lm.py; with batch_size 1 that is fewer than num_steps tokens of the split.
    """
    streams = _streams(tokens, int(batch_size), int(num_steps), "eval")
    n = (streams.shape[1] - 1) // num_steps
    if max_batches is not None:
        n = min(n, max_batches)

    def generate() -> Iterator[Batch]:
        for i in range(n):
            yield _window(streams, i, num_steps, reset=i == 0)

    return generate()
