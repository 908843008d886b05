"""Validation loss and greedy ROUGE-1 against the step, one curve per SAMSum workdir.

The periodic evaluations (every train.eval_every steps) score the first train.eval_batches
validation batches and greedy summaries of the first task.eval_decode_examples dialogues; the
end-of-epoch ones score the whole split, so they are drawn apart (open markers), not joined.

  python experiments/samsum_summarisation/plot_training.py \
      --workdirs=runs/samsum_small_postln,runs/samsum_small \
      --labels=post-LN,pre-LN --out=experiments/samsum_summarisation/training.png
"""

import argparse
import json
import pathlib

KEYS = (("eval/loss", "validation loss (label-smoothed)"), ("eval/rouge1", "greedy ROUGE-1"))


def curves(workdir):
    """{key: (periodic [(step, value)], end-of-epoch [(step, value)])} from metrics.jsonl."""
    config = json.loads((pathlib.Path(workdir) / "config.json").read_text())
    every = config["train"]["eval_every"]
    out = {k: ([], []) for k, _ in KEYS}
    for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key, _ in KEYS:
            if key in row:
                out[key][0 if row["step"] % every == 0 else 1].append((row["step"], row[key]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", required=True)
    parser.add_argument("--labels", default="", help="comma-separated, one per workdir")
    parser.add_argument("--out", default="runs/samsum_summarisation/training.png")
    args = parser.parse_args(argv)
    workdirs = args.workdirs.split(",")
    labels = args.labels.split(",") if args.labels else workdirs
    if len(labels) != len(workdirs):
        raise SystemExit(f"--labels: {len(labels)} labels for {len(workdirs)} workdirs")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for workdir, label in zip(workdirs, labels):
        data = curves(workdir)
        for ax, (key, title) in zip(axes, KEYS):
            periodic, epochs = data[key]
            line, = ax.plot(*zip(*periodic), marker="o", ms=3, label=label) if periodic else (None,)
            if epochs:
                ax.plot(*zip(*epochs), ls="none", marker="o", mfc="none",
                        color=line.get_color() if line else None, label=f"{label}, whole split")
            ax.set(xlabel="step", title=title)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
