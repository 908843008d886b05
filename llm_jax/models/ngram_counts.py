"""Counting n-grams of a token stream with NumPy: sentence windows and sorted hash tables.

Counting is sorting, and sorting int64 keys with NumPy is the right tool here: a PTB 5-gram
(~0.9M tokens, ~3M distinct n-grams over all orders) counts in about a second on one core.

Conventions (those of SRILM and the published PTB numbers): the stream is a sequence of
sentences, each ended by an end-of-sentence token that is predicted like any word. A sentence
start symbol BOS (id `vocab_size`, one past the vocabulary) is a context only, never predicted,
and no n-gram reaches across a sentence start.

An n-gram of order k >= 2 is keyed `ctx_id * (vocab_size + 1) + word`, with `ctx_id` the dense id
of its (k-1)-gram prefix in the table of order k-1; the table of order k holds the sorted unique
keys, so an n-gram's dense id is its index there. Unigram ids are the token ids themselves.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PAD = -1  # a window slot before the sentence start


def check_stream(tokens, vocab_size: int, eos_id: int, field: str = "tokens") -> np.ndarray:
    """The stream as int64, or ValueError naming `field` and what is wrong with it."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not (tokens.size == 0 or np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(f"{field}: expected a 1-D integer token stream, got {tokens.dtype}"
                         f"{tokens.shape}")
    if not 0 <= eos_id < vocab_size:
        raise ValueError(f"eos_id={eos_id} is outside the vocabulary [0, {vocab_size})")
    tokens = tokens.astype(np.int64)
    if tokens.size == 0:
        raise ValueError(f"{field}: the token stream is empty")
    bad = (tokens < 0) | (tokens >= vocab_size)
    if bad.any():
        raise ValueError(f"{field}: token id {tokens[bad][0]} at position {np.flatnonzero(bad)[0]}"
                         f" is outside the vocabulary [0, {vocab_size})")
    if not (tokens == eos_id).any():
        raise ValueError(f"{field}: the token stream has no sentence ends (eos_id={eos_id}); "
                         "every sentence must end with the end-of-sentence token")
    if tokens[-1] != eos_id:
        raise ValueError(f"{field}: the token stream does not end with a sentence end "
                         f"(eos_id={eos_id}); its last sentence is unterminated")
    return tokens


def sentence_windows(tokens: np.ndarray, eos_id: int, bos_id: int, order: int) -> np.ndarray:
    """int64[L, order]: row i is token i preceded by up to order-1 tokens of its own sentence.

    The sentence's BOS fills the slot just before its first word and PAD the slots before that.
    """
    L = len(tokens)
    idx = np.arange(L)
    starts = np.ones(L, bool)
    starts[1:] = tokens[:-1] == eos_id
    pos_in_sentence = idx - np.maximum.accumulate(np.where(starts, idx, 0))
    rows = np.full((L, order), PAD, np.int64)
    for back in range(order):  # column order-1-back holds the token `back` steps earlier
        col = order - 1 - back
        inside = pos_in_sentence >= back
        rows[inside, col] = tokens[idx[inside] - back]
        rows[pos_in_sentence == back - 1, col] = bos_id
    return rows


@dataclasses.dataclass
class Table:
    """The n-grams of one order k: sorted keys (unigrams: None, ids are tokens) and raw counts."""

    keys: np.ndarray | None
    counts: np.ndarray
    suffix: np.ndarray | None = None     # id (order k-1) of the n-gram without its first token
    starts_bos: np.ndarray | None = None  # its first token is BOS (no left context exists)

    @property
    def size(self) -> int:
        return len(self.counts)

    def context(self, base: int) -> np.ndarray:
        return np.zeros(self.size, np.int64) if self.keys is None else self.keys // base

    def word(self, base: int) -> np.ndarray:
        return np.arange(self.size) if self.keys is None else self.keys % base


def lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each query key in the sorted `keys`, or PAD where it is absent."""
    if len(keys) == 0:
        return np.full(query.shape, PAD, np.int64)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, pos, PAD)


def gram_ids(tables: list[Table], rows: np.ndarray, base: int) -> list[np.ndarray]:
    """ids[k][:, c]: id of the k-gram ending at column c of `rows` (PAD if unseen or cut off).

    ids[0] is all zeros: the empty context. Only columns c >= k-1 are meaningful.
    """
    B, N = rows.shape
    ids = [np.zeros((B, N), np.int64), rows.copy()]
    for k in range(2, len(tables) + 1):
        prev, cur = ids[k - 1], np.full((B, N), PAD, np.int64)
        ok = (prev[:, :-1] >= 0) & (rows[:, 1:] >= 0)
        cur[:, 1:][ok] = lookup(tables[k - 1].keys, prev[:, :-1][ok] * base + rows[:, 1:][ok])
        ids.append(cur)
    return ids


def count_tables(rows: np.ndarray, vocab_size: int, n_sentences: int) -> list[Table]:
    """Tables of orders 1..N from `sentence_windows` of a training stream, rows in stream order."""
    B, N = rows.shape
    base = vocab_size + 1
    bos = vocab_size
    unigram_counts = np.bincount(rows[:, -1], minlength=base).astype(np.int64)
    unigram_counts[bos] = n_sentences
    tables = [Table(None, unigram_counts)]
    target_ids = rows[:, -1]      # id of the (k-1)-gram ending at each row's target
    context_ids = rows[:, -2] if N > 1 else None  # id of the (k-1)-gram ending just before it
    for k in range(2, N + 1):
        ok = context_ids >= 0
        keys = context_ids[ok] * base + rows[ok, -1]
        uniq, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                                 return_counts=True)
        rows_ok = np.flatnonzero(ok)
        tables.append(Table(uniq, counts.astype(np.int64),
                            suffix=target_ids[rows_ok[first]],
                            starts_bos=rows[rows_ok[first], N - k] == bos))
        new_target = np.full(B, PAD, np.int64)
        new_target[ok] = inverse.reshape(-1)
        target_ids = new_target
        if k < N:
            # Rows are consecutive tokens: the k-gram ending just before row i's target is row
            # i-1's target k-gram, when row i's previous token is a word of the same sentence.
            context_ids = np.full(B, PAD, np.int64)
            same_sentence = (rows[1:, -2] >= 0) & (rows[1:, -2] != bos)
            context_ids[1:][same_sentence] = target_ids[:-1][same_sentence]
    return tables
