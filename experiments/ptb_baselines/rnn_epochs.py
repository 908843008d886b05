"""Per-epoch validation perplexity (and the final test one) of a recurrent-LM workdir, as Markdown.

  python experiments/ptb_baselines/rnn_epochs.py runs/zaremba_small [--out=FILE.md]

Prints the table; --out also writes it to FILE.md.
"""

import argparse
import json
import os

from llm_jax.training.metrics import read_metrics


def table(workdir: str) -> str:
    metrics = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    logged = [r for r in metrics if "train/lr" in r]
    lines = ["| epoch | step | lr (last logged) | train loss (last logged) | valid perplexity |",
             "|---|---|---|---|---|"]
    for r in (r for r in metrics if "epoch" in r):
        last = max((x for x in logged if x["step"] <= r["step"]), key=lambda x: x["step"])
        lines.append(f"| {int(r['epoch'])} | {r['step']} | {last['train/lr']:g} | "
                     f"{last['train/loss']:.3f} | {r['eval/perplexity']:.2f} |")
    summary_path = os.path.join(workdir, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            s = json.load(f)
        if "test/perplexity" in s:
            lines.append(f"\nfinal: valid {s['eval/perplexity']:.2f}, test {s['test/perplexity']:.2f}, "
                         f"{s['step']} steps, train loop {s['wall_time_sec'] / 60:.1f} min")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workdir")
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args()
    text = table(args.workdir)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"Written by `python experiments/ptb_baselines/rnn_epochs.py {args.workdir} "
                    f"--out={args.out}`.\n\n{text}\n")


if __name__ == "__main__":
    main()
