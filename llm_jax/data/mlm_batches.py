"""Masked-LM batches: instances (data/mlm_data.py) laid out, masked, of one fixed shape.

A batch of B rows, T = max_len, P = max_predictions:
  input_ids int32[B, T]      [CLS] A [SEP] (B [SEP]), then [PAD]; masked tokens replaced
  segment_ids int32[B, T]    0 over [CLS] A [SEP], 1 over B [SEP], 0 on padding
  mask bool[B, T]            True on real tokens
  mlm_positions int32[B, P]  the masked positions, ascending; 0 past the row's count
  mlm_ids int32[B, P]        their original ids (0 past the count)
  mlm_weights float32[B, P]  1 on the row's masked positions, 0 past them
  weights float32[B]         1 on real rows (0: rows that fill the last eval batch)
  sentence_label int32[B]    with a sentence task: 0 = B follows A / in order, 1 = not

Masking (BERT): each row's budget is mask_prob x its non-special tokens; whole words
(whole_word: a word's WordPiece "##" pieces with it) are taken in random order until the
budget is spent, the word that crosses it with probability equal to the part of it the budget
covers, so the expected masked count is exactly mask_prob x the candidates (Google's code
rounds the count, 15% of 10 tokens being 20%). A word that would take a row past P is never
begun, so nothing chosen is ever dropped. Of the chosen tokens 80% become [MASK], 10% a random
non-special token and 10% stay. [CLS], [SEP], [PAD] (and [MASK]) are never chosen.

Randomness is a pure function of counters: static masks of (seed, instance), dynamic masks of
(seed, step), the order of epoch e of (seed, e); so batch i is a function of (seed, i) alone
and a resumed run sees exactly the masks it would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from llm_jax.data.example_batches import EpochShuffledBatches
from llm_jax.data.mlm_data import Instances

MASKINGS = ("static", "dynamic")
# second words of the generator seeds: keeps the streams of one seed apart
_STATIC, _DYNAMIC = 2, 3  # (1 is the epoch orders', data/example_batches.py)


def word_start_table(tokenizer) -> np.ndarray:
    """bool[V]: whether a token can begin a word. WordPiece marks continuations ("##ing");
    byte-level BPE ("Ġ") and SentencePiece ("▁") mark the pieces that follow a space, which
    every sentence's first word has too (data/mlm_data.py encodes sentences after a space)."""
    kind = getattr(tokenizer, "kind", "")
    tokens = [tokenizer.id_to_token(i) or "" for i in range(tokenizer.vocab_size)]
    if kind == "wordpiece":
        return np.array([not t.startswith("##") for t in tokens])
    if kind in ("roberta_bpe", "albert_sp"):
        mark = "\u0120" if kind == "roberta_bpe" else "\u2581"
        return np.array([t.startswith(mark) for t in tokens])
    raise ValueError(f"config.task.whole_word: tokenizer kind {kind!r} does not mark words; "
                     "expected 'wordpiece', 'roberta_bpe' or 'albert_sp'")


class Masker:
    """Chooses and replaces masked tokens, vectorised over a batch."""

    def __init__(self, *, vocab_size: int, special_ids, mask_id: int, mask_prob: float = 0.15,
                 max_predictions: int, word_starts: np.ndarray | None = None):
        self.mask_prob, self.P, self.mask_id = float(mask_prob), int(max_predictions), mask_id
        self.special = np.array(sorted(set(int(i) for i in special_ids) | {mask_id}), np.int32)
        self.ordinary = np.setdiff1d(np.arange(vocab_size, dtype=np.int32), self.special)
        self.word_starts = word_starts

    def uniforms_per_row(self, T: int) -> int:
        return 3 * T + 1

    def __call__(self, ids_BT: np.ndarray, real_BT: np.ndarray, u: np.ndarray) -> dict:
        """Masks `ids_BT` with the uniforms u[B, 3T + 1]; returns the input_ids and mlm_*
        fields of a batch."""
        B, T = ids_BT.shape
        u_score, u_action, u_random, u_cross = (u[:, :T], u[:, T:2 * T], u[:, 2 * T:3 * T],
                                                u[:, 3 * T])
        cand = real_BT & ~np.isin(ids_BT, self.special)
        pos = np.broadcast_to(np.arange(T), (B, T))
        start = cand.copy()
        if self.word_starts is not None:
            prev = np.concatenate([np.zeros((B, 1), bool), cand[:, :-1]], 1)
            start &= self.word_starts[ids_BT] | ~prev
        # every candidate's word: its first position, and the position past its last
        first = np.maximum.accumulate(np.where(start, pos, 0), axis=1)
        bound = np.where(start | ~cand, pos, T)
        after = np.concatenate([np.minimum.accumulate(bound[:, ::-1], axis=1)[:, ::-1][:, 1:],
                                np.full((B, 1), T)], 1)
        length = np.take_along_axis(after, first, 1) - first
        # words in a random order (a word's tokens share its score and stay together, in
        # position order, under a stable sort); `before`: tokens of the words ahead of it
        score = np.where(cand, np.take_along_axis(u_score, first, 1), 2.0)
        order = np.argsort(score, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, pos, axis=1)
        before = np.take_along_axis(rank, first, 1)
        budget = self.mask_prob * cand.sum(1, keepdims=True)
        chosen = (cand & (before + u_cross[:, None] * length < budget)
                  & (before + length <= self.P))
        random_ids = self.ordinary[np.minimum((u_random * len(self.ordinary)).astype(np.int64),
                                              len(self.ordinary) - 1)]
        replaced = np.where(u_action < 0.8, self.mask_id, np.where(u_action < 0.9, random_ids,
                                                                   ids_BT))
        out_ids = np.where(chosen, replaced, ids_BT).astype(np.int32)
        positions = np.argsort(~chosen, axis=1, kind="stable")[:, :self.P]
        weights = np.take_along_axis(chosen, positions, 1)
        return {"input_ids": out_ids,
                "mlm_positions": np.where(weights, positions, 0).astype(np.int32),
                "mlm_ids": np.where(weights, np.take_along_axis(ids_BT, positions, 1),
                                    0).astype(np.int32),
                "mlm_weights": weights.astype(np.float32)}


