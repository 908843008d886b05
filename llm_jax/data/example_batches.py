"""Fixed-shape batches of encoded examples (one row per example), for fine-tuning tasks.

An `Examples` container is any split whose rows are already encoded to one length (GLUE's
sentence pairs, tagged sentences, utterances): it says how many rows it has, which file they
came from, and builds the batch of any rows. On top of it:

  ExampleBatches   endless training batches (the trainer's Batches protocol): epoch e visits
                   every example once in a permutation drawn from (seed, e), batches may
                   straddle epochs, and the position is the step, so a resumed run sees the
                   batches it would have seen (as MLMBatches draws them).
  padded_batches   the split once, in order, the last batch filled with rows of weight 0.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

_ORDER = 1  # second word of the epoch permutations' seeds


class Examples(Protocol):
    """A split of encoded examples."""

    path: str  # the file (or folder) the split came from, for messages

    def __len__(self) -> int: ...

    def rows(self, index, real=None, *, labelled: bool = True) -> dict:
        """The batch of rows `index` (an int array), "weights" 0 where `real` is False;
        `labelled`: the split must have labels (raise a one-line error if it has none)."""


def padded_batches(examples: Examples, batch_size: int, max_batches=None, *, labelled=True):
    """Every row once, in order, in batches of exactly `batch_size` rows; the last batch is
    filled with copies of row 0 of weight 0."""
    steps = math.ceil(len(examples) / batch_size)
    if max_batches is not None:
        steps = min(steps, int(max_batches))
    for s in range(steps):
        index = np.arange(s * batch_size, (s + 1) * batch_size)
        real = index < len(examples)
        yield examples.rows(np.where(real, index, 0), real, labelled=labelled)


class EpochShuffledBatches:
    """Endless batches of `batch_size` rows over `num_rows` items, each epoch a permutation drawn
    from (seed, epoch), so a batch is a function of (seed, step) and a restored position gives
    the same batches (the Batches protocol). A subclass makes a batch from its rows
    (`batch(step)` over `rows(step)`) and lists what a position may only be restored into
    (`_settings`)."""

    def __init__(self, num_rows: int, *, batch_size: int, seed: int):
        self.num_rows, self.B, self.seed = int(num_rows), int(batch_size), int(seed)
        self.steps_per_epoch = self.num_rows / self.B
        self._orders: dict[int, np.ndarray] = {}
        self._step = 0

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, _ORDER, epoch])
            self._orders[epoch] = rng.permutation(self.num_rows)
            for old in [e for e in self._orders if e < epoch - 1]:
                del self._orders[old]
        return self._orders[epoch]

    def rows(self, step: int) -> np.ndarray:
        """The item indices of batch `step` (0-based); a batch may span two epochs."""
        g = int(step) * self.B + np.arange(self.B)
        epochs, within = np.divmod(g, self.num_rows)
        out = np.empty(self.B, np.int64)
        for e in np.unique(epochs):
            out[epochs == e] = self.order(int(e))[within[epochs == e]]
        return out

    def batch(self, step: int) -> dict:
        raise NotImplementedError

    def _settings(self) -> dict:
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batch = self.batch(self._step)
        self._step += 1
        return batch

    def get_state(self) -> dict:
        # "epoch" is informational (the epoch of the next batch's first row); "step" is the position
        return {"step": self._step, "epoch": self._step * self.B // self.num_rows,
                **self._settings()}

    def set_state(self, state: dict) -> None:
        for key, value in self._settings().items():
            if key in state and state[key] != value:
                raise ValueError(f"Data state field `{key}` is {state[key]!r}, but this pipeline "
                                 f"has {key}={value!r}; a position can only be restored into "
                                 "the same data pipeline.")
        if "step" not in state:
            raise ValueError(f"Data state {state!r} has no field `step`.")
        self._step = int(state["step"])


class ExampleBatches(EpochShuffledBatches):
    """Endless training batches of `batch_size` examples."""

    def __init__(self, examples: Examples, *, batch_size: int, seed: int):
        if not len(examples):
            raise ValueError(f"{examples.path}: the training split has no example")
        super().__init__(len(examples), batch_size=batch_size, seed=seed)
        self.examples, self.num_examples = examples, len(examples)

    def batch(self, step: int) -> dict:
        """Batch number `step` (0-based), without moving the iterator."""
        return self.examples.rows(self.rows(step))

    def _settings(self) -> dict:
        return {"seed": self.seed, "batch_size": self.B, "num_examples": self.num_examples}
