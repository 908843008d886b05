"""Sentences given as words, encoded into sub-word model inputs that remember their words.

    pieces = encode_words(tokenizer, [["EU", "rejects", "German", "call"], ...], max_len=128)
    pieces.input_ids[n]   [CLS] pieces of word 0, pieces of word 1, ... [SEP] [PAD] ...
    pieces.first[n, j]    the position of word j's first piece; -1: the word was cut

Tagging labels a word at its first piece (BERT, section 5.3), so `first` is the whole
word <-> sub-word map: a label goes in at `first`, and a prediction comes out there.

Each word is tokenised on its own (a batch of the distinct words, each once), as Hugging
Face's `is_split_into_words=True` does, so that a piece never straddles two words. BERT's
WordPiece and ALBERT's SentencePiece see a word the same alone as inside its sentence (both
split at whitespace first; SentencePiece marks every word's start with "▁"). A byte-level BPE
(RoBERTa, GPT-2) folds the space before a word into its first piece ("Ġcall"), so a word after
the first is encoded as " word": the pieces are then exactly those of the sentence joined by
spaces, as the backbone saw running text in pre-training. The first word gets no space unless
the tokenizer adds one itself (add_prefix_space); Hugging Face's RoBERTa with
is_split_into_words (which needs add_prefix_space=True) gives every word the space, the first
included, so its first piece can differ from ours ("ĠEU" against "EU").

A word that gives no piece at all (only characters BERT's normaliser drops, e.g. a lone
zero-width space) is the unknown token, so that every word has a first piece to carry its label.

Sentences longer than max_len - 2 pieces are cut there (then [SEP]); a word whose first piece is
cut has first = -1 and is counted in `cut_words` (a word whose later pieces alone are cut keeps
its label). Tasks train on what fits and, at evaluation, tag a cut word "O" (tasks/tagging.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from llm_jax.data.bert_tokenizers import ByteLevelBPETokenizer, PipelineTokenizer


@dataclasses.dataclass
class WordPieces:
    input_ids: np.ndarray  # int32 [N, T]: [CLS] pieces [SEP], then padding
    lengths: np.ndarray    # int32 [N]: real tokens per row, [CLS] and [SEP] included
    first: np.ndarray      # int32 [N, W]: each word's first piece's position; -1: cut or no word
    num_words: np.ndarray  # int32 [N]
    truncated: np.ndarray  # bool [N]: the row lost pieces to max_len

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def cut_words(self) -> int:
        """Words (over all rows) whose first piece did not fit."""
        real = np.arange(self.first.shape[1])[None, :] < self.num_words[:, None]
        return int(((self.first < 0) & real).sum())

    @property
    def cut_sentences(self) -> int:
        return int(self.truncated.sum())

    def mask(self, index) -> np.ndarray:
        """bool [len(index), T]: True at real tokens."""
        return np.arange(self.input_ids.shape[1])[None, :] < self.lengths[index][:, None]

    def word_starts(self, index) -> np.ndarray:
        """bool [len(index), T]: True at the first piece of each word that fits."""
        first = self.first[index]
        out = np.zeros((len(first), self.input_ids.shape[1]), bool)
        rows, cols = np.nonzero(first >= 0)
        out[rows, first[rows, cols]] = True
        return out

    def token_labels(self, word_labels: Sequence[Sequence[int]]) -> np.ndarray:
        """int32 [N, T]: each word's label at its first piece, -1 everywhere else (the other
        pieces, [CLS], [SEP], padding and cut words: weight 0)."""
        out = np.full(self.input_ids.shape, -1, np.int32)
        for n, labels in enumerate(word_labels):
            if len(labels) != self.num_words[n]:
                raise ValueError(f"sentence {n}: {len(labels)} labels for {self.num_words[n]} words")
            pos = self.first[n, :len(labels)]
            keep = pos >= 0
            out[n, pos[keep]] = np.asarray(labels, np.int32)[keep]
        return out

    def word_values(self, n: int, token_values_T: np.ndarray, fill):
        """Row n's per-token values read at its words' first pieces; `fill` for a cut word."""
        pos = self.first[n, :self.num_words[n]]
        vals = np.asarray(token_values_T)[np.maximum(pos, 0)]
        return [v if p >= 0 else fill for v, p in zip(vals.tolist(), pos)]


def word_inputs(words: Sequence[str], byte_level: bool) -> list[str]:
    """The strings the words of one sentence are tokenised as (see the module docstring)."""
    return [w if i == 0 or not byte_level else " " + w for i, w in enumerate(words)]


def encode_words(tokenizer: PipelineTokenizer, sentences: Sequence[Sequence[str]],
                 max_len: int) -> WordPieces:
    """[CLS] + each word's pieces + [SEP], padded to max_len (see the module docstring)."""
    if not isinstance(tokenizer, PipelineTokenizer):
        raise TypeError(f"encode_words needs a BERT-family tokenizer (bert_tokenizers), got "
                        f"{type(tokenizer).__name__}")
    budget = int(max_len) - 2
    if budget < 1:
        raise ValueError(f"max_len={max_len} leaves no room for a word beside [CLS] and [SEP]")
    ids = tokenizer.special_ids
    cls_, sep, pad, unk = ids["cls"], ids["sep"], ids["pad"], ids["unk"]
    byte_level = isinstance(tokenizer, ByteLevelBPETokenizer)
    inputs = [word_inputs(s, byte_level) for s in sentences]
    distinct = list(dict.fromkeys(w for s in inputs for w in s))
    pieces = {w: (p.tolist() or [unk]) for w, p in zip(distinct, tokenizer.encode_lines(distinct))}
    N, W = len(inputs), max((len(s) for s in inputs), default=0)
    input_ids = np.full((N, max_len), pad, np.int32)
    lengths = np.zeros(N, np.int32)
    first = np.full((N, max(W, 1)), -1, np.int32)
    num_words = np.zeros(N, np.int32)
    truncated = np.zeros(N, bool)
    for n, words in enumerate(inputs):
        row, starts = [], []
        for w in words:
            starts.append(len(row))
            row.extend(pieces[w])
        starts = np.asarray(starts, np.int32)
        fits = starts < budget
        first[n, :len(words)] = np.where(fits, starts + 1, -1)
        num_words[n] = len(words)
        truncated[n] = len(row) > budget
        row = [cls_, *row[:budget], sep]
        input_ids[n, :len(row)] = row
        lengths[n] = len(row)
    return WordPieces(input_ids, lengths, first, num_words, truncated)
