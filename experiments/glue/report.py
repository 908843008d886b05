"""The GLUE table and plot of fine-tuned workdirs (configs/glue.py runs).

    python experiments/glue/report.py --workdirs=runs/reproduce/glue/rte_bert_mini,... \
        --out=experiments/glue

Each workdir's task, backbone and seed come from its config.json: the backbone is the name of
the pre-trained workdir it was initialised from (init_from), or "scratch" (a BERT encoder
from random weights; "scratch_elmo", "scratch_gpt" for the other backbones). Its dev numbers are
those of the best periodic evaluation by eval/glue_score, the checkpoint kept in
checkpoints_best/ (every evaluation scores the whole dev set). Seeds of one task and backbone
are reported as mean and range. Beside them: the majority class of the training split scored
on the dev set by the same metric code, and bert-base's dev numbers from Hugging Face's
run_glue.py README (../shared/ANCHORS.md), with our gap to them.

Writes OUT/results.json, OUT/results.md and OUT/scores.png.
"""

import argparse
import collections
import json
import os
import statistics
import sys

from llm_jax.data.glue_data import LABEL_NAMES, read_glue
from llm_jax.data.tokenizers import load_tokenizer
from llm_jax.evaluation.glue_metrics import glue_metrics
from llm_jax.reproduce.backbone_table import backbone_name, read_json
from llm_jax.reproduce.previous_runs import previous_runs

TASK_ORDER = ("cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli")
# bert-base-cased dev numbers of Hugging Face's run_glue.py README (3 epochs, lr 2e-5, batch
# 32, length 128; 5 epochs for MRPC and WNLI), as ../shared/ANCHORS.md lists them, in our
# metric names; the GLUE score of a two-number task is their mean, as run_glue's combined_score
BERT_BASE_DEV = {
    "cola": {"matthews_correlation": 56.53},
    "sst2": {"accuracy": 92.32},
    "mrpc": {"f1": 88.85, "accuracy": 84.07},
    "stsb": {"pearson": 88.64, "spearmanr": 88.48},
    "qnli": {"accuracy": 90.66},
    "rte": {"accuracy": 65.70},
    "wnli": {"accuracy": 56.34},
}

# what a --previous record must hold to be tabled
RECORD_FIELDS = ("workdir", "task", "backbone", "seed", "dev_score", "metrics")


def glue_score(metrics: dict) -> float:
    return sum(metrics.values()) / len(metrics)


def read_run(workdir: str) -> dict:
    """One fine-tuned workdir: task, backbone, seed and the dev metrics of its best evaluation."""
    config = read_json(os.path.join(workdir, "config.json"), "--workdirs")
    task = config.get("task", {}).get("glue_task")
    if not task:
        raise SystemExit(f"--workdirs: {workdir} is not a GLUE run (config.json has no "
                         "task.glue_task)")
    path = os.path.join(workdir, "metrics.jsonl")
    try:
        with open(path) as f:
            evals = [r for r in map(json.loads, f) if "eval/glue_score" in r]
    except (OSError, ValueError) as e:
        raise SystemExit(f"--workdirs: cannot read {path}: {e}") from None
    summary = read_json(os.path.join(workdir, "summary.json"), "--workdirs")
    if not evals:
        raise SystemExit(f"--workdirs: {path} has no eval/glue_score record")
    best = max(evals, key=lambda r: r["eval/glue_score"])  # the first of equal scores, as kept
    # the task's metrics in BERT_BASE_DEV's order (MRPC: F1 then accuracy, as GLUE lists them)
    metrics = {k: best[f"eval/glue_{k}"] for k in BERT_BASE_DEV[task]}
    return {"workdir": workdir, "task": task,
            "backbone": backbone_name(config),
            "seed": config.get("seed", 0), "seq_len": config["data"]["seq_len"],
            "dev_score": best["eval/glue_score"], "metrics": metrics, "best_step": best["step"],
            "steps": summary.get("step"), "wall_minutes": summary.get("wall_time_sec", 0) / 60,
            "over_seq_len": _over_seq_len(workdir, task, config),
            "train_file": config["task"].get("train_file") or "",
            "eval_file": config["task"].get("eval_file") or ""}


def _over_seq_len(workdir, task, config) -> int:
    """Dev examples longer than data.seq_len tokens with the run's own tokenizer and specials
    ([CLS] A [SEP] [B [SEP]]), which the task truncated."""
    dev = read_glue(task, "dev", config["task"].get("eval_file") or None)
    tokenizer = load_tokenizer(os.path.join(workdir, "tokenizer"))
    pairs = dev.text_b or [None] * len(dev)
    lengths = [len(tokenizer.encode(a)) + (len(tokenizer.encode(b)) + 1 if b else 0) + 2
               for a, b in zip(dev.text_a, pairs)]
    return sum(n > config["data"]["seq_len"] for n in lengths)


