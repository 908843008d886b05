"""word2vec's input side: vocabulary, subsampling, noise distribution and the (vectorised) pairs.

Follows the reference C tool and gensim: one sentence per line, words split on whitespace, the
vocabulary sorted by descending count (ties keep first-seen order), frequent words dropped
*before* windows are drawn, and each centre word's window shrunk to a uniform 1..window.
Every random draw comes from one numpy Generator, so an epoch is a function of (seed, epoch).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib

import numpy as np

from llm_jax.data.text_files import TextSlice

# gensim's LineSentence cuts longer lines into pieces of this many words.
MAX_SENTENCE_LEN = 10000


@dataclasses.dataclass
class Corpus:
    """All sentences as one int32 id array; sentence k is ids[starts[k]:starts[k+1]].

    Words outside the vocabulary are already removed (as gensim does), but `raw_words` counts
    them: throughput and the learning-rate schedule are in raw corpus words.
    """

    ids: np.ndarray
    sentence_ids: np.ndarray  # int32[len(ids)]: which sentence each kept word belongs to
    raw_words: int


@dataclasses.dataclass
class Vocab:
    words: list[str]
    counts: np.ndarray  # int64[V], descending

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)


def split_sentences(lines) -> list[list[str]]:
    """Whitespace-split lines (empty lines dropped, long ones cut), gensim's LineSentence."""
    sentences = []
    for line in lines:
        words = line.split()
        for i in range(0, len(words), MAX_SENTENCE_LEN):
            sentences.append(words[i:i + MAX_SENTENCE_LEN])
    return sentences


def _lines(path, encoding):
    # Streamed (never the whole text at once); "\r\n" and "\r" end lines too, as they do for
    # a file opened in text mode. A piece ends with "\n", so no "\r\n" is cut in two.
    for piece in TextSlice(pathlib.Path(path), encoding).iter_text():
        yield from piece.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_sentences(path, encoding: str = "utf-8") -> list[list[str]]:
    """The sentences of a text file; a clear error if it is missing, holds no words or is not
    in `encoding` (the error names the line)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"corpus file {path} not found (config.task.corpus_file)")
    sentences = split_sentences(_lines(path, encoding))
    if not sentences:
        raise ValueError(f"corpus file {path} is empty: it holds no words")
    return sentences


def build_vocab(sentences, min_count: int = 5, max_vocab: int = 0, *, source="corpus") -> Vocab:
    """Words seen at least `min_count` times, most frequent first; at most `max_vocab` (0: all)."""
    if min_count < 1:
        raise ValueError(f"config.task.min_count={min_count} must be >= 1")
    counter = collections.Counter()
    for s in sentences:
        counter.update(s)
    # Counter keeps insertion order, and sorted() is stable: ties stay in first-seen order.
    items = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: -wc[1])
    if max_vocab:
        items = items[:max_vocab]
    if not items:
        raise ValueError(f"the vocabulary of {source} is empty: no word occurs "
                         f"config.task.min_count={min_count} times (it has {len(counter)} distinct "
                         "words); lower min_count or use a larger corpus")
    return Vocab([w for w, _ in items], np.array([c for _, c in items], np.int64))


def encode(sentences, vocab: Vocab) -> Corpus:
    ids, sent, raw = [], [], 0
    index = vocab.index
    for k, s in enumerate(sentences):
        raw += len(s)
        kept = [index[w] for w in s if w in index]
        ids.extend(kept)
        sent.extend([k] * len(kept))
    return Corpus(np.asarray(ids, np.int32), np.asarray(sent, np.int32), raw)


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """word2vec's subsampling: P(keep w) = (sqrt(c/t) + 1) * t/c with t = sample * total, capped at 1."""
    counts = np.asarray(counts, np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum((np.sqrt(counts / threshold) + 1.0) * threshold / counts, 1.0)


def noise_distribution(counts, exponent: float = 0.75) -> np.ndarray:
    p = np.asarray(counts, np.float64) ** exponent
    return p / p.sum()


class AliasSampler:
    """Draws from a discrete distribution in O(1) per draw (Walker's alias method).

    Exact, unlike the C tool's finite unigram table, and cheaper per draw than a binary search
    of the cumulative distribution (which was 75% of the numpy pipeline's time).
    """

    def __init__(self, p):
        p = np.asarray(p, np.float64)
        n = len(p)
        scaled = p / p.sum() * n
        self.prob = np.ones(n)
        self.alias = np.arange(n, dtype=np.int32)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            self.prob[s], self.alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)

    def probabilities(self) -> np.ndarray:
        """The distribution the tables encode (for tests)."""
        n = len(self.prob)
        out = self.prob.copy()
        np.add.at(out, self.alias, 1.0 - self.prob)
        return out / n

    def sample(self, rng, shape) -> np.ndarray:
        i = rng.integers(0, len(self.prob), shape, dtype=np.int32)
        return np.where(rng.random(shape, dtype=np.float32) < self.prob[i], i, self.alias[i])


def learning_rates(progress, alpha: float, min_alpha: float) -> np.ndarray:
    """Linear decay from alpha to min_alpha as progress (fraction of all raw words) goes 0 -> 1."""
    return alpha - (alpha - min_alpha) * np.clip(progress, 0.0, 1.0)


def subsample(corpus: Corpus, keep_prob, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, sentence ids, positions in the full corpus) of the words this epoch keeps."""
    mask = rng.random(len(corpus.ids)) < keep_prob[corpus.ids]
    pos = np.flatnonzero(mask)
    return corpus.ids[pos], corpus.sentence_ids[pos], pos


def skipgram_pairs(ids, sent, window: int, rng, shrink=None):
    """All (centre index, context index) pairs, as positions into `ids`, in corpus order.

    `shrink[i]` in [0, window) is how much the centre word's window is reduced (the C tool's
    `b`); it is drawn here unless given. Windows never cross a sentence boundary.
    """
    ctx = cbow_windows(ids, sent, window, rng, shrink)  # [n, 2W], row-major = corpus order
    centre, slot = np.nonzero(ctx >= 0)
    return centre, ctx[centre, slot]


def cbow_windows(ids, sent, window: int, rng, shrink=None):
    """For each centre position: context positions int32[n, 2*window] (-1 where absent)."""
    n = len(ids)
    if shrink is None:
        shrink = rng.integers(0, window, n)
    reach = window - shrink
    ctx = np.full((n, 2 * window), -1, np.int32)
    i = np.arange(n)
    col = 0
    for d in range(1, window + 1):  # one vector op per offset, not per word
        for j in (i - d, i + d):
            ok = (j >= 0) & (j < n) & (reach >= d)
            jc = np.clip(j, 0, n - 1)
            ok &= sent[jc] == sent
            ctx[:, col] = np.where(ok, jc, -1)
            col += 1
    return ctx
