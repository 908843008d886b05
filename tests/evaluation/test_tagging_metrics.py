"""Entity scores (evaluation/tagging_metrics.py) on hand-made tag sequences, worked out by hand:
well-formed IOB2 where both modes agree, broken IOB2 (a stray I-, a type change mid-entity) where
conlleval's reading and strict IOB2 differ; tag validation; JointBERT's intent + slot metrics."""

import pytest

from llm_jax.evaluation.tagging_metrics import entity_scores, intent_slot_scores, validate_iob2


def _approx(**want):
    return {k: pytest.approx(v, abs=1e-12) for k, v in want.items()}


# True: PER, LOC, ORG, MISC(2-3) = 4 entities. Predicted: PER, ORG, MISC(2-2) = 3, of which PER and
# ORG are right (MISC has the wrong span). P = 2/3, R = 2/4, F1 = 2*2 / (3+4) = 4/7.
CLEAN_TRUE = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
CLEAN_PRED = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O", "B-MISC", "O"]]


@pytest.mark.parametrize("strict", [False, True])
def test_well_formed_iob2_scores_the_same_in_both_modes(strict):
    got = entity_scores(CLEAN_TRUE, CLEAN_PRED, strict=strict)
    assert got == _approx(precision=100 * 2 / 3, recall=50.0, f1=100 * 4 / 7)


BROKEN_TRUE = [
    ["B-PER", "I-PER", "O", "O"],         # PER(0-1)
    ["B-PER", "B-LOC", "O"],              # PER(0), LOC(1)
    ["O", "B-ORG", "I-ORG", "I-ORG", "O"],  # ORG(1-3)
    ["B-MISC", "O"],                      # MISC(0)
]  # 5 entities
BROKEN_PRED = [
    # conlleval: the stray I-PER after the start begins PER(0-1), right.   strict: no entity.
    ["I-PER", "I-PER", "O", "O"],
    # conlleval: the type change starts LOC(1): PER(0) and LOC(1), both right.   strict: PER(0) only.
    ["B-PER", "I-LOC", "O"],
    # conlleval: ORG(1), LOC(2), ORG(3), all wrong.   strict: ORG(1) (I-LOC, I-ORG dropped), wrong.
    ["O", "B-ORG", "I-LOC", "I-ORG", "O"],
    # conlleval: MISC(1), wrong.   strict: no entity.
    ["O", "I-MISC"],
]


def test_broken_iob2_conlleval_mode():
    # 7 predicted, 3 right, 5 true: P = 3/7, R = 3/5, F1 = 2*3 / (7+5) = 1/2.
    assert entity_scores(BROKEN_TRUE, BROKEN_PRED) == _approx(precision=100 * 3 / 7, recall=60.0, f1=50.0)


def test_broken_iob2_strict_mode():
    # 2 predicted, 1 right, 5 true: P = 1/2, R = 1/5, F1 = 2*1 / (2+5) = 2/7.
    got = entity_scores(BROKEN_TRUE, BROKEN_PRED, strict=True)
    assert got == _approx(precision=50.0, recall=20.0, f1=100 * 2 / 7)


def test_single_cases_that_split_the_modes():
    # A lone stray I-: conlleval reads the gold entity back; strict finds nothing (0 by convention).
    stray = ([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]])
    assert entity_scores(*stray) == {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    with pytest.warns(UserWarning):  # seqeval warns that precision is ill-defined with nothing predicted
        assert entity_scores(*stray, strict=True) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # B-PER I-LOC for gold B-PER B-LOC: two right entities, or one of two (P 1, R 1/2, F1 2/3).
    change = ([["B-PER", "B-LOC", "O"]], [["B-PER", "I-LOC", "O"]])
    assert entity_scores(*change) == {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    assert entity_scores(*change, strict=True) == _approx(precision=100.0, recall=50.0, f1=100 * 2 / 3)


@pytest.mark.parametrize("tag", ["PER", "E-PER", "S-LOC", "B-", "I-", "b-PER", "", "BPER", None])
def test_validate_iob2_rejects(tag):
    want = r"^dev\.txt line 7: tag 1 is .*, expected 'O', 'B-TYPE' or 'I-TYPE'$"
    with pytest.raises(ValueError, match=want):
        validate_iob2(["O", tag], "dev.txt line 7")


def test_validate_iob2_accepts():
    validate_iob2(["O", "B-PER", "I-PER", "I-LOC", "B-fromloc.city_name", "B-B-X"], "x")
    validate_iob2([], "x")
    assert entity_scores([["B-fromloc.city_name"]], [["B-fromloc.city_name"]])["f1"] == 100.0


def test_entity_scores_checks_its_input():
    with pytest.raises(ValueError, match=r"^pred_tags\[1\]: tag 0 is 'E-PER', expected"):
        entity_scores([["O"], ["B-PER"]], [["O"], ["E-PER"]])
    with pytest.raises(ValueError, match=r"^true_tags\[0\]: tag 1 is 'PER', expected"):
        entity_scores([["O", "PER"]], [["O", "O"]])
    with pytest.raises(ValueError, match=r"^sentence 0: 1 predicted tags for 2 true ones$"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match=r"^1 predicted tag sequences for 2 true ones$"):
        entity_scores([["O"], ["O"]], [["O"]])


def test_intent_slot_scores_by_hand():
    true_intents = ["flight", "airfare", "flight", "flight"]
    pred_intents = ["flight", "flight", "flight", "flight"]
    true_slots = [["O", "B-fromloc", "O", "B-toloc"], ["O", "B-city"], ["B-city", "I-city", "O"],
                  ["O", "B-date"]]
    pred_slots = [["O", "B-fromloc", "O", "B-toloc"], ["O", "B-city"], ["B-city", "O", "O"],
                  ["O", "I-date"]]
    # Intents: 3 of 4 right. Sentences: only the first has its intent and every tag right (the second
    # misses its intent, the third a tag, the fourth reads "I-date" for "B-date") = 1/4.
    # Slots (conlleval): true fromloc, toloc, city, city(0-1), date; predicted fromloc, toloc, city,
    # city(0), date (the I-date starts it): 4 of 5 right each way, so P = R = F1 = 4/5.
    got = intent_slot_scores(true_intents, pred_intents, true_slots, pred_slots)
    assert got == _approx(intent_accuracy=75.0, slot_precision=80.0, slot_recall=80.0, slot_f1=80.0,
                          sentence_accuracy=25.0)


def test_intent_slot_scores_bad_input():
    with pytest.raises(ValueError, match=r"^lengths differ: 2 true intents, 1 predicted, "
                                         r"2 true slot sequences, 2 predicted$"):
        intent_slot_scores(["a", "b"], ["a"], [["O"], ["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match=r"^no utterances to score$"):
        intent_slot_scores([], [], [], [])
