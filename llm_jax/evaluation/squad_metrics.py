"""SQuAD v1.1 exact match and F1, as the official evaluate-v1.1.py computes them.

Answers are compared after the official normalisation (lowercase, drop every character of
string.punctuation, drop the words a/an/the, collapse whitespace), in that order: punctuation
goes first, so "state-of-the-art" becomes one token and keeps its "the". F1 is over whitespace
tokens with repeated tokens counted, and each question takes its best score over its gold
answers. v1.1's quirks are kept on purpose, so numbers match published ones: a prediction that
shares no token with a gold answer scores F1 0 even when both normalise to nothing (where
SQuAD v2.0's script gives 1), while exact match still counts those two empty strings equal.
"""

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation removed, articles removed, whitespace collapsed (the official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the two normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 (0-1) of the bag-of-tokens overlap of the normalised answers."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(articles: Sequence[Mapping]) -> dict[str, list[str]]:
    """{question id: its gold answer texts} from a SQuAD file's "data" list of articles."""
    return {qa["id"]: [answer["text"] for answer in qa["answers"]]
            for article in articles for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


def squad_scores(predictions: Mapping[str, str], gold) -> dict:
    """{"exact_match", "f1"} (0-100) over every gold question, and how many were "missing".

    `gold` is either a SQuAD file's "data" list of articles or a mapping from question id to its
    list of gold answer texts. Like the official script, the mean is over the gold questions: one
    without a prediction scores 0 (and is counted in "missing"), a prediction for a question not
    in the gold set is ignored.
    """
    answers = gold_answers(gold) if isinstance(gold, Sequence) else gold
    if not answers:
        raise ValueError("the gold set has no questions")
    em = f1 = 0.0
    missing = 0
    for qid, golds in answers.items():
        if isinstance(golds, str) or not golds:
            raise ValueError(f"gold answers of question {qid!r} must be a non-empty list of strings, "
                             f"got {golds!r}")
        if qid not in predictions:
            missing += 1
            continue
        prediction = predictions[qid]
        if not isinstance(prediction, str):
            raise ValueError(f"prediction for question {qid!r} must be a string, "
                             f"got {type(prediction).__name__}")
        em += max(exact_match(prediction, g) for g in golds)
        f1 += max(token_f1(prediction, g) for g in golds)
    total = len(answers)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total, "missing": missing, "total": total}
