"""The pre-training table and plot: masked-LM accuracy and perplexity of each workdir over the
whole validation and test splits, with a unigram baseline scored on the same masked tokens.

  python experiments/bert_pretraining/report.py \
      --workdirs=runs/bert_mini,runs/roberta_mini --labels="BERT (MLM+NSP),RoBERTa (MLM)" \
      --out=experiments/bert_pretraining

writes OUT/results.json (one record per workdir), OUT/results.md (the README's table) and
OUT/curves.png (dashed: each run's baseline). The unigram baseline predicts every masked token
from the training split's token frequencies (add-one smoothed): its accuracy is the share of
the most frequent token among the masked ones, its perplexity what a model that learned only
frequencies would get.
Perplexities of two tokenizers are not comparable (a WordPiece piece is not a BPE piece); the
baseline, computed per workdir, is what each is read against.
"""

import argparse
import json
import math
import pathlib

import numpy as np

CURVES = (("mlm_accuracy", "masked-LM accuracy", False), ("perplexity", "masked-LM perplexity", True))


def unigram_baseline(task, batch_size, split) -> dict:
    """Accuracy and perplexity of the training split's unigram over `split`'s masked tokens."""
    counts = np.bincount(task.train_docs.ids, minlength=task.tokenizer.vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    top = int(np.argmax(counts))
    nll = correct = n = 0.0
    for batch in task.eval_batches(batch_size, tokens=task.split_tokens(split)):
        w = np.asarray(batch["mlm_weights"], np.float64) * np.asarray(batch["weights"])[:, None]
        ids = np.asarray(batch["mlm_ids"])
        nll -= float(np.sum(logp[ids] * w))
        correct += float(np.sum((ids == top) * w))
        n += float(w.sum())
    return {"unigram_mlm_accuracy": correct / n, "unigram_perplexity": math.exp(nll / n),
            "masked_tokens": int(n), "most_frequent_id": top,
            "most_frequent_token": task.tokenizer.id_to_token(top)}


def curves(workdir) -> dict:
    """{metric: (train [(step, value)], eval [(step, value)])} from metrics.jsonl."""
    out = {k: ([], []) for k, _, _ in CURVES}
    for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "train/mlm_loss" in row:
            out["perplexity"][0].append((row["step"], math.exp(row["train/mlm_loss"])))
            out["mlm_accuracy"][0].append((row["step"], row["train/mlm_accuracy"]))
        for key in out:
            if f"eval/{key}" in row:
                out[key][1].append((row["step"], row[f"eval/{key}"]))
    return out


def wall_minutes(workdir) -> float:
    """The training loop's own clock (summary.json's wall_time_sec: compilation, steps and
    evaluations; not the tokenisation before it)."""
    summary = pathlib.Path(workdir) / "summary.json"
    if not summary.exists():
        raise SystemExit(f"--workdirs: {summary} not found: the run has not finished")
    return json.loads(summary.read_text())["wall_time_sec"] / 60


def record(workdir, label) -> dict:
    from llm_jax.training.commands import evaluate_workdir
    from llm_jax.training.experiment import Experiment, load_config

    config = load_config(workdir)
    exp = Experiment(config, workdir)
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["train/tokens_per_sec"] for r in rows if "train/tokens_per_sec" in r]
    rec = {"name": label, "workdir": workdir, "recipe": {
        "packing": config.task.packing, "masking": config.task.masking,
        "sentence_task": config.task.sentence_task or "none", "tokenizer": config.data.tokenizer},
        "steps": max(r["step"] for r in rows), "batch_size": config.train.batch_size,
        "seq_len": config.data.seq_len, "wall_minutes": round(wall_minutes(workdir), 1),
        "train_tokens_per_sec": float(np.median(speeds)), "params": exp.spec.param_count,
        # the periodic evaluations (the first train.eval_batches of the valid split; the last
        # step's reads it whole): where runs of one schedule are compared step by step
        "evals": {str(r["step"]): {k[5:]: r[k] for k in r if k.startswith("eval/")}
                  for r in rows if "eval/mlm_accuracy" in r}}
    for split in ("valid", "test"):
        m = evaluate_workdir(workdir, split)
        scores = {k.split("/", 1)[1]: v for k, v in m.items() if "/" in k}
        scores.update(unigram_baseline(exp.task, config.train.batch_size, split))
        # flat keys ("test_mlm_accuracy"): what a study's Metric reads
        rec.update({f"{split}_{k}": v for k, v in scores.items()})
    for step, e in rec["evals"].items():  # flat too, for a study's Metric
        rec.update({f"step{step}_valid_{k}": v for k, v in e.items()})
    return rec


