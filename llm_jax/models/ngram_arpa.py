"""ARPA export of a Kneser-Ney NGramLM (the backoff format SRILM, KenLM and Kaldi read).

An ARPA file lists, per order, log10 p(w | h) of its explicit n-grams and log10 backoff
weights of its contexts; p of anything else is bow(h) * p(w | h without its first word). It
holds every n-gram kept by the cutoffs plus every prefix of one (which needs its backoff weight
stored), with the probability the model gives it; `<s>` is a context only (log10 p = -99).
"""

from __future__ import annotations

import io

import numpy as np

from llm_jax.models.ngram import NGramLM

LOG10_E = 1.0 / np.log(10.0)


def _gram_tokens(lm: NGramLM, k: int, ids: np.ndarray) -> np.ndarray:
    """[len(ids), k] token ids of the order-k n-grams `ids`."""
    out = np.empty((len(ids), k), np.int64)
    for j in range(k, 0, -1):
        table = lm.tables[j - 1]
        if table.keys is None:
            out[:, 0] = ids
        else:
            out[:, j - 1] = table.keys[ids] % lm.base
            ids = table.keys[ids] // lm.base
    return out


def _included(lm: NGramLM) -> list[np.ndarray]:
    """Per order, the ids written: kept n-grams and the prefixes of written higher n-grams."""
    counts = lm.kn_counts()
    out = [None] * lm.order
    for k in range(lm.order, 0, -1):
        mask = counts[k - 1] >= lm.cutoffs[k - 1]
        if k == 1:
            mask = np.ones(lm.base, bool)  # every word of the vocabulary, and <s>
        if k < lm.order:
            mask[lm.tables[k].keys[out[k]] // lm.base] = True
        out[k - 1] = np.flatnonzero(mask)
    return out


def write_arpa(lm: NGramLM, path, words) -> dict[int, int]:
    """Writes `lm` to `path`; words[i] names token i (eos is written `</s>`). Returns counts."""
    if lm.log_prob is None:
        raise ValueError(f"smoothing={lm.smoothing!r}: ARPA export needs a backoff model "
                         "(smoothing 'kn' or 'modified_kn')")
    if len(words) != lm.vocab_size:
        raise ValueError(f"words: expected {lm.vocab_size} names, got {len(words)}")
    names = np.array([*words, "<s>"], dtype=object)
    names[lm.eos_id] = "</s>"
    included = _included(lm)
    buf = io.StringIO()
    buf.write("\\data\\\n")
    for k, ids in enumerate(included, start=1):
        buf.write(f"ngram {k}={len(ids)}\n")
    for k, ids in enumerate(included, start=1):
        buf.write(f"\n\\{k}-grams:\n")
        logp = lm.log_prob[k - 1][ids] * LOG10_E
        if k == 1:
            logp[ids == lm.bos_id] = -99.0
        tokens = _gram_tokens(lm, k, ids)
        text = names[tokens[:, 0]]
        for j in range(1, k):
            text = text + " " + names[tokens[:, j]]
        if k < lm.order:
            bow = lm.log_bow[k][ids] * LOG10_E
            lines = [f"{p:.6f}\t{t}\t{b:.6f}\n" for p, t, b in zip(logp, text, bow)]
        else:
            lines = [f"{p:.6f}\t{t}\n" for p, t in zip(logp, text)]
        buf.writelines(lines)
    buf.write("\n\\end\\\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write(buf.getvalue())
    return {k: len(ids) for k, ids in enumerate(included, start=1)}
