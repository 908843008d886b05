"""Word-vector evaluation: analogies (3CosAdd), word similarity (Spearman's rho), neighbours.

Scored as gensim's KeyedVectors.evaluate_word_analogies / evaluate_word_pairs do (case-insensitive,
only the `restrict_vocab` most frequent words, questions with an unknown word skipped and
counted), so the two libraries' numbers are comparable. Unlike gensim, a malformed line is not
skipped silently: it is counted, and reported with its line number.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import stats


def _open_eval_file(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path} not found")
    with open(path, encoding="utf-8", errors="replace") as f:
        return path, f.read().splitlines()


def read_analogies(path):
    """(sections [(name, [(a, b, c, d), ...])], malformed [(line number, text)]) of an analogy file.

    Format: ': SECTION NAME' lines, then one 'a b c d' question per line (a is to b as c is to d).
    """
    path, lines = _open_eval_file(path, "analogy")
    sections, malformed = [], []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            sections.append((line.lstrip(":").strip(), []))
            continue
        parts = line.split()
        if len(parts) != 4 or not sections:
            malformed.append((no, line))
            continue
        sections[-1][1].append(tuple(p.upper() for p in parts))
    if not any(qs for _, qs in sections):
        raise ValueError(f"analogy file {path} holds no questions ({len(malformed)} malformed lines; "
                         "expected ': section' headers and 'a b c d' lines)")
    return sections, malformed


def read_similarities(path):
    """([(w1, w2, score)], malformed [(line number, text)]): tab-separated, '#' lines are comments."""
    path, lines = _open_eval_file(path, "similarity")
    pairs, malformed = [], []
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 3:
                raise ValueError
            pairs.append((parts[0].strip().upper(), parts[1].strip().upper(), float(parts[2])))
        except ValueError:
            malformed.append((no, line))
    if not pairs:
        raise ValueError(f"similarity file {path} holds no 'word1<TAB>word2<TAB>score' lines "
                         f"({len(malformed)} malformed)")
    return pairs, malformed


class WordVectors:
    """Words (most frequent first) and their vectors, with unit-normalised rows for cosines."""

    def __init__(self, words, vectors):
        self.words = list(words)
        self.vectors = np.asarray(vectors, np.float32)
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit = self.vectors / np.maximum(norms, 1e-12)
        self.index = {w: i for i, w in enumerate(self.words)}

    def _upper_index(self, limit):
        """Upper-cased word -> row, among the first `limit` rows; the most frequent variant wins."""
        return {w.upper(): i for i, w in reversed(list(enumerate(self.words[:limit])))}

    def nearest(self, word, topn=10):
        if word not in self.index:
            raise KeyError(f"word {word!r} is not in the vocabulary")
        i = self.index[word]
        sims = self.unit @ self.unit[i]
        sims[i] = -np.inf
        top = np.argsort(-sims)[:topn]
        return [(self.words[j], float(sims[j])) for j in top]

    def evaluate_analogies(self, path, restrict_vocab=30000, batch=512):
        sections, malformed = read_analogies(path)
        ok = self._upper_index(restrict_vocab)
        unit = self.unit[:restrict_vocab]
        upper_words = [w.upper() for w in self.words[:restrict_vocab]]
        out, total_right, total_asked, total_skipped = [], 0, 0, 0
        for name, questions in sections:
            known = [q for q in questions if all(w in ok for w in q)]
            skipped = len(questions) - len(known)
            right = 0
            for s in range(0, len(known), batch):
                q = np.array([[ok[w] for w in qs] for qs in known[s:s + batch]])
                query = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]  # 3CosAdd: b - a + c
                scores = query @ unit.T
                rows = np.arange(len(q))[:, None]
                scores[rows, q[:, :3]] = -np.inf  # the question's own words are never answers
                for r, order in enumerate(np.argsort(-scores, axis=1)[:, :5]):
                    asked = {known[s + r][0], known[s + r][1], known[s + r][2]}
                    guess = next((upper_words[j] for j in order if upper_words[j] not in asked), None)
                    right += guess == known[s + r][3]
            out.append(dict(section=name, correct=right, total=len(known), skipped=skipped,
                            accuracy=right / len(known) if known else float("nan")))
            total_right, total_asked, total_skipped = (total_right + right, total_asked + len(known),
                                                       total_skipped + skipped)
        return dict(accuracy=total_right / total_asked if total_asked else float("nan"),
                    correct=total_right, total=total_asked, skipped=total_skipped,
                    malformed=len(malformed), malformed_lines=[n for n, _ in malformed[:20]],
                    sections=out, file=os.fspath(path), restrict_vocab=restrict_vocab)

    def evaluate_similarity(self, path, restrict_vocab=300000):
        pairs, malformed = read_similarities(path)
        ok = self._upper_index(restrict_vocab)
        known = [(a, b, s) for a, b, s in pairs if a in ok and b in ok]
        if len(known) < 2:
            raise ValueError(f"similarity file {path}: only {len(known)} pairs have both words in the "
                             "vocabulary; Spearman's rho needs at least 2")
        model = [float(self.unit[ok[a]] @ self.unit[ok[b]]) for a, b, _ in known]
        gold = [s for _, _, s in known]
        return dict(spearman=float(stats.spearmanr(gold, model).statistic),
                    pearson=float(stats.pearsonr(gold, model).statistic),
                    pairs=len(known), skipped=len(pairs) - len(known), malformed=len(malformed),
                    malformed_lines=[n for n, _ in malformed[:20]], file=os.fspath(path))
