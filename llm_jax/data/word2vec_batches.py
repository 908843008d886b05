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


class EpochBatches:
    def __init__(self, corpus: wd.Corpus, keep_prob, noise: wd.AliasSampler, *, architecture: str,
                 window: int, negative: int, batch_size: int, steps: int, seed: int):
        self.corpus, self.keep_prob, self.noise = corpus, keep_prob, noise
        self.architecture, self.window, self.negative = architecture, window, negative
        self.batch_size, self.steps, self.seed = batch_size, steps, seed

    def _examples(self, rng):
        """(inputs, targets, corpus fraction of each example) for one epoch, in corpus order."""
        ids, sent, pos = wd.subsample(self.corpus, self.keep_prob, rng)
        if self.architecture == "sg":
            centre, context = wd.skipgram_pairs(ids, sent, self.window, rng)
            # gensim's sg predicts the centre word from each context word's vector.
            return ids[context], ids[centre], pos[centre]
        ctx = wd.cbow_windows(ids, sent, self.window, rng)
        has_ctx = (ctx >= 0).any(axis=1)
        ctx, centre = ctx[has_ctx], np.flatnonzero(has_ctx)
        inputs = np.where(ctx >= 0, ids[np.maximum(ctx, 0)], -1).astype(np.int32)
        return inputs, ids[centre], pos[centre]

    def epoch(self, epoch: int, num_epochs: int, alpha: float, min_alpha: float):
        """Yields (chunk dict, raw corpus words the chunk covers)."""
        rng = np.random.default_rng([self.seed, epoch])
        inputs, targets, pos = self._examples(rng)
        n_words = max(len(self.corpus.ids), 1)
        per_chunk = self.steps * self.batch_size
        done_words = 0
        for start in range(0, len(targets), per_chunk):
            stop = min(start + per_chunk, len(targets))
            n = stop - start
            pad = per_chunk - n
            inp = np.pad(inputs[start:stop], [(0, pad)] + [(0, 0)] * (inputs.ndim - 1))
            tgt = np.pad(targets[start:stop], (0, pad))
            wgt = np.pad(np.ones(n, np.float32), (0, pad))
            step_pos = pos[np.minimum(np.arange(start, start + per_chunk, self.batch_size),
                                      len(pos) - 1)]
            progress = (epoch + step_pos / n_words) / num_epochs
            S, B = self.steps, self.batch_size
            chunk = dict(inputs=inp.reshape(S, B, *inp.shape[1:]), targets=tgt.reshape(S, B),
                         weights=wgt.reshape(S, B),
                         lr=wd.learning_rates(progress, alpha, min_alpha).astype(np.float32))
            if self.negative:
                draws = self.noise.sample(rng, (per_chunk, self.negative))
                chunk["negatives"] = draws.astype(np.int32).reshape(S, B, self.negative)
            # raw words covered: the corpus span up to the last example, scaled to raw words
            end_words = self.corpus.raw_words if stop == len(targets) else int(
                pos[stop - 1] / n_words * self.corpus.raw_words)
            yield chunk, end_words - done_words
            done_words = end_words
