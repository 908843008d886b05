"""GLUE metrics (evaluation/glue_metrics.py) against numpy written from the definitions: Matthews
from the confusion matrix, F1 from its counts, Pearson from np.corrcoef, Spearman as Pearson of
ranks; small hand-worked cases; bad input."""

import math

import numpy as np
import pytest

from llm_jax.evaluation.glue_metrics import TASKS, glue_metrics


def _confusion(pred, label):
    tp = np.sum((pred == 1) & (label == 1))
    tn = np.sum((pred == 0) & (label == 0))
    fp = np.sum((pred == 1) & (label == 0))
    fn = np.sum((pred == 0) & (label == 1))
    return float(tp), float(tn), float(fp), float(fn)


@pytest.mark.parametrize("seed", range(5))
def test_cola_is_matthews_from_the_confusion_matrix(seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, label, 1 - label)
    tp, tn, fp, fn = _confusion(pred, label)
    want = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert glue_metrics("cola", pred, label) == {"matthews_correlation": pytest.approx(100 * want, abs=1e-9)}


def test_cola_by_hand():
    # tp=1, fp=1, tn=2, fn=0: (1*2 - 1*0) / sqrt(2*1*3*2) = 2/sqrt(12) = 1/sqrt(3).
    got = glue_metrics("cola", [1, 1, 0, 0], [1, 0, 0, 0])
    assert got["matthews_correlation"] == pytest.approx(100 / math.sqrt(3), abs=1e-12)
    # sklearn's convention for a constant prediction (denominator 0) is 0, not nan.
    assert glue_metrics("cola", [1, 1, 1, 1], [1, 0, 0, 1]) == {"matthews_correlation": 0.0}


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
@pytest.mark.parametrize("seed", range(3))
def test_mrpc_qqp_are_positive_class_f1_and_accuracy(task, seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.8, label, rng.integers(0, 2, 300))
    tp, tn, fp, fn = _confusion(pred, label)
    f1, acc = 2 * tp / (2 * tp + fp + fn), (tp + tn) / len(label)
    got = glue_metrics(task, pred, label)
    assert list(got) == ["accuracy", "f1", "combined_score"]
    assert got["accuracy"] == pytest.approx(100 * acc, abs=1e-9)
    assert got["f1"] == pytest.approx(100 * f1, abs=1e-9)
    assert got["combined_score"] == pytest.approx(50 * (acc + f1), abs=1e-9)


def test_mrpc_f1_is_of_label_one_not_macro():
    # tp=1, fp=0, fn=2, tn=2: accuracy 3/5; F1 of label 1 = 2/(2+0+2) = 1/2
    # (macro F1 would average in label 0's F1 = 4/(4+2+0) = 2/3).
    got = glue_metrics("mrpc", [1, 0, 0, 0, 0], [1, 1, 1, 0, 0])
    assert got == {"accuracy": pytest.approx(60.0), "f1": pytest.approx(50.0),
                   "combined_score": pytest.approx(55.0)}


@pytest.mark.parametrize("seed", range(5))
def test_stsb_is_pearson_and_spearman(seed):
    rng = np.random.default_rng(seed)
    label = rng.uniform(0, 5, 100)
    pred = label + rng.normal(0, 1.5, 100)
    pearson = np.corrcoef(pred, label)[0, 1]
    ranks = lambda x: np.argsort(np.argsort(x))  # continuous draws: no ties
    spearman = np.corrcoef(ranks(pred), ranks(label))[0, 1]
    got = glue_metrics("stsb", pred, label)
    assert got["pearson"] == pytest.approx(100 * pearson, abs=1e-9)
    assert got["spearmanr"] == pytest.approx(100 * spearman, abs=1e-9)
    assert got["combined_score"] == pytest.approx(50 * (pearson + spearman), abs=1e-9)


def test_stsb_spearman_with_ties_uses_average_ranks():
    # Ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; of [1, 2, 3, 4] themselves.
    # Centred: [-1.5, 0, 0, 1.5] and [-1.5, -0.5, 0.5, 1.5]: cov 4.5, norms sqrt(4.5) and sqrt(5),
    # so rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
    got = glue_metrics("stsb", [1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert got["spearmanr"] == pytest.approx(100 * math.sqrt(0.9), abs=1e-9)
    assert got["pearson"] == pytest.approx(100 * math.sqrt(0.9), abs=1e-9)  # same numbers, centred alike


@pytest.mark.parametrize("task", ["sst2", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli"])
def test_accuracy_tasks(task):
    rng = np.random.default_rng(len(task))
    label = rng.integers(0, 3 if task.startswith("mnli") else 2, 150)
    pred = np.where(rng.random(150) < 0.6, label, rng.integers(0, 2, 150))
    got = glue_metrics(task, list(pred), list(label))
    assert got == {"accuracy": pytest.approx(100 * np.mean(pred == label), abs=1e-12)}


def test_accuracy_by_hand():
    assert glue_metrics("rte", [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 75.0}


def test_every_value_is_a_python_float():
    for task in TASKS:
        got = glue_metrics(task, [0, 1, 1, 0, 1], [0, 1, 0, 0, 1])
        assert {type(v) for v in got.values()} == {float}, task


def test_unknown_task_names_it_and_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown GLUE task 'sst-2'; known: cola, mrpc, .*qnli, rte, wnli$"):
        glue_metrics("sst-2", [0], [0])


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"^cola: 3 predictions for 2 labels$"):
        glue_metrics("cola", [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"^sst2: predictions and labels must be 1-D, "
                                         r"got shapes \(2, 2\) and \(2,\)$"):
        glue_metrics("sst2", [[0.1, 0.9], [0.8, 0.2]], [1, 0])
    with pytest.raises(ValueError, match=r"^qnli: no predictions to score$"):
        glue_metrics("qnli", [], [])
