"""Entity-level precision/recall/F1 (seqeval) for NER, and joint intent + slot metrics.

By default entities are read as conlleval.pl reads them, which is what CoNLL-2003 papers report
and what seqeval does without a `mode`: a chunk starts at any B-, and also at an I- that follows
O or a tag of another type, so a stray "I-PER" after "O" is a PER entity, and "B-PER I-LOC" is
two entities. `strict=True` reads the tags as strict IOB2 (seqeval's mode="strict", scheme=IOB2):
an entity starts only at B-, so a stray I- (or an I- of a new type) belongs to no entity and is
dropped. The two agree on well-formed IOB2; on a model's broken sequences strict scores lower.
Gold tags must be IOB2 for strict mode: CoNLL-2003's original files are IOB1 (entities start
with I-), which conlleval reads correctly and strict mode does not.
"""

import numpy as np


def validate_iob2(tags: list[str], where: str) -> None:
    """Raise a one-line ValueError naming `where` for a tag that is not O, B-TYPE or I-TYPE."""
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not (tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)):
            raise ValueError(f"{where}: tag {i} is {tag!r}, expected 'O', 'B-TYPE' or 'I-TYPE'")


def _check(true_tags: list[list[str]], pred_tags: list[list[str]]) -> None:
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(pred_tags)} predicted tag sequences for {len(true_tags)} true ones")
    for i, (true, pred) in enumerate(zip(true_tags, pred_tags)):
        if len(true) != len(pred):
            raise ValueError(f"sentence {i}: {len(pred)} predicted tags for {len(true)} true ones")
        validate_iob2(true, f"true_tags[{i}]")
        validate_iob2(pred, f"pred_tags[{i}]")


def entity_scores(true_tags: list[list[str]], pred_tags: list[list[str]], strict: bool = False) -> dict:
    """Micro-averaged entity {"precision", "recall", "f1"} (0-100); see the module doc for `strict`."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    _check(true_tags, pred_tags)
    mode = {"mode": "strict", "scheme": IOB2} if strict else {}
    return {"precision": 100.0 * float(precision_score(true_tags, pred_tags, **mode)),
            "recall": 100.0 * float(recall_score(true_tags, pred_tags, **mode)),
            "f1": 100.0 * float(f1_score(true_tags, pred_tags, **mode))}


def intent_slot_scores(true_intents: list, pred_intents: list, true_slots: list[list[str]],
                       pred_slots: list[list[str]]) -> dict:
    """Joint intent detection and slot filling (ATIS, SNIPS) as JointBERT reports them (0-100).

    "intent_accuracy" is over utterances; "slot_precision/recall/f1" are conlleval entity scores
    over word-level slot tags; "sentence_accuracy" (JointBERT's semantic frame accuracy) counts an
    utterance right only when its intent and every one of its slot tags are right. It compares
    tags, not entities, so "I-city" for a gold "B-city" fails the sentence even though conlleval
    reads both as the same entity.
    """
    if not len(true_intents) == len(pred_intents) == len(true_slots) == len(pred_slots):
        raise ValueError(f"lengths differ: {len(true_intents)} true intents, {len(pred_intents)} predicted, "
                         f"{len(true_slots)} true slot sequences, {len(pred_slots)} predicted")
    if not true_intents:
        raise ValueError("no utterances to score")
    slots = entity_scores(true_slots, pred_slots)
    intent_right = np.array([t == p for t, p in zip(true_intents, pred_intents)])
    slots_right = np.array([list(t) == list(p) for t, p in zip(true_slots, pred_slots)])
    return {"intent_accuracy": 100.0 * float(intent_right.mean()),
            "slot_precision": slots["precision"], "slot_recall": slots["recall"], "slot_f1": slots["f1"],
            "sentence_accuracy": 100.0 * float((intent_right & slots_right).mean())}
