"""A backbones x metrics table of fine-tuned workdirs, for an experiment's report.py (SQuAD,
CoNLL-2003 NER): what each run's summary.json says, beside a published reference row and the
gap to it, as OUT/results.json, OUT/results.md and OUT/scores.png.

    main(argv, task="token_tagging", columns={"test_f1": "test/ner_f1", ...},
         reference=("BERT-base (Devlin et al. 2019, Table 7)", {"test_f1": 92.4}), ...)

Each workdir's backbone is the name of the workdir it was initialised from (config.json's
init_from) or "scratch" ("scratch_elmo", "scratch_gpt" for those families); seeds of one
backbone are averaged, with their range. `--previous` takes back the runs of an earlier
results.json (previous_runs.py), so a table can outlive its workdirs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from llm_jax.reproduce.previous_runs import previous_runs

RECORD_FIELDS = ("workdir", "backbone", "seed", "values")


def read_json(path: str, flag: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{flag}: cannot read {path}: {e}") from None


def backbone_name(config: dict) -> str:
    """The init_from workdir's name, or "scratch" (a BERT encoder from random weights;
    "scratch_<family>" for the others)."""
    init_from = config.get("init_from") or ""
    if init_from:
        return os.path.basename(os.path.normpath(init_from))
    kind = config.get("model", {}).get("backbone", {}).get("name", "bert")
    return "scratch" if kind == "bert" else f"scratch_{kind}"


def best_eval(workdir: str, config: dict) -> dict:
    """The metrics.jsonl row of the best evaluation by the run's train.best_metric (the first
    of equal ones: the checkpoint checkpoints_best/ keeps)."""
    metric = config.get("train", {}).get("best_metric")
    path = os.path.join(workdir, "metrics.jsonl")
    try:
        with open(path) as f:
            evals = [r for r in map(json.loads, f) if metric and metric in r]
    except (OSError, ValueError) as e:
        raise SystemExit(f"--workdirs: cannot read {path}: {e}") from None
    if not evals:
        raise SystemExit(f"--workdirs: {path} has no {metric} record (train.best_metric)")
    sign = -1.0 if config["train"].get("best_mode", "max") == "min" else 1.0
    return max(evals, key=lambda r: sign * r[metric])


def read_run(workdir: str, task: str, columns: dict[str, str]) -> dict:
    """The run's backbone, seed, learning rate, steps, minutes and each column's value: a
    summary.json key ("test/ner_f1"), or "best:" and a key of the best evaluation's row
    ("best:eval/squad_exact_match": the value at the step the best checkpoint is of)."""
    config = read_json(os.path.join(workdir, "config.json"), "--workdirs")
    if config.get("task", {}).get("name") != task:
        raise SystemExit(f"--workdirs: {workdir} is not a {task} run (config.json's task.name "
                         f"is {config.get('task', {}).get('name')!r})")
    summary = read_json(os.path.join(workdir, "summary.json"), "--workdirs")
    best = best_eval(workdir, config) if any(k.startswith("best:") for k in columns.values()) else {}
    values = {}
    for name, key in columns.items():
        source, where = (best, "the best evaluation") if key.startswith("best:") else (
            summary, "summary.json")
        key = key.removeprefix("best:")
        if key not in source:
            raise SystemExit(f"--workdirs: {workdir}: {where} has no {key} (a run that has not "
                             "finished, or one without that split)")
        values[name] = source[key]
    return {"workdir": workdir, "backbone": backbone_name(config), "seed": config.get("seed", 0),
            "lr": config.get("optimizer", {}).get("lr"), "steps": summary.get("step"),
            "best_step": best.get("step"), "wall_minutes": summary.get("wall_time_sec", 0) / 60,
            "values": values}


def table_rows(runs: list[dict], reference: dict[str, float]) -> list[dict]:
    """One row per backbone (in first-seen order): each column's mean, range and per-seed
    values over its seeds, and the gap of the mean to `reference`."""
    rows = []
    for backbone in dict.fromkeys(r["backbone"] for r in runs):
        mine = sorted((r for r in runs if r["backbone"] == backbone), key=lambda r: r["seed"])
        row = {"backbone": backbone, "seeds": [r["seed"] for r in mine],
               "wall_minutes": statistics.mean(r["wall_minutes"] for r in mine), "columns": {}}
        for name in mine[0]["values"]:
            values = [r["values"][name] for r in mine]
            mean = statistics.mean(values)
            row[name] = mean  # flat, for a study's Metric(records="rows", where={"backbone"})
            row["columns"][name] = {"mean": mean, "min": min(values), "max": max(values),
                                    "per_seed": values,
                                    "gap_to_reference": (mean - reference[name]
                                                         if name in reference else None)}
        rows.append(row)
    return rows


def markdown(rows, columns, reference_name, reference) -> str:
    names = list(columns)
    lines = ["| backbone | seeds | " + " | ".join(names) + " | minutes |",
             "|---|---:|" + "---:|" * len(names) + "---:|"]
    for row in rows:
        cells = []
        for name in names:
            c = row["columns"][name]
            cell = f"{c['mean']:.2f}"
            if len(row["seeds"]) > 1:
                cell += f" ({c['min']:.2f}-{c['max']:.2f})"
            if c["gap_to_reference"] is not None:
                cell += f" [{c['gap_to_reference']:+.2f}]"
            cells.append(cell)
        lines.append(f"| {row['backbone']} | {len(row['seeds'])} | " + " | ".join(cells)
                     + f" | {row['wall_minutes']:.1f} |")
    lines.append(f"| {reference_name} | - | "
                 + " | ".join(f"{reference[n]:.2f}" if n in reference else "-" for n in names)
                 + " | - |")
    return "\n".join(lines) + "\n"


def plot(rows, columns, reference_name, reference, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(columns)
    bars = {r["backbone"]: [r["columns"][n]["mean"] for n in names] for r in rows}
    bars[reference_name] = [reference.get(n, 0.0) for n in names]
    fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(names) + 0.3 * len(bars), 3.8))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars.items()):
        ax.bar([j - 0.4 + width * (i + 0.5) for j in range(len(names))], values, width,
               label=label, color=f"C{i}")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv, *, description: str, task: str, columns: dict[str, str],
         reference: tuple[str, dict[str, float]], title: str, default_out: str):
    """The report command: --workdirs, --previous, --out (see the module docstring)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workdirs", default="", help=f"comma-separated {task} workdirs")
    p.add_argument("--previous", default="",
                   help="comma-separated results.json of earlier reports: their runs join the "
                        "table (a --workdirs entry replaces its own old record)")
    p.add_argument("--out", default=default_out,
                   help="directory for results.json, results.md and scores.png")
    args = p.parse_args(argv)
    workdirs = [w for w in args.workdirs.split(",") if w]
    runs = [read_run(w, task, columns) for w in workdirs]
    runs += previous_runs(args.previous, workdirs, required=RECORD_FIELDS)
    if not runs:
        raise SystemExit("--workdirs: no workdir given (nor --previous results)")
    reference_name, reference_values = reference
    rows = table_rows(runs, reference_values)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": rows, "runs": runs, "columns": columns,
                   "reference": {"name": reference_name, "values": reference_values}}, f, indent=2)
    md = markdown(rows, columns, reference_name, reference_values)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    plot(rows, columns, reference_name, reference_values, os.path.join(args.out, "scores.png"),
         title)
    sys.stdout.write(md)
    return rows
