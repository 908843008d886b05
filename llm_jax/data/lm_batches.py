"""Language-model batches of contiguous token windows, deterministic and resumable.

Training windows are non-overlapping: epoch e starts them at offset_e + k * seq_len,
with offset_e drawn in [0, seq_len) and the windows shuffled by a permutation, both
from (seed, e). The epochs' shuffled windows form one endless stream that is cut into
batches, so every window of every epoch is used exactly once (no window is dropped at
an epoch's end) and batch i is a pure function of (seed, i).

That random access is what makes resuming exact: a grain `MapDataset` whose element i
is batch i, read through grain's iterator (optionally with thread prefetch), has the
state {"next_index": i}, and restoring it recomputes the very same batches.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

Batch = dict[str, np.ndarray]


def _check_corpus(num_tokens: int, num_windows: int, seq_len: int, batch_size: int) -> None:
    if seq_len < 1 or batch_size < 1:
        raise ValueError(f"seq_len and batch_size must be positive, got {seq_len}, {batch_size}.")
    if num_windows < batch_size:
        raise ValueError(
            f"A corpus of {num_tokens} tokens is too short for one batch of batch_size="
            f"{batch_size} windows of seq_len={seq_len} ({num_windows} windows fit); "
            "use a smaller seq_len or batch_size."
        )


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> Batch:
    # One fancy-indexing gather of B x (seq_len + 1) tokens; targets are inputs shifted by one.
    # Only the gathered windows are cast to int32: `tokens` may be a memory-mapped uint16 token
    # file larger than memory, which is never copied whole.
    chunk = tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32, copy=False)
    return {"inputs": chunk[:, :-1], "targets": chunk[:, 1:]}


def as_token_array(tokens: Any) -> np.ndarray:
    """A 1-D integer array of the tokens, without copying an array (or np.memmap) given."""
    tokens = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D integer array, got {tokens.dtype}{tokens.shape}.")
    return tokens


class _BatchSource(grain.MapDataset):
    """Endless random-access dataset: element i is training batch i."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int):
        super().__init__()
        self.tokens, self.seq_len, self.batch_size, self.seed = tokens, seq_len, batch_size, seed
        # The largest offset is seq_len - 1; every epoch gets this many windows, whatever
        # its offset, each needing seq_len + 1 tokens (the last target).
        self.windows_per_epoch = (len(tokens) - seq_len) // max(seq_len, 1)
        _check_corpus(len(tokens), self.windows_per_epoch, seq_len, batch_size)
        self._lock = threading.Lock()  # grain's prefetch threads share the cache
        self._cache: dict[int, tuple[int, np.ndarray]] = {}

    def epoch_layout(self, epoch: int) -> tuple[int, np.ndarray]:
        """(offset, window permutation) of an epoch, from (seed, epoch) only."""
        with self._lock:
            if epoch not in self._cache:
                rng = np.random.default_rng([self.seed, epoch])
                offset = int(rng.integers(self.seq_len))
                self._cache[epoch] = (offset, rng.permutation(self.windows_per_epoch))
                for old in [e for e in self._cache if e < epoch - 1]:
                    del self._cache[old]
            return self._cache[epoch]

    def __len__(self) -> int:
        return sys.maxsize  # endless; grain treats this as an infinite dataset

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        stream = np.arange(index * self.batch_size, (index + 1) * self.batch_size)
        epochs, positions = np.divmod(stream, self.windows_per_epoch)
        starts = np.empty_like(stream)
        for epoch in np.unique(epochs):  # at most a few epochs per batch
            offset, perm = self.epoch_layout(int(epoch))
            sel = epochs == epoch
            starts[sel] = offset + perm[positions[sel]] * self.seq_len
        return _windows(self.tokens, starts, self.seq_len)

    def __str__(self) -> str:
        return f"LMBatchSource(seq_len={self.seq_len}, batch_size={self.batch_size})"


class LMBatches:
    """Endless iterator of {"inputs", "targets"}: int32[batch_size, seq_len] batches.

    `get_state()` is a JSON-serialisable dict; after `set_state(s)`, a fresh LMBatches
    with the same tokens and settings yields exactly what the original yielded after
    `get_state()` returned s. `prefetch` > 0 computes that many batches ahead in a
    background thread (off by default: a batch is one small numpy gather).
    """

    def __init__(self, tokens: Any, seq_len: int, batch_size: int, seed: int, *, prefetch: int = 0):
        tokens = as_token_array(tokens)
        self.seq_len, self.batch_size, self.seed = int(seq_len), int(batch_size), int(seed)
        self.num_tokens = len(tokens)
        self._source = _BatchSource(tokens, self.seq_len, self.batch_size, self.seed)
        threads = 1 if prefetch > 0 else 0
        options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
        self._iter = iter(self._source.to_iter_dataset(options))

    @property
    def windows_per_epoch(self) -> int:
        return self._source.windows_per_epoch

    @property
    def steps_per_epoch(self) -> float:
        """Batches per pass over the corpus (epochs do not align with batches)."""
        return self.windows_per_epoch / self.batch_size

    def batch(self, step: int) -> Batch:
        """Batch number `step` (0-based), without moving the iterator."""
        return self._source[step]

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        return next(self._iter)

    def _settings(self) -> dict[str, int]:
        return {
            "seed": self.seed,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "num_tokens": self.num_tokens,
        }

    def get_state(self) -> dict[str, int]:
        step = int(self._iter.get_state()["next_index"])
        # "epoch" is informational (the epoch of the next window); "step" is the position.
        epoch = step * self.batch_size // self.windows_per_epoch
        return {"step": step, "epoch": epoch, **self._settings()}

    def set_state(self, state: dict[str, Any]) -> None:
        # Restoring a position taken with other settings would silently change the data.
        for key, value in self._settings().items():
            if key in state and int(state[key]) != value:
                raise ValueError(
                    f"Data state field `{key}` is {state[key]}, but this pipeline has {key}={value}; "
                    "a position can only be restored into the same data pipeline."
                )
        if "step" not in state:
            raise ValueError(f"Data state {state!r} has no field `step`.")
        self._iter.set_state({"next_index": int(state["step"])})


def eval_batches(
    tokens: Any, seq_len: int, batch_size: int, max_batches: int | None = None
) -> Iterator[Batch]:
    """Sequential non-overlapping windows from the start; the last partial batch is dropped."""
    tokens = as_token_array(tokens)
    num_windows = (len(tokens) - 1) // max(seq_len, 1)
    _check_corpus(len(tokens), num_windows, seq_len, batch_size)
    num_batches = num_windows // batch_size
    if max_batches is not None:
        num_batches = min(num_batches, max_batches)

    # An inner generator, so that the checks above run at call time, not at first next().
    def generate() -> Iterator[Batch]:
        for b in range(num_batches):
            starts = np.arange(b * batch_size, (b + 1) * batch_size) * seq_len
            yield _windows(tokens, starts, seq_len)

    return generate()
