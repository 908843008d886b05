"""GLUE metrics, computed as Hugging Face's run_glue.py (through the `glue` metric) computes them.

Each task reports what the GLUE leaderboard shows for it: Matthews correlation for CoLA, F1 of
the positive class and accuracy for MRPC and QQP, Pearson and Spearman correlation for STS-B, and
accuracy for the rest. Where a task has two numbers, "combined_score" is their mean, as run_glue
adds it; that mean is the single number the leaderboard averages over tasks. Every value is on
the leaderboard's 0-100 scale, not sklearn's 0-1, so it can be set beside a paper's table.
"""

import numpy as np

_CORRELATION = ("stsb",)
_MATTHEWS = ("cola",)
_F1_AND_ACCURACY = ("mrpc", "qqp")
_ACCURACY = ("sst2", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli")
TASKS = _MATTHEWS + _F1_AND_ACCURACY + _CORRELATION + _ACCURACY


def _scores(task: str, predictions: np.ndarray, labels: np.ndarray) -> dict:
    """The task's metrics on sklearn's and scipy's 0-1 scale (argument order y_true, y_pred)."""
    if task in _MATTHEWS:
        from sklearn.metrics import matthews_corrcoef

        return {"matthews_correlation": matthews_corrcoef(labels, predictions)}
    if task in _CORRELATION:
        from scipy.stats import pearsonr, spearmanr

        return {"pearson": pearsonr(predictions, labels)[0], "spearmanr": spearmanr(predictions, labels)[0]}
    accuracy = {"accuracy": np.mean(predictions == labels)}
    if task in _F1_AND_ACCURACY:
        from sklearn.metrics import f1_score

        # Binary F1 of label 1 (a paraphrase / duplicate), not a macro average: GLUE's definition.
        return accuracy | {"f1": f1_score(labels, predictions)}
    return accuracy


def glue_metrics(task: str, predictions, labels) -> dict:
    """The GLUE metrics of `task` (0-100), plus "combined_score" where the task has two.

    `predictions` and `labels` are 1-D: class ids (argmax of the logits, not the logits), or
    real-valued similarity scores for "stsb".
    """
    if task not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(TASKS)}")
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"{task}: predictions and labels must be 1-D, got shapes "
                         f"{predictions.shape} and {labels.shape}")
    if len(predictions) != len(labels):
        raise ValueError(f"{task}: {len(predictions)} predictions for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError(f"{task}: no predictions to score")
    out = {k: 100.0 * float(v) for k, v in _scores(task, predictions, labels).items()}
    if len(out) > 1:
        out["combined_score"] = sum(out.values()) / len(out)
    return out
