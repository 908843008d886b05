"""One epoch of word2vec training examples as stacked numpy chunks (vectorised, seeded).

A chunk holds `steps` SGD batches of `batch_size` examples: the train step scans over its
leading axis inside one jit call, so Python and dispatch cost is paid once per chunk.

  skip-gram: inputs int32[S, B] (context word, whose vector is h), targets int32[S, B]
  CBOW:      inputs int32[S, B, 2W] (context words, -1 absent), targets int32[S, B]
  both:      weights float32[S, B] (0 on padding), lr float32[S],
             negatives int32[S, B, K] for negative sampling (the tree comes from the task).
"""

from __future__ import annotations

import numpy as np

from llm_jax.data import word2vec_data as wd

# Kept words per block of pair generation: bounds the epoch's pair arrays in memory.
SEGMENT_WORDS = 1 << 18


class EpochBatches:
    def __init__(self, corpus: wd.Corpus, keep_prob, noise: wd.AliasSampler, *, architecture: str,
                 window: int, negative: int, batch_size: int, steps: int, seed: int,
                 shuffle: bool = False):
        self.corpus, self.keep_prob, self.noise = corpus, keep_prob, noise
        self.architecture, self.window, self.negative = architecture, window, negative
        self.batch_size, self.steps, self.seed, self.shuffle = batch_size, steps, seed, shuffle

    def _segments(self, rng, segment_words=SEGMENT_WORDS):
        """(inputs, targets, corpus position of each example), a block of whole sentences at a time.

        Windows never cross sentences, so blocks cut at sentence starts give exactly the epoch's
        examples, in corpus order, while holding only one block's pairs in memory.
        """
        ids, sent, pos = wd.subsample(self.corpus, self.keep_prob, rng)
        starts = np.flatnonzero(np.diff(sent, prepend=-1))  # first kept word of each sentence
        cuts = np.unique(starts[np.searchsorted(starts, np.arange(0, len(ids), segment_words))])
        for a, b in zip(cuts, list(cuts[1:]) + [len(ids)]):
            yield self._examples(ids[a:b], sent[a:b], pos[a:b], rng)

    def _examples(self, ids, sent, pos, rng):
        if self.architecture == "sg":
            centre, context = wd.skipgram_pairs(ids, sent, self.window, rng)
            # gensim's sg predicts the centre word from each context word's vector.
            return ids[context], ids[centre], pos[centre]
        ctx = wd.cbow_windows(ids, sent, self.window, rng)
        has_ctx = (ctx >= 0).any(axis=1)
        ctx, centre = ctx[has_ctx], np.flatnonzero(has_ctx)
        inputs = np.where(ctx >= 0, ids[np.maximum(ctx, 0)], -1).astype(np.int32)
        return inputs, ids[centre], pos[centre]

    def _filled(self, rng):
        """Blocks of exactly steps * batch_size examples (the last one shorter)."""
        per_chunk = self.steps * self.batch_size
        pending = None
        for seg in self._segments(rng):
            pending = seg if pending is None else tuple(np.concatenate(x) for x in zip(pending, seg))
            while len(pending[1]) >= per_chunk:
                yield tuple(x[:per_chunk] for x in pending)
                pending = tuple(x[per_chunk:] for x in pending)
        if pending is not None and len(pending[1]):
            yield pending

    def epoch(self, epoch: int, num_epochs: int, alpha: float, min_alpha: float):
        """Yields (chunk dict, raw corpus words the chunk covers)."""
        rng = np.random.default_rng([self.seed, epoch])
        n_words = max(len(self.corpus.ids), 1)
        per_chunk = self.steps * self.batch_size
        S, B = self.steps, self.batch_size
        done_words = 0
        blocks = list_ahead(self._filled(rng))
        for (inputs, targets, pos), last in blocks:
            n = len(targets)
            if self.shuffle:
                # Neighbouring CBOW windows share most context words; spread them over the chunk's
                # batches so one batch does not sum many updates computed from the same stale rows.
                order = rng.permutation(n)
                inputs, targets = inputs[order], targets[order]
            pad = per_chunk - n
            inp = np.pad(inputs, [(0, pad)] + [(0, 0)] * (inputs.ndim - 1))
            step_pos = pos[np.minimum(np.arange(0, per_chunk, B), n - 1)]
            progress = (epoch + step_pos / n_words) / num_epochs
            chunk = dict(inputs=inp.reshape(S, B, *inp.shape[1:]),
                         targets=np.pad(targets, (0, pad)).reshape(S, B),
                         weights=np.pad(np.ones(n, np.float32), (0, pad)).reshape(S, B),
                         lr=wd.learning_rates(progress, alpha, min_alpha).astype(np.float32))
            if self.negative:
                draws = self.noise.sample(rng, (per_chunk, self.negative))
                chunk["negatives"] = draws.astype(np.int32).reshape(S, B, self.negative)
            # raw words covered: the corpus span up to the last example, scaled to raw words
            end_words = self.corpus.raw_words if last else int(pos[-1] / n_words * self.corpus.raw_words)
            yield chunk, end_words - done_words
            done_words = end_words


def list_ahead(iterator):
    """(item, is_last) pairs, looking one item ahead."""
    it = iter(iterator)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True
