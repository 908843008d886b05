"""ROUGE of trained SAMSum workdirs under several decodings, with Lead-3 on the same split
scored in the same run by the same code: one JSON row per (workdir, beam, no-repeat n-gram
size), and a Markdown table.

  python experiments/samsum_summarisation/rouge_table.py --workdirs=runs/samsum_small \
      --split=valid --beams=1,4 --no_repeat=0,3 --min_lens=10,20 --limit=200 \
      --out=runs/samsum_summarisation/valid.json
  python experiments/samsum_summarisation/rouge_table.py --workdirs=runs/samsum_small \
      --split=test --beams=4 --no_repeat=3 \
      --out=experiments/samsum_summarisation/results_test.json

Pick the decoding on the validation split; report the test split once.
"""

import argparse
import json
import pathlib
import sys
import time

from llm_jax.data.parallel_text import read_parallel
from llm_jax.evaluation.text_metrics import rouge
from llm_jax.training import commands

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from lead3 import lead  # noqa: E402

KINDS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def ints(text):
    return [int(x) for x in text.split(",") if x]


def floats(text):
    return [float(x) for x in text.split(",") if x]


def mean_words(texts) -> float:
    return round(sum(len(t.split()) for t in texts) / max(len(texts), 1), 1)


def row(system, split, scores, **extra):
    return {"system": system, "split": split, **extra, **{k: round(scores[k], 2) for k in KINDS}}


def markdown(rows) -> str:
    lines = ["| system | beam | alpha | min length | no-repeat n-gram | words | R-1 | R-2 | R-L "
             "| R-Lsum |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['system']} | " + " | ".join(
            str(r.get(k, "")) for k in ("beam", "alpha", "min_len", "no_repeat_ngram", "words"))
            + " | " + " | ".join(f"{r[k]:.2f}" for k in KINDS) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated SAMSum workdirs")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--beams", default="4")
    parser.add_argument("--no_repeat", default="0", help="no-repeat n-gram sizes (0: off)")
    parser.add_argument("--alphas", default="", help="length-penalty exponents (default: config)")
    parser.add_argument("--min_lens", default="",
                        help="minimum output lengths in tokens, decoder start counted (default: "
                             "the config's task.min_len)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N dialogues")
    parser.add_argument("--out", default="runs/samsum_summarisation/rouge.json")
    args = parser.parse_args(argv)
    dialogues, summaries = read_parallel("samsum", args.split, "", "")
    if args.limit:
        dialogues, summaries = dialogues[:args.limit], summaries[:args.limit]
    leads = [lead(d) for d in dialogues]
    rows = [row("lead-3", args.split, rouge(leads, summaries), examples=len(dialogues),
                words=mean_words(leads))]
    print(json.dumps(rows[-1]), flush=True)
    grid = [(w, b, a, m, n) for w in args.workdirs.split(",") for b in ints(args.beams)
            for a in floats(args.alphas) or [None] for m in ints(args.min_lens) or [None]
            for n in ints(args.no_repeat)]
    for workdir, beam, alpha, min_len, n in grid:
        start = time.perf_counter()
        hyps = commands.translate_lines(workdir, dialogues, beam_size=beam, alpha=alpha,
                                        min_len=min_len, no_repeat_ngram=n)
        seconds = round(time.perf_counter() - start, 1)
        rows.append(row(workdir, args.split, rouge(hyps, summaries), beam=beam,
                        alpha="" if alpha is None else alpha,
                        min_len="" if min_len is None else min_len, no_repeat_ngram=n,
                        examples=len(dialogues), words=mean_words(hyps),
                        decode_seconds=seconds, first_summary=hyps[0]))
        print(json.dumps(rows[-1]), flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
