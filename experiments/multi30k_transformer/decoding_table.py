"""BLEU of trained seq2seq workdirs under several decodings: greedy vs beam, the length
penalty, with and without checkpoint averaging. One JSON row per (workdir, beam, alpha), cased
and lowercased sacreBLEU with their signatures, and a plot of BLEU against the beam size.

  python experiments/multi30k_transformer/decoding_table.py \
      --workdirs=runs/multi30k_small,runs/multi30k_small_avg5 --split=test \
      --beams=1,5 --alphas=0.6 --out=experiments/multi30k_transformer/results_decoding.json
  python experiments/multi30k_transformer/decoding_table.py --workdirs=runs/multi30k_small \
      --beams=1,2,3,4,5,6,8,10 --alphas=0,0.6,1.0 --plot=experiments/multi30k_transformer/beam.png \
      --out=experiments/multi30k_transformer/results_beam.json
"""

import argparse
import json
import pathlib
import time

from llm_jax.data.parallel_text import read_parallel
from llm_jax.evaluation.text_metrics import bleu
from llm_jax.training import commands
from llm_jax.training.experiment import load_config


def floats(text):
    return [float(x) for x in text.split(",") if x]


def score(workdir, split, beam, alpha):
    config = load_config(workdir)
    src, refs = read_parallel(config.data.corpus, split, config.task.src_lang,
                              config.task.tgt_lang, encoding=config.data.encoding)
    start = time.perf_counter()
    hyps = commands.translate_lines(workdir, src, beam_size=beam, alpha=alpha)
    seconds = time.perf_counter() - start
    return {"workdir": workdir, "split": split, "beam": beam, "alpha": alpha,
            "sentences": len(src), "decode_seconds": round(seconds, 1), **bleu(hyps, refs)}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    greedy = [(1, r["bleu"]) for r in rows if r["beam"] == 1]  # alpha does not apply
    for alpha in sorted({r["alpha"] for r in rows if r["beam"] > 1}):
        pts = greedy + sorted((r["beam"], r["bleu"]) for r in rows
                              if r["alpha"] == alpha and r["beam"] > 1)
        ax.plot(*zip(*pts), marker="o", label=f"alpha {alpha:g}")
    ax.set(xlabel="beam size", ylabel="cased sacreBLEU", title=f"{rows[0]['split']} BLEU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated seq2seq workdirs")
    parser.add_argument("--split", default="test")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--alphas", default="0.6")
    parser.add_argument("--out", default="runs/multi30k_transformer/decoding.json",
                        help="JSON file to write")
    parser.add_argument("--plot", default="", help="PNG of BLEU against beam size")
    args = parser.parse_args(argv)
    rows = []
    for workdir in args.workdirs.split(","):
        for beam in [int(b) for b in floats(args.beams)]:
            # alpha only matters to beam search; greedy is scored once
            for alpha in floats(args.alphas) if beam > 1 else floats(args.alphas)[:1]:
                rows.append(score(workdir, args.split, beam, alpha))
                print(json.dumps({k: rows[-1][k] for k in ("workdir", "beam", "alpha", "bleu",
                                                           "bleu_lc")}), flush=True)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
