"""The ATIS / SNIPS table and plot of intent+slots workdirs (configs/intent_slots.py runs).

    python experiments/atis_snips/report.py \
        --workdirs=runs/reproduce/atis_snips/atis_bert_mini,... --out=experiments/atis_snips

Each workdir's corpus and backbone come from its config.json (the backbone: the name of the
init_from workdir, or "scratch"). Test numbers are the run's end-of-training scores of the
test split (summary.json test/*: its last state, as JointBERT reports); dev numbers are the
best periodic evaluation by sentence accuracy (the checkpoint in checkpoints_best/). Beside
them, the published test rows of ../shared/data/README.md: slot-gated (Goo et al. 2018),
JointBERT (Chen et al. 2019) and monologg/JointBERT's reproduction.

Writes OUT/results.json, OUT/results.md and OUT/scores.png.
"""

import argparse
import json
import os
import sys

from llm_jax.reproduce.backbone_table import backbone_name, read_json
from llm_jax.reproduce.previous_runs import previous_runs

METRICS = ("intent_accuracy", "slot_f1", "sentence_accuracy")
# test intent accuracy / slot F1 / sentence accuracy, as ../shared/data/README.md lists them
PUBLISHED = {
    "atis": {"slot-gated (Goo et al. 2018, Table 2)": (93.6, 94.8, 82.2),
             "JointBERT (Chen et al. 2019, Table 2)": (97.5, 96.1, 88.2),
             "monologg/JointBERT README (bert-base-uncased)": (97.87, 95.59, 88.24)},
    "snips": {"slot-gated (Goo et al. 2018, Table 2)": (97.0, 88.8, 75.5),
              "JointBERT (Chen et al. 2019, Table 2)": (98.6, 97.0, 92.8),
              "monologg/JointBERT README (bert-base-uncased)": (99.14, 96.90, 93.00)},
}

# what a --previous record must hold to be tabled
RECORD_FIELDS = ("workdir", "corpus", "backbone", "test", "dev_best")


def read_run(workdir: str) -> dict:
    config = read_json(os.path.join(workdir, "config.json"), "--workdirs")
    corpus = config.get("task", {}).get("corpus")
    if config.get("task", {}).get("name") != "intent_slots" or not corpus:
        raise SystemExit(f"--workdirs: {workdir} is not an intent+slots run (config.json's "
                         "task.name is not intent_slots)")
    summary = read_json(os.path.join(workdir, "summary.json"), "--workdirs")
    missing = [m for m in METRICS if f"test/{m}" not in summary]
    if missing:
        raise SystemExit(f"--workdirs: {workdir}/summary.json has no test/{missing[0]} (a run "
                         "without a test split, or one that has not finished)")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if "eval/sentence_accuracy" in r]
    best = max(evals, key=lambda r: r["eval/sentence_accuracy"])
    return {"workdir": workdir, "corpus": corpus,
            "backbone": backbone_name(config),
            "seed": config.get("seed", 0), "lr": config["optimizer"]["lr"],
            "epochs": config.get("train", {}).get("epochs", 0),
            "crf": bool(config.get("model", {}).get("crf", False)),
            "steps": summary.get("step"),
            "wall_minutes": summary.get("wall_time_sec", 0) / 60,
            "test": {m: summary[f"test/{m}"] for m in METRICS},
            "dev_best": {m: best[f"eval/{m}"] for m in METRICS}, "dev_best_step": best["step"],
            # flat copies, for the study's rows (a Metric reads top-level keys of a record)
            **{f"test_{m}": summary[f"test/{m}"] for m in METRICS}}


def _label(run) -> str:
    """"bert_mini (here, lr 1e-3, 20 epochs, CRF)": what tells this project's runs apart."""
    lr = f"{run['lr']:.0e}".replace("e-0", "e-")  # 5e-5, 3e-4, 1e-3
    # .get: records of reports made before these fields were (--previous) lack them
    length = (f", {run['epochs']} epochs" if run.get("epochs")
              else f", {run['steps']} steps" if "epochs" in run else "")
    return f"{run['backbone']} (here, lr {lr}{length}{', CRF' if run.get('crf') else ''})"


def markdown(runs) -> str:
    lines = ["| corpus | model | test intent acc | test slot F1 | test sentence acc | "
             "dev (best) intent / slot / sentence | minutes |", "|---|---|---:|---:|---:|---:|---:|"]
    for corpus in PUBLISHED:
        for r in (r for r in runs if r["corpus"] == corpus):
            t, d = r["test"], r["dev_best"]
            lines.append(f"| {corpus} | {_label(r)} | "
                         f"{t['intent_accuracy']:.2f} | "
                         f"{t['slot_f1']:.2f} | {t['sentence_accuracy']:.2f} | "
                         f"{d['intent_accuracy']:.2f} / {d['slot_f1']:.2f} / "
                         f"{d['sentence_accuracy']:.2f} | {r['wall_minutes']:.1f} |")
        if any(r["corpus"] == corpus for r in runs):
            for name, values in PUBLISHED[corpus].items():
                lines.append(f"| {corpus} | {name} | " + " | ".join(f"{v:.2f}" for v in values)
                             + " | - | - |")
    return "\n".join(lines) + "\n"


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = [c for c in PUBLISHED if any(r["corpus"] == c for r in runs)]
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 3.8), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        bars = {_label(r): [r["test"][m] for m in METRICS]
                for r in runs if r["corpus"] == corpus}
        gated = next(iter(PUBLISHED[corpus]))
        bars[gated.split(" (")[0]] = PUBLISHED[corpus][gated]
        width = 0.8 / len(bars)
        for i, (label, values) in enumerate(bars.items()):
            ax.bar([j - 0.4 + width * (i + 0.5) for j in range(len(METRICS))], values, width,
                   label=label, color=f"C{i}")
        ax.set_xticks(range(len(METRICS)), ["intent acc", "slot F1", "sentence acc"])
        ax.set_ylim(min(min(v) for v in bars.values()) - 10, 100)
        ax.set_title(f"{corpus.upper()} test")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdirs", default="", help="comma-separated intent+slots workdirs")
    p.add_argument("--out", default="runs/atis_snips_report",
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
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"runs": runs, "published": PUBLISHED, "metrics": METRICS}, f, indent=2)
    md = markdown(runs)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    plot(runs, os.path.join(args.out, "scores.png"))
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
