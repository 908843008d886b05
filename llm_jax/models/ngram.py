"""Word n-gram language models: maximum likelihood, add-k, interpolated (modified) Kneser-Ney.

    lm = NGramLM.fit(train_ids, vocab_size=V, eos_id=eos, order=5, smoothing="modified_kn")
    lm.perplexity(test_ids)          # every sentence end is predicted and counted; BOS is not
    lm.perplexity(test_ids, exclude=oov)  # SRILM's ngram -ppl: OOVs out of the sum and count
    lm.logprobs(rows)                # natural-log p(row[-1] | row[:-1]) for windows of tokens

Kneser-Ney follows Chen & Goodman (1998), as SRILM's `-kndiscount -interpolate` does: the
highest order uses raw counts, lower orders continuation counts N1+(. w) (n-grams that start
with BOS have no left context and keep raw counts), discounts come from each order's
count-of-counts (one for "kn", D1/D2/D3+ for "modified_kn"), and the unigram level interpolates
with the uniform distribution over the vocabulary. `cutoffs[k-1]` is the smallest count an
n-gram of order k needs to keep its own probability (SRILM's -gtKmin); a cut n-gram keeps its
count in its context's totals and its mass goes to the backoff weight, as in an ARPA file.

mle and add_k use the order's raw counts with the longest history the sentence offers (the
first word of a sentence is conditioned on BOS alone): p = (c(h w) + k) / (c(h) + k V).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from llm_jax.models.ngram_counts import (
    PAD,
    Table,
    check_stream,
    count_tables,
    gram_ids,
    sentence_windows,
)

SMOOTHINGS = ("mle", "add_k", "kn", "modified_kn")


def default_config():
    """`config.model`: the name only; order and smoothing are task fields (config.task)."""
    return ml_collections.ConfigDict(dict(name="ngram"))


def check_options(order, smoothing, k, cutoffs):
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order={order!r}: an n-gram order must be an integer >= 1")
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing={smoothing!r}: expected one of {SMOOTHINGS}")
    if smoothing == "add_k" and not k > 0:
        raise ValueError(f"k={k!r}: add_k smoothing needs k > 0")
    cutoffs = tuple(int(c) for c in cutoffs) if cutoffs else (1,) * order
    if len(cutoffs) != order or min(cutoffs) < 1:
        raise ValueError(f"cutoffs={cutoffs}: expected {order} minimum counts >= 1, one per order")
    if smoothing in ("mle", "add_k") and max(cutoffs) > 1:
        raise ValueError(f"cutoffs={cutoffs}: count cutoffs apply to kn and modified_kn only")
    return cutoffs


def kn_discounts(counts: np.ndarray, modified: bool) -> np.ndarray:
    """[D(0)=0, D(1), D(2), D(3+)] from count-of-counts n1..n4 (Chen & Goodman 1998, eq. 26)."""
    n = np.bincount(np.minimum(counts[counts > 0], 5), minlength=6)[1:5].astype(np.float64)
    if n[0] == 0 or n[1] == 0 or (modified and (n[2] == 0 or n[3] == 0)):
        raise ValueError(f"count-of-counts n1..n4={n.astype(int).tolist()}: too few n-grams to "
                         "estimate Kneser-Ney discounts; use a larger corpus or a lower order")
    y = n[0] / (n[0] + 2 * n[1])
    if not modified:
        return np.array([0.0, y, y, y])
    d = np.array([0.0, 1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.maximum(d, 0.0)


def perplexity(logprobs, exclude=None) -> float:
    """exp(-mean natural-log probability) over the tokens `exclude` (a bool mask) leaves in."""
    logprobs = np.asarray(logprobs, np.float64)
    if exclude is not None:
        exclude = np.asarray(exclude, bool)
        if exclude.shape != logprobs.shape:
            raise ValueError(f"exclude: expected a bool mask of shape {logprobs.shape}, got "
                             f"{exclude.shape}")
        logprobs = logprobs[~exclude]
    if logprobs.size == 0:
        raise ValueError("perplexity of no tokens: every token is excluded")
    return float(np.exp(-logprobs.mean()))  # inf where a token has probability 0 (mle)


class NGramLM:
    def __init__(self, tables, vocab_size, eos_id, smoothing, k=0.0, cutoffs=None,
                 log_prob=None, log_bow=None, discounts=None):
        self.tables, self.vocab_size, self.eos_id = tables, int(vocab_size), int(eos_id)
        self.order = len(tables)
        self.cutoffs = check_options(self.order, smoothing, k, cutoffs)
        self.smoothing = smoothing
        self.k = float(k) if smoothing == "add_k" else 0.0
        self.bos_id, self.base = self.vocab_size, self.vocab_size + 1
        if smoothing in ("kn", "modified_kn") and log_prob is None:
            log_prob, log_bow, discounts = self._estimate_kn()
        self.log_prob, self.log_bow, self.discounts = log_prob, log_bow, discounts
        self._additive_cache = None

    @classmethod
    def fit(cls, tokens, *, vocab_size, eos_id, order, smoothing="modified_kn", k=1.0,
            cutoffs=None):
        """Counts `tokens` (ids in [0, vocab_size), each sentence ended by eos_id)."""
        check_options(order, smoothing, k, cutoffs)
        tokens = check_stream(tokens, vocab_size, eos_id)
        rows = sentence_windows(tokens, eos_id, vocab_size, order)
        tables = count_tables(rows, vocab_size, int((tokens == eos_id).sum()))
        return cls(tables, vocab_size, eos_id, smoothing, k, cutoffs)

    # --- Kneser-Ney ------------------------------------------------------------------------

    def kn_counts(self) -> list[np.ndarray]:
        """Counts each order's estimate uses: raw at the top, continuation counts below."""
        out = []
        for k, table in enumerate(self.tables, start=1):
            if k == self.order:
                c = table.counts.copy()
            else:
                c = np.bincount(self.tables[k].suffix, minlength=table.size).astype(np.int64)
                if table.starts_bos is not None:
                    c[table.starts_bos] = table.counts[table.starts_bos]
            if k == 1:
                c[self.bos_id] = 0  # BOS is a context, never predicted
            out.append(c)
        return out

    def _estimate_kn(self):
        """log P(w | h) of every stored n-gram and log backoff weight of every context."""
        modified = self.smoothing == "modified_kn"
        log_prob, log_bow, discounts = [], [], []
        lower = np.full(self.base, 1.0 / self.vocab_size)  # P_0: uniform over the vocabulary
        for k, (table, c) in enumerate(zip(self.tables, self.kn_counts()), start=1):
            d = kn_discounts(c, modified)
            ctx = table.context(self.base)
            n_ctx = 1 if k == 1 else self.tables[k - 2].size
            seen = c > 0
            total = np.bincount(ctx, weights=c, minlength=n_ctx)
            freed = np.bincount(ctx, weights=d[np.minimum(c, 3)] * seen, minlength=n_ctx)
            safe_total = np.maximum(total, 1e-300)
            gamma = np.where(total > 0, freed / safe_total, 1.0)
            p_lower = lower[table.word(self.base)] if k == 1 else lower[table.suffix]
            discounted = np.maximum(c - d[np.minimum(c, 3)], 0.0) / safe_total[ctx]
            kept = c >= self.cutoffs[k - 1]
            explicit = discounted + gamma[ctx] * p_lower
            # Cut n-grams' discounted mass goes to the backoff weight of their context:
            # bow = (1 - sum_kept p) / (1 - sum_kept p_lower), written so that no large terms
            # cancel (sum over all seen n-grams of discounted = 1 - gamma).
            cut_mass = np.bincount(ctx, weights=discounted * (seen & ~kept), minlength=n_ctx)
            kept_lower = np.bincount(ctx, weights=p_lower * kept, minlength=n_ctx)
            bow = gamma + cut_mass / np.maximum(1.0 - kept_lower, 1e-12)
            bow = np.where(total > 0, bow, 1.0)
            prob = np.where(kept, explicit, bow[ctx] * p_lower)
            with np.errstate(divide="ignore"):
                log_prob.append(np.log(prob))
                log_bow.append(np.log(bow))
            discounts.append(d[1:])
            lower = prob
        return log_prob, log_bow, np.array(discounts)

    # --- scoring ---------------------------------------------------------------------------

    def logprobs(self, rows) -> np.ndarray:
        """Natural-log p(rows[:, -1] | rows[:, :-1]) for int windows [B, order] (see windows)."""
        rows = np.asarray(rows, np.int64)
        if rows.ndim != 2 or rows.shape[1] != self.order:
            raise ValueError(f"rows: expected shape [B, {self.order}], got {rows.shape}")
        ids = gram_ids(self.tables, rows, self.base)
        target = [i[:, -1] for i in ids]                      # target[k]: the k-gram's id
        context = [None] + [ids[k - 1][:, -2] if k > 1 else ids[0][:, -1]
                            for k in range(1, self.order + 1)]
        if self.smoothing in ("mle", "add_k"):
            return self._additive_logprobs(rows, target, context)
        out = np.zeros(len(rows))
        found = np.zeros(len(rows), bool)
        for k in range(self.order, 0, -1):  # the longest stored n-gram, plus backoffs above it
            g = target[k]
            hit = ~found & (g >= 0)
            out[hit] += self.log_prob[k - 1][g[hit]]
            miss = ~found & ~hit & (context[k] >= 0)
            out[miss] += self.log_bow[k - 1][context[k][miss]]
            found |= hit
        out[~found] += -np.log(self.vocab_size)
        return out

    def _additive_logprobs(self, rows, target, context):
        # The longest history inside the sentence: order = number of non-PAD slots.
        m = (rows != PAD).sum(1)
        out = np.empty(len(rows))
        for k, (counts, total) in enumerate(self._additive_counts(), start=1):
            sel = m == k
            g, h = target[k][sel], context[k][sel]
            c = np.where(g >= 0, counts[np.maximum(g, 0)], 0)
            t = np.where(h >= 0, total[np.maximum(h, 0)], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                p = (c + self.k) / (t + self.k * self.vocab_size) if self.k else c / t
                out[sel] = np.log(np.nan_to_num(p, nan=0.0))  # MLE of an unseen history: 0
        return out

    def _additive_counts(self):
        """Per order, (raw counts without BOS, context totals); cached for word-by-word sampling."""
        if self._additive_cache is None:
            self._additive_cache = []
            for k, table in enumerate(self.tables, start=1):
                counts = table.counts.copy()
                if k == 1:
                    counts[self.bos_id] = 0
                n_ctx = 1 if k == 1 else self.tables[k - 2].size
                total = np.bincount(table.context(self.base), weights=counts, minlength=n_ctx)
                self._additive_cache.append((counts, total))
        return self._additive_cache

    def windows(self, tokens) -> np.ndarray:
        """[L, order] windows of a stream (every sentence ended by eos_id), one per token."""
        tokens = check_stream(tokens, self.vocab_size, self.eos_id)
        return sentence_windows(tokens, self.eos_id, self.bos_id, self.order)

    def stream_logprobs(self, tokens) -> np.ndarray:
        return self.logprobs(self.windows(tokens))

    def perplexity(self, tokens, exclude=None) -> float:
        """exp(mean negative log-likelihood) over every token, sentence ends included.

        `exclude`, a bool mask over `tokens`, leaves those tokens out of both the sum and the
        count while they stay in the context of the words after them: with the mask of the
        out-of-vocabulary words this is SRILM's `ngram -ppl`, which scores no OOVs.
        """
        return perplexity(self.stream_logprobs(tokens), exclude)

    def next_token_logprobs(self, history) -> np.ndarray:
        """log p(w | history) for every word w; history: ids since the sentence start."""
        history = [int(t) for t in history]
        if self.eos_id in history or any(not 0 <= t < self.vocab_size for t in history):
            raise ValueError(f"history={history}: expected word ids of one unfinished sentence")
        ctx = ([PAD] * self.order + [self.bos_id] + history)[-(self.order - 1):] \
            if self.order > 1 else []
        rows = np.empty((self.vocab_size, self.order), np.int64)
        rows[:, :-1] = ctx
        rows[:, -1] = np.arange(self.vocab_size)
        return self.logprobs(rows)

    def sample(self, rng: np.random.Generator, max_len: int = 100, prefix=()) -> list[int]:
        """One sentence drawn word by word (ends at eos_id or after max_len words)."""
        out = [int(t) for t in prefix]
        while len(out) < max_len:
            p = np.exp(self.next_token_logprobs(out))
            w = int(rng.choice(self.vocab_size, p=p / p.sum()))
            out.append(w)
            if w == self.eos_id:
                break
        return out

    # --- persistence -----------------------------------------------------------------------

    def save(self, path):
        arrays = dict(vocab_size=self.vocab_size, eos_id=self.eos_id, order=self.order,
                      smoothing=self.smoothing, k=self.k, cutoffs=np.array(self.cutoffs))
        for i, t in enumerate(self.tables):
            arrays[f"counts{i}"] = t.counts
            if t.keys is not None:
                arrays.update({f"keys{i}": t.keys, f"suffix{i}": t.suffix,
                               f"starts_bos{i}": t.starts_bos})
            if self.log_prob is not None:
                arrays[f"log_prob{i}"], arrays[f"log_bow{i}"] = self.log_prob[i], self.log_bow[i]
        if self.discounts is not None:
            arrays["discounts"] = self.discounts
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> NGramLM:
        z = np.load(path)
        order = int(z["order"])
        tables = [Table(z[f"keys{i}"] if i else None, z[f"counts{i}"],
                        z[f"suffix{i}"] if i else None, z[f"starts_bos{i}"] if i else None)
                  for i in range(order)]
        kn = "log_prob0" in z
        return cls(tables, int(z["vocab_size"]), int(z["eos_id"]), str(z["smoothing"]),
                   float(z["k"]), tuple(z["cutoffs"].tolist()),
                   [z[f"log_prob{i}"] for i in range(order)] if kn else None,
                   [z[f"log_bow{i}"] for i in range(order)] if kn else None,
                   z["discounts"] if kn else None)