def layout(inst: Instances, rows: np.ndarray, T: int, *, cls_id: int, sep_id: int,
           pad_id: int) -> dict:
    """[CLS] A [SEP] (B [SEP]) of the instances `rows` (-1: a filler row, [CLS] alone), padded
    to T: {"input_ids", "segment_ids", "mask", "weights"} before masking."""
    real = rows >= 0
    r = np.where(real, rows, 0)
    la = np.where(real, inst.a_len[r], 0)[:, None]
    lb = np.where(real, inst.b_len[r], 0)[:, None]
    a0, b0 = inst.a_start[r][:, None], inst.b_start[r][:, None]
    j = np.arange(T)[None, :]
    in_a, in_b = (j >= 1) & (j <= la), (lb > 0) & (j >= la + 2) & (j < la + 2 + lb)
    n = len(inst.flat)
    at = np.where(in_a, a0 + j - 1, np.where(in_b, b0 + j - la - 2, 0))
    tokens = inst.flat[np.clip(at, 0, max(n - 1, 0))] if n else np.zeros_like(at)
    sep = (j == la + 1) | ((lb > 0) & (j == la + 2 + lb))
    ids = np.where(in_a | in_b, tokens, np.where(sep, sep_id, pad_id))
    ids[:, 0] = cls_id
    length = np.where(lb > 0, la + lb + 3, la + 2)
    mask = (j < length) & (real[:, None] | (j == 0))
    ids = np.where(mask, ids, pad_id)
    segment = ((j >= la + 2) & mask).astype(np.int32)
    return {"input_ids": ids.astype(np.int32), "segment_ids": segment, "mask": mask,
            "weights": real.astype(np.float32)}


def make_batch(inst: Instances, rows: np.ndarray, T: int, masker: Masker, u: np.ndarray, *,
               ids: dict, sentence_task: bool) -> dict:
    batch = layout(inst, rows, T, cls_id=ids["cls"], sep_id=ids["sep"], pad_id=ids["pad"])
    batch.update(masker(batch["input_ids"], batch["mask"], u))
    if sentence_task:
        labels = inst.label[np.where(rows >= 0, rows, 0)]
        batch["sentence_label"] = np.where(rows >= 0, labels, 0).astype(np.int32)
    return batch


def static_uniforms(seed: int, rows: np.ndarray, n: int) -> np.ndarray:
    """A row's uniforms from (seed, instance) alone: the same mask every time it is seen."""
    return np.stack([np.random.default_rng([seed, _STATIC, max(int(r), 0)]).random(n)
                     for r in rows])


class MLMBatches(EpochShuffledBatches):
    """Endless training batches over `instances`, B rows each (the Batches protocol of
    tasks/protocols.py).

    The instances are read as one endless stream of epochs: sample g = step * B + row is
    instance order_e[g % N] of epoch e = g // N, order_e a permutation drawn from (seed, e). An
    epoch therefore sees every instance exactly once, batches may straddle two epochs, and
    steps_per_epoch = N / B need not be whole. Static masking draws a row's mask from
    (seed, instance), dynamic masking from (seed, step).
    """

    def __init__(self, instances: Instances, *, batch_size: int, max_len: int, seed: int,
                 masker: Masker, masking: str, ids: dict, sentence_task: bool):
        if masking not in MASKINGS:
            raise ValueError(f"config.task.masking={masking!r}: expected one of {MASKINGS}")
        if not len(instances):
            raise ValueError("the training split gives no pre-training instance")
        super().__init__(len(instances), batch_size=batch_size, seed=seed)
        self.inst, self.T, self.num_instances = instances, int(max_len), len(instances)
        self.masker, self.masking, self.ids, self.sentence_task = (masker, masking, ids,
                                                                   sentence_task)

    def batch(self, step: int) -> dict:
        """Batch number `step` (0-based), without moving the iterator."""
        rows, n = self.rows(step), self.masker.uniforms_per_row(self.T)
        if self.masking == "static":
            u = static_uniforms(self.seed, rows, n)
        else:
            u = np.random.default_rng([self.seed, _DYNAMIC, int(step)]).random((self.B, n))
        return make_batch(self.inst, rows, self.T, self.masker, u, ids=self.ids,
                          sentence_task=self.sentence_task)

    def _settings(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.B, "max_len": self.T,
                "num_instances": self.num_instances, "masking": self.masking,
                "num_tokens": int(self.inst.a_len.sum() + self.inst.b_len.sum())}


def eval_batches(instances: Instances, *, batch_size: int, max_len: int, seed: int,
                 masker: Masker, ids: dict, sentence_task: bool,
                 max_batches: int | None = None) -> Iterator[dict]:
    """Every instance once, in order, statically masked from `seed`; the last batch is filled
    with rows of weight 0."""
    n = len(instances)
    steps = math.ceil(n / batch_size)
    if max_batches is not None:
        steps = min(steps, max_batches)
    for s in range(steps):
        rows = np.arange(s * batch_size, (s + 1) * batch_size)
        rows = np.where(rows < n, rows, -1)
        u = static_uniforms(seed, rows, masker.uniforms_per_row(max_len))
        yield make_batch(instances, rows, max_len, masker, u, ids=ids,
                         sentence_task=sentence_task)
