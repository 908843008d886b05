"""SQuAD v1.1 EM/F1 (evaluation/squad_metrics.py) on hand-made predictions whose official scores
are worked out by hand in the comments: normalisation (case, punctuation, articles, whitespace),
several gold answers, partial overlap, repeated tokens, an empty prediction, a missing question;
both gold formats; bad input."""

import pytest

from llm_jax.evaluation import squad_metrics
from llm_jax.evaluation.squad_metrics import exact_match, normalize_answer, squad_scores, token_f1


@pytest.mark.parametrize("text, want", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("  An\tapple\na day ", "apple day"),
    ("banana a theory anthem", "banana theory anthem"),   # only whole words a/an/the go
    ("state-of-the-art", "stateoftheart"),                 # punctuation first: no "the" left to drop
    ("U.S.A. (1776)", "usa 1776"),
    ("don't", "dont"),
    ("The café", "café"),                                  # not ASCII, not punctuation: kept
    ("“Quoted”", "“quoted”"),                              # curly quotes are not in string.punctuation
    ("The. A, an!", ""),
])
def test_normalize_answer(text, want):
    assert normalize_answer(text) == want


def test_exact_match():
    assert exact_match("PARIS.", "paris") == 1.0
    assert exact_match("the Eiffel Tower", "Eiffel tower!") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert exact_match("", "The") == 1.0  # both normalise to ""


@pytest.mark.parametrize("prediction, gold, want", [
    ("Paris", "paris!", 1.0),
    # [big, red, dog] vs [red, dog, barked]: 2 shared; P = R = 2/3, F1 = 2/3.
    ("the big red dog", "a red dog barked", 2 / 3),
    # [red, dog] vs [big, red, dog]: P = 1, R = 2/3, F1 = 2 * (2/3) / (5/3) = 4/5.
    ("red dog", "a big red dog", 4 / 5),
    # Counter overlap: min(3, 1) = 1 "dog"; P = 1/3, R = 1/2, F1 = 2 * (1/6) / (5/6) = 2/5.
    ("dog dog dog", "dog cat", 2 / 5),
    # [a1, b, c, d] vs [a1]: P = 1/4, R = 1, F1 = 2 * (1/4) / (5/4) = 2/5.
    ("a1 b c d", "A1", 2 / 5),
    ("", "Paris", 0.0),
    ("The", "a", 0.0),  # v1.1: no shared token means 0, even for two empty answers
])
def test_token_f1(prediction, gold, want):
    assert token_f1(prediction, gold) == pytest.approx(want, abs=1e-15)


GOLD = {
    "q1": ["Denver Broncos", "The Broncos"],
    "q2": ["Paris"],
    "q3": ["a red dog barked"],
    "q4": ["a big red dog", "blue dog"],
    "q5": ["dog cat"],
    "q6": ["Paris"],
    "q7": ["An"],
    "q8": ["nobody answered this"],
}
PREDICTIONS = {
    "q1": "the Denver Broncos!",  # "denver broncos": EM 1, F1 1 (first gold)
    "q2": "PARIS.",               # "paris": EM 1, F1 1
    "q3": "the big red dog",      # EM 0, F1 2/3
    "q4": "red dog",              # EM 0; F1 max(4/5 with gold 1, 1/2 with gold 2) = 4/5
    "q5": "dog dog dog",          # EM 0, F1 2/5
    "q6": "",                     # empty: EM 0, F1 0
    "q7": "the.",                 # both normalise to "": EM 1, F1 0
    # q8 missing: EM 0, F1 0, counted in the mean
    "extra": "not in the gold set",  # ignored
}
# EM: (1 + 1 + 1) / 8 = 37.5%. F1: (1 + 1 + 2/3 + 4/5 + 2/5) / 8 = (58/15) / 8 = 29/60 = 48.333...%.
WANT = {"exact_match": 37.5, "f1": 100 * 29 / 60, "missing": 1, "total": 8}


def _articles(gold):
    """The SQuAD file layout: two articles, the questions split over three paragraphs."""
    qas = [{"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in texts]}
           for qid, texts in gold.items()]
    return [{"title": "A", "paragraphs": [{"context": "...", "qas": qas[:3]},
                                          {"context": "...", "qas": qas[3:5]}]},
            {"title": "B", "paragraphs": [{"context": "...", "qas": qas[5:]}]}]


def test_scores_by_hand():
    got = squad_scores(PREDICTIONS, GOLD)
    assert got == {**WANT, "f1": pytest.approx(WANT["f1"], abs=1e-12)}


def test_articles_give_the_same_scores():
    assert squad_metrics.gold_answers(_articles(GOLD)) == GOLD
    got = squad_scores(PREDICTIONS, _articles(GOLD))
    assert got == {**WANT, "f1": pytest.approx(WANT["f1"], abs=1e-12)}


def test_all_right_and_all_missing():
    assert squad_scores({"q": "Paris"}, {"q": ["paris"], "r": ["x"]}) == {
        "exact_match": 50.0, "f1": 50.0, "missing": 1, "total": 2}
    assert squad_scores({}, {"q": ["paris"]}) == {"exact_match": 0.0, "f1": 0.0, "missing": 1, "total": 1}


def test_bad_input():
    with pytest.raises(ValueError, match=r"^the gold set has no questions$"):
        squad_scores({"q": "x"}, {})
    with pytest.raises(ValueError, match=r"^gold answers of question 'q' must be a non-empty list of "
                                         r"strings, got 'Paris'$"):
        squad_scores({"q": "Paris"}, {"q": "Paris"})
    with pytest.raises(ValueError, match=r"^gold answers of question 'q' must be a non-empty list"):
        squad_scores({"q": "Paris"}, {"q": []})
    with pytest.raises(ValueError, match=r"^prediction for question 'q' must be a string, got list$"):
        squad_scores({"q": ["Paris"]}, {"q": ["Paris"]})
