"""Padded (source, target) batches for encoder-decoder training and evaluation.

A batch is a dict of NumPy arrays, src padded to a length S and tgt to a length T:
  src int32[B, S]: source ids + eos;     src_mask bool[B, S]: True on real source tokens
  tgt_in int32[B, T]: bos + target ids;  tgt_out int32[B, T]: target ids + eos
  tgt_weights float32[B, T]: 1 on real tgt_out tokens (the final eos included), 0 on padding

Training batches (TokenBatches) are bucketed by length, and every batch of a bucket has the
same shapes, so jit sees a few shapes only and padding stays small. By default S = T: an
example's length is max(len(src) + 1, len(tgt) + 1) rounded up to a multiple of
`length_multiple` (and capped at `max_len`), which suits translation, where the two sides are
alike. With `length_buckets` (increasing lengths, e.g. (32, 64, 128, 256, 512)) each side is
padded on its own to the smallest bucket that holds it (max_len past the last): summaries
are a fifth of their dialogues, and padding them to the dialogue's length would spend most
of the decoder and the output layer on padding. Epoch e is laid out from (seed, e) alone, so batch i is a pure
function of (seed, i): resuming at step i recomputes the very batches a run would have seen.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]


def make_example(src_ids, tgt_ids, *, bos_id: int, eos_id: int) -> Batch:
    """One unpadded example: src = src_ids + [eos], tgt_in = [bos] + tgt_ids,
    tgt_out = tgt_ids + [eos] (int32)."""
    src_ids, tgt_ids = np.asarray(src_ids, np.int32), np.asarray(tgt_ids, np.int32)
    return {"src": np.append(src_ids, np.int32(eos_id)),
            "tgt_in": np.concatenate([[np.int32(bos_id)], tgt_ids]).astype(np.int32),
            "tgt_out": np.append(tgt_ids, np.int32(eos_id))}


class _Flat:
    """Sequences as one int32 array plus offsets: millions of pairs (WMT14) without millions of
    small arrays, and a batch is one vectorised gather."""

    def __init__(self, seqs: Sequence[Any], what: str):
        arrays = [np.asarray(s) for s in seqs]
        for i, a in enumerate(arrays):
            if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"{what}[{i}] must be a 1-D array of token ids, got "
                                 f"{a.dtype}{a.shape}")
        self.lengths = np.array([len(a) for a in arrays], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.ids = (np.concatenate(arrays).astype(np.int32) if arrays
                    else np.zeros(0, np.int32))

    def gather(self, rows: np.ndarray, width: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
        """int32[len(rows), width] of the rows' first `width` ids (pad after), and its mask;
        row -1 is all padding."""
        lens = np.where(rows >= 0, self.lengths[rows], 0)
        positions = np.arange(width)
        mask = positions < np.minimum(lens, width)[:, None]
        at = np.where(mask, self.offsets[rows][:, None] + positions, 0)
        ids = np.where(mask, self.ids[at] if self.ids.size else pad, pad).astype(np.int32)
        return ids, mask


def _check_pairs(src, tgt, max_len: int, length_multiple: int) -> None:
    if len(src) != len(tgt):
        raise ValueError(f"src has {len(src)} examples but tgt has {len(tgt)}; they must pair")
    if max_len < 1 or length_multiple < 1:
        raise ValueError(f"max_len and length_multiple must be positive, got {max_len}, "
                         f"{length_multiple}")


def _check_buckets(length_buckets) -> tuple[int, ...]:
    buckets = tuple(int(b) for b in length_buckets)
    if any(b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ValueError(f"length_buckets must be increasing positive lengths, got "
                         f"{tuple(length_buckets)}")
    return buckets


def _pad_lengths(needed: np.ndarray, max_len: int, length_multiple: int,
                 buckets: tuple[int, ...] = ()) -> np.ndarray:
    # Capped at max_len so that no batch is longer than the model's positions.
    if buckets:
        bounds = np.array([b for b in buckets if b < max_len] + [max_len])
        return bounds[np.minimum(np.searchsorted(bounds, needed), len(bounds) - 1)]
    rounded = -(-needed // length_multiple) * length_multiple
    return np.minimum(rounded, max_len)


def _assemble(src: _Flat, tgt: _Flat, rows: np.ndarray, src_length: int, tgt_length: int, *,
              pad_id: int, bos_id: int, eos_id: int) -> Batch:
    """The batch of examples `rows` (-1: a padding row), src truncated to `src_length` and tgt
    to `tgt_length` if longer."""
    real = rows >= 0
    # Source: the first length-1 ids, then eos, so that a truncated source ends as in training.
    src_len = np.where(real, np.minimum(src.lengths[rows] + 1, src_length), 0)
    src_ids, _ = src.gather(rows, src_length, pad_id)
    src_mask = np.arange(src_length) < src_len[:, None]
    src_ids = np.where(np.arange(src_length) == (src_len - 1)[:, None], eos_id, src_ids)
    src_ids = np.where(src_mask, src_ids, pad_id)
    # Target: [bos] + ids and ids + [eos], both cut at tgt_length (a prefix of a long target).
    tgt_len = np.where(real, np.minimum(tgt.lengths[rows] + 1, tgt_length), 0)
    ids, _ = tgt.gather(rows, tgt_length, pad_id)
    tgt_mask = np.arange(tgt_length) < tgt_len[:, None]
    tgt_out = np.where(np.arange(tgt_length) == tgt.lengths[rows][:, None], eos_id, ids)
    tgt_out = np.where(tgt_mask, tgt_out, pad_id)
    tgt_in = np.concatenate([np.full((len(rows), 1), bos_id), ids[:, :-1]], axis=1)
    tgt_in = np.where(tgt_mask, tgt_in, pad_id)
    return {"src": src_ids.astype(np.int32), "src_mask": src_mask,
            "tgt_in": tgt_in.astype(np.int32), "tgt_out": tgt_out.astype(np.int32),
            "tgt_weights": tgt_mask.astype(np.float32)}


class TokenBatches:
    """Endless training batches of about `max_tokens` source + target tokens (padding counted).

    A bucket of padded lengths (S, T) has batch size
    B = max(batch_multiple, (max_tokens // (S + T)) // batch_multiple * batch_multiple), so
    B (S + T) <= max_tokens unless one multiple of batch_multiple rows is already more. Examples
    needing more than `max_len` positions are dropped (`dropped` counts them). Each epoch
    shuffles every bucket and then the order of all batches; a bucket's last batch is filled
    with all-pad rows of weight 0, so every example is seen exactly once per epoch and every
    row count is a multiple of batch_multiple. `steps_per_epoch` batches make one epoch.
    Those filled rows are the price of one shape per bucket: small with the default
    length_multiple=8 (a few buckets, each of many batches), large when buckets are many
    and hold few batches each (length_multiple=1 on a small corpus).

    Follows the Batches protocol (tasks/protocols.py): `get_state()` is a dict of ints, and
    after `set_state(s)` a TokenBatches over the same data and settings continues exactly as
    the one that returned s did.
    """

    def __init__(self, src: Sequence[Any], tgt: Sequence[Any], *, max_tokens: int, seed: int,
                 pad_id: int, bos_id: int, eos_id: int, max_len: int, length_multiple: int = 8,
                 batch_multiple: int = 1, length_buckets: Sequence[int] = ()):
        _check_pairs(src, tgt, max_len, length_multiple)
        self.length_buckets = _check_buckets(length_buckets)
        if max_tokens < 1 or batch_multiple < 1:
            raise ValueError(f"max_tokens and batch_multiple must be positive, got {max_tokens}, "
                             f"{batch_multiple}")
        self.max_tokens, self.seed, self.max_len = int(max_tokens), int(seed), int(max_len)
        self.length_multiple, self.batch_multiple = int(length_multiple), int(batch_multiple)
        self.pad_id, self.bos_id, self.eos_id = int(pad_id), int(bos_id), int(eos_id)
        self._src, self._tgt = _Flat(src, "src"), _Flat(tgt, "tgt")
        self.num_examples = len(src)
        needed = np.maximum(self._src.lengths, self._tgt.lengths) + 1
        keep = needed <= self.max_len
        self.dropped = int(np.sum(~keep))
        if not keep.any():
            raise ValueError(f"None of the {len(src)} training examples fits max_len="
                             f"{self.max_len} (an example needs max(len(src), len(tgt)) + 1 "
                             "positions); raise max_len")
        if self.length_buckets:  # each side its own length
            src_lens = _pad_lengths(self._src.lengths + 1, self.max_len, 1, self.length_buckets)
            tgt_lens = _pad_lengths(self._tgt.lengths + 1, self.max_len, 1, self.length_buckets)
        else:
            src_lens = tgt_lens = _pad_lengths(needed, self.max_len, self.length_multiple)
        # Buckets: ((S, T), B, the kept example indices of those lengths), shortest first.
        self._buckets = []
        for s_len, t_len in np.unique(np.stack([src_lens, tgt_lens], 1)[keep], axis=0):
            rows = np.flatnonzero(keep & (src_lens == s_len) & (tgt_lens == t_len))
            size = (self.max_tokens // int(s_len + t_len)) // self.batch_multiple
            self._buckets.append(((int(s_len), int(t_len)),
                                  max(self.batch_multiple, size * self.batch_multiple), rows))
        self.steps_per_epoch = sum(-(-len(rows) // b) for _, b, rows in self._buckets)
        self._layouts: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._step = 0

    @property
    def bucket_shapes(self) -> list[tuple[int, int, int]]:
        """The (B, S, T) of every bucket: all the shapes a training step is compiled for."""
        return [(b, *lengths) for lengths, b, _ in self._buckets]

    def epoch_layout(self, epoch: int) -> list[tuple[tuple[int, int], np.ndarray]]:
        """Epoch `epoch`'s batches as ((S, T), example indices; -1 pads), from (seed, epoch)
        only."""
        if epoch not in self._layouts:
            rng = np.random.default_rng([self.seed, epoch])
            batches = []
            for length, size, rows in self._buckets:
                rows = rng.permutation(rows)
                rows = np.concatenate([rows, np.full(-len(rows) % size, -1, rows.dtype)])
                batches.extend((length, chunk) for chunk in rows.reshape(-1, size))
            self._layouts[epoch] = [batches[i] for i in rng.permutation(len(batches))]
            for old in [e for e in self._layouts if e < epoch - 1]:  # keep memory bounded
                del self._layouts[old]
        return self._layouts[epoch]

    def batch(self, step: int) -> Batch:
        """Training batch number `step` (0-based), without moving the iterator."""
        epoch, position = divmod(int(step), self.steps_per_epoch)
        (s_len, t_len), rows = self.epoch_layout(epoch)[position]
        return _assemble(self._src, self._tgt, rows, s_len, t_len, pad_id=self.pad_id,
                         bos_id=self.bos_id, eos_id=self.eos_id)

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        batch = self.batch(self._step)
        self._step += 1
        return batch

    def _settings(self) -> dict[str, int]:
        # Enough to catch restoring into other data or settings, which would change the batches.
        return {"seed": self.seed, "max_tokens": self.max_tokens, "max_len": self.max_len,
                "length_multiple": self.length_multiple, "batch_multiple": self.batch_multiple,
                "num_examples": self.num_examples,
                "num_tokens": int(self._src.lengths.sum() + self._tgt.lengths.sum()),
                # only when set, so that the states of runs without buckets still restore
                **({"length_buckets": zlib.crc32(repr(self.length_buckets).encode())}
                   if self.length_buckets else {})}

    def get_state(self) -> dict[str, int]:
        # "epoch" is informational (the epoch of the next batch); "step" is the position.
        return {"step": self._step, "epoch": self._step // self.steps_per_epoch,
                **self._settings()}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in self._settings().items():
            if key in state and int(state[key]) != value:
                raise ValueError(
                    f"Data state field `{key}` is {state[key]}, but this pipeline has "
                    f"{key}={value}; a position can only be restored into the same data pipeline.")
        if "step" not in state:
            raise ValueError(f"Data state {state!r} has no field `step`.")
        self._step = int(state["step"])


def eval_batches(src: Sequence[Any], tgt: Sequence[Any], *, batch_size: int, pad_id: int,
                 bos_id: int, eos_id: int, max_len: int, length_multiple: int = 8,
                 length_buckets: Sequence[int] = ()) -> Iterator[Batch]:
    """Every example exactly once, in batches of `batch_size` rows sorted by length (so little
    padding); the last batch is filled with weight-0 rows. Each batch also has "index":
    int32[B], the example's position in the input (-1 for a padding row), to put decoded
    outputs back in input order.

    Nothing is dropped, so scores cover the whole split: an example longer than `max_len` is
    truncated, its source to max_len - 1 ids + eos, its targets to their first max_len tokens.
    S = T is the longest example of the batch, rounded up to `length_multiple`, at most
    max_len; with `length_buckets`, S and T are each side's longest, padded as in TokenBatches.
    """
    _check_pairs(src, tgt, max_len, length_multiple)
    buckets = _check_buckets(length_buckets)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    src_flat, tgt_flat = _Flat(src, "src"), _Flat(tgt, "tgt")
    needed = np.maximum(src_flat.lengths, tgt_flat.lengths) + 1
    lengths = _pad_lengths(needed, max_len, length_multiple)
    order = np.argsort(needed, kind="stable")
    order = np.concatenate([order, np.full(-len(order) % batch_size, -1, order.dtype)])

    # An inner generator, so that the checks above run at call time, not at first next().
    def generate() -> Iterator[Batch]:
        for rows in order.reshape(-1, batch_size):
            real = rows[rows >= 0]
            if buckets:
                s_len, t_len = (int(_pad_lengths(flat.lengths[real].max(keepdims=True) + 1,
                                                 max_len, 1, buckets)[0])
                                for flat in (src_flat, tgt_flat))
            else:
                s_len = t_len = int(lengths[real].max())
            batch = _assemble(src_flat, tgt_flat, rows, s_len, t_len, pad_id=pad_id,
                              bos_id=bos_id, eos_id=eos_id)
            yield {**batch, "index": rows.astype(np.int32)}

    return generate()
