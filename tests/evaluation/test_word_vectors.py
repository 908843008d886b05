"""Analogy and similarity scores agree with gensim's; bad evaluation files fail or are reported."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from llm_jax.evaluation.word_vectors import WordVectors, read_analogies, read_similarities

WORDS = ["the", "king", "queen", "man", "woman", "paris", "france", "berlin", "germany", "The", "KING"]


def _vectors(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(len(WORDS), 6)).astype(np.float32)
    v[2] = v[1] - v[3] + v[4] + 0.05 * rng.normal(size=6)  # king - man + woman ~ queen
    v[8] = v[7] - v[5] + v[6] + 0.05 * rng.normal(size=6)
    return v


ANALOGIES = """: royals
man king woman queen
man woman king queen
: capitals
paris france berlin germany
france paris germany berlin
paris france rome italy
"""


def _gensim(vectors):
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(WORDS, vectors)
    return kv


@pytest.mark.parametrize("restrict", [11, 8])
def test_analogies_match_gensim(tmp_path, restrict):
    path = tmp_path / "q.txt"
    path.write_text(ANALOGIES)
    for seed in range(3):
        v = _vectors(seed)
        ours = WordVectors(WORDS, v).evaluate_analogies(path, restrict_vocab=restrict)
        score, sections = _gensim(v).evaluate_word_analogies(str(path), restrict_vocab=restrict)
        assert ours["accuracy"] == pytest.approx(score)
        for mine, theirs in zip(ours["sections"], sections):
            assert mine["correct"] == len(theirs["correct"])
            assert mine["total"] == len(theirs["correct"]) + len(theirs["incorrect"])
    assert ours["skipped"] == (1 if restrict == 11 else 3)  # rome/italy unknown; germany cut off
    assert ours["malformed"] == 0


def test_similarity_matches_gensim(tmp_path):
    path = tmp_path / "sim.tsv"
    rows = [("king", "queen", 8.0), ("man", "woman", 7.5), ("paris", "france", 6.0),
            ("the", "germany", 1.0), ("berlin", "man", 2.0), ("rome", "italy", 5.0)]
    path.write_text("# comment\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    v = _vectors()
    ours = WordVectors(WORDS, v).evaluate_similarity(path)
    pearson, spearman, oov = _gensim(v).evaluate_word_pairs(str(path))
    assert ours["spearman"] == pytest.approx(spearman.statistic)
    assert ours["pearson"] == pytest.approx(pearson.statistic, rel=1e-5)
    assert ours["skipped"] == 1 and oov == pytest.approx(100 / 6)


def test_malformed_lines_are_counted_with_line_numbers(tmp_path):
    q = tmp_path / "q.txt"
    q.write_text(": s\nman king woman queen\nonly three words\nman king woman queen extra\n")
    sections, malformed = read_analogies(q)
    assert [n for n, _ in malformed] == [3, 4] and len(sections[0][1]) == 1
    result = WordVectors(WORDS, _vectors()).evaluate_analogies(q)
    assert result["malformed"] == 2 and result["malformed_lines"] == [3, 4]
    s = tmp_path / "s.tsv"
    s.write_text("king\tqueen\t8\nman\twoman\tnot-a-number\nparis france 3\nthe\tman\t1\n")
    pairs, bad = read_similarities(s)
    assert len(pairs) == 2 and [n for n, _ in bad] == [2, 3]
    assert WordVectors(WORDS, _vectors()).evaluate_similarity(s)["malformed"] == 2


def test_bad_evaluation_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="analogy file .*missing.txt"):
        read_analogies(tmp_path / "missing.txt")
    junk = tmp_path / "junk.tsv"
    junk.write_text("a b\nc\n")
    with pytest.raises(ValueError, match=r"junk.tsv holds no .*2 malformed"):
        read_similarities(junk)
    with pytest.raises(ValueError, match=r"junk.tsv holds no questions"):
        read_analogies(junk)


def test_nearest_neighbours():
    v = _vectors()
    v[3] = v[1] * 2  # "man" points the same way as "king"
    got = WordVectors(WORDS, v).nearest("king", 3)
    assert got[0][0] == "man" and got[0][1] == pytest.approx(1.0, abs=1e-6)
    assert all(w != "king" for w, _ in got)
    with pytest.raises(KeyError, match="nope"):
        WordVectors(WORDS, v).nearest("nope")