def majority_class(run: dict) -> dict | None:
    """The training split's most frequent label predicted for every dev example, scored by
    glue_metrics; None for STS-B (a constant has no correlation). The run's own files (a
    user's task.train_file / eval_file), else the data directory's."""
    task = run["task"]
    if LABEL_NAMES[task] is None:
        return None
    train = read_glue(task, "train", run["train_file"] or None)
    dev = read_glue(task, "dev", run["eval_file"] or None)
    label = collections.Counter(train.labels).most_common(1)[0][0]
    scores = glue_metrics(task, [label] * len(dev), dev.labels)
    return {k: scores[k] for k in BERT_BASE_DEV[task]}


def table_rows(runs: list[dict]) -> list[dict]:
    groups = collections.defaultdict(list)
    for r in runs:
        groups[(r["task"], r["backbone"])].append(r)
    rows = []
    for (task, backbone), group in sorted(groups.items(),
                                          key=lambda kv: (TASK_ORDER.index(kv[0][0]), kv[0][1])):
        group.sort(key=lambda r: r["seed"])
        scores = [r["dev_score"] for r in group]
        metrics = {k: statistics.mean(r["metrics"][k] for r in group) for k in group[0]["metrics"]}
        base = BERT_BASE_DEV[task]
        rows.append({"task": task, "backbone": backbone, "seeds": [r["seed"] for r in group],
                     "dev_score": statistics.mean(scores), "dev_score_min": min(scores),
                     "dev_score_max": max(scores), "per_seed": scores, "metrics": metrics,
                     "bert_base_dev_score": glue_score(base),
                     "gap_to_bert_base": statistics.mean(scores) - glue_score(base),
                     "seq_len": group[0]["seq_len"], "over_seq_len": group[0]["over_seq_len"],
                     "wall_minutes": sum(r["wall_minutes"] for r in group)})
    return rows


def _fmt_metrics(metrics: dict) -> str:
    return " / ".join(f"{v:.2f}" for v in metrics.values())


def markdown(rows, majority) -> str:
    lines = ["| task | metric | backbone | seeds | dev (mean) | range | metric values | "
             "majority class | bert-base (HF) | gap | minutes |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        maj = majority.get(r["task"])
        gap = round(r["gap_to_bert_base"], 2) + 0.0  # + 0.0: no "-0.00"
        lines.append(
            f"| {r['task']} | {' / '.join(r['metrics'])} | {r['backbone']} | {len(r['seeds'])} | "
            f"{r['dev_score']:.2f} | {r['dev_score_min']:.2f}-{r['dev_score_max']:.2f} | "
            f"{_fmt_metrics(r['metrics'])} | {'-' if maj is None else _fmt_metrics(maj)} | "
            f"{_fmt_metrics(BERT_BASE_DEV[r['task']])} | {gap:+.2f} | "
            f"{r['wall_minutes']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows, majority, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASK_ORDER if any(r["task"] == t for r in rows)]
    backbones = sorted({r["backbone"] for r in rows})
    width = 0.8 / len(backbones)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.4 * len(tasks) + 3), 4))
    labelled = set()
    for i, backbone in enumerate(backbones):
        for j, task in enumerate(tasks):
            r = next((r for r in rows if r["task"] == task and r["backbone"] == backbone), None)
            if r is None:
                continue
            err = [[r["dev_score"] - r["dev_score_min"]], [r["dev_score_max"] - r["dev_score"]]]
            ax.bar(j - 0.4 + width * (i + 0.5), r["dev_score"], width, yerr=err, color=f"C{i}",
                   label=None if backbone in labelled else backbone)
            labelled.add(backbone)
    for j, task in enumerate(tasks):
        ax.hlines(glue_score(BERT_BASE_DEV[task]), j - 0.45, j + 0.45, colors="k",
                  label="bert-base (HF run_glue dev)" if j == 0 else None)
        if majority.get(task) is not None:
            ax.hlines(glue_score(majority[task]), j - 0.45, j + 0.45, colors="grey",
                      linestyles="dashed", label="majority class" if j == 0 else None)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("dev GLUE score")
    ax.set_title("GLUE dev, best checkpoint of each run (whiskers: range over seeds)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdirs", default="", help="comma-separated fine-tuned workdirs")
    p.add_argument("--out", default="runs/glue_report",
                   help="directory for results.json, results.md and scores.png")
    p.add_argument("--previous", default="",
                   help="comma-separated results.json of earlier reports: their runs join the "
                        "table (a --workdirs entry replaces its own old record)")
    args = p.parse_args(argv)
    workdirs = [w for w in args.workdirs.split(",") if w]
    runs = [read_run(w) for w in workdirs]
    runs += previous_runs(args.previous, workdirs, required=RECORD_FIELDS)
    if not runs:
        raise SystemExit("--workdirs: no workdir given (nor --previous results)")
    rows = table_rows(runs)
    majority = {r["task"]: majority_class(r) for r in runs}
    sst2 = [r["metrics"]["accuracy"] for r in rows if r["task"] == "sst2"]
    results = {"rows": rows, "runs": runs, "majority_class": majority,
               "bert_base_dev": BERT_BASE_DEV,
               "best_sst2_dev_accuracy": max(sst2) if sst2 else None}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    md = markdown(rows, majority)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    plot(rows, majority, os.path.join(args.out, "scores.png"))
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