def table(records) -> str:
    head = ("| run | recipe | steps | wall min | tokens/s | valid MLM acc | valid ppl | test MLM acc "
            "| test ppl | test NSP acc | unigram acc / ppl (test) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in records:
        rc = r["recipe"]
        v, t = ({k[len(s) + 1:]: x for k, x in r.items() if k.startswith(s + "_")}
                for s in ("valid", "test"))
        nsp = f"{100 * t['sentence_accuracy']:.1f}%" if "sentence_accuracy" in t else "-"
        lines.append(
            f"| {r['name']} | {rc['packing']}, {rc['masking']} masks, {rc['sentence_task']}, "
            f"{rc['tokenizer']} | {r['steps']:,} | {r['wall_minutes']:.0f} | "
            f"{r['train_tokens_per_sec']:,.0f} | {100 * v['mlm_accuracy']:.2f}% | "
            f"{v['perplexity']:.1f} | {100 * t['mlm_accuracy']:.2f}% | {t['perplexity']:.1f} | {nsp} | "
            f"{100 * t['unigram_mlm_accuracy']:.2f}% / {t['unigram_perplexity']:.0f} |")
    return "\n".join(lines) + "\n"


def evals_table(records) -> str:
    """Validation MLM accuracy / perplexity (and NSP accuracy) of every run at each eval step."""
    steps = sorted({int(k) for r in records for k in r["evals"]})
    lines = ["| step | " + " | ".join(r["name"] for r in records) + " |",
             "|---:|" + "---|" * len(records)]
    for step in steps:
        cells = []
        for r in records:
            e = r["evals"].get(str(step))
            nsp = f", NSP {100 * e['sentence_accuracy']:.1f}%" if e and "sentence_accuracy" in e else ""
            cells.append(f"{100 * e['mlm_accuracy']:.2f}% / {e['perplexity']:.1f}{nsp}" if e else "")
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(workdirs, labels, records, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    baselines = {"mlm_accuracy": "valid_unigram_mlm_accuracy", "perplexity": "valid_unigram_perplexity"}
    for workdir, label, rec in zip(workdirs, labels, records):
        data = curves(workdir)
        for ax, (key, title, log) in zip(axes, CURVES):
            train, evals = data[key]
            steps, values = zip(*train)
            k = min(8, len(values))  # a running mean over 8 logs (200 steps): one batch is noisy
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            line, = ax.plot(steps[k - 1:], smooth, lw=1.2, label=f"{label}, train")
            if evals:
                ax.plot(*zip(*evals), ls="none", marker="o", color=line.get_color(),
                        label=f"{label}, validation")
            ax.axhline(rec[baselines[key]], ls="--", lw=1, color=line.get_color(),
                       label=f"{label}, unigram baseline (validation)")
            ax.set(xlabel="step", title=title, yscale="log" if log else "linear")
            ax.grid(alpha=0.3)
    # below both panels (inside one, nine entries hide the curves): a row of three a run
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * len(records), 1, 1))
    fig.savefig(out, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated pre-training workdirs")
    parser.add_argument("--labels", default="", help="comma-separated, one per workdir")
    parser.add_argument("--out", default="runs/bert_pretraining")
    args = parser.parse_args(argv)
    workdirs = args.workdirs.split(",")
    labels = args.labels.split(",") if args.labels else workdirs
    if len(labels) != len(workdirs):
        raise SystemExit(f"--labels: {len(labels)} labels for {len(workdirs)} workdirs")
    for w in workdirs:  # before any evaluation: a run not finished is said at once
        if not (pathlib.Path(w) / "metrics.jsonl").exists():
            raise SystemExit(f"--workdirs: {w}/metrics.jsonl not found: train it first")
        wall_minutes(w)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [record(w, label) for w, label in zip(workdirs, labels)]
    (out / "results.json").write_text(json.dumps({"rows": records}, indent=2) + "\n")
    (out / "results.md").write_text(table(records) + "\n" + evals_table(records))
    plot(workdirs, labels, records, out / "curves.png")
    print(table(records) + "\n" + evals_table(records))


if __name__ == "__main__":
    main()
