"""The Lead-3 baseline of Gliwa et al. (2019) on SAMSum: the first three turns of each
dialogue as its summary, scored with llm_jax's ROUGE (rouge-score, stemmed F1), the same code
that scores the trained model.

  python experiments/samsum_summarisation/lead3.py --split=test \
      --out=experiments/samsum_summarisation/results_lead3.json
"""

import argparse
import json
import pathlib

from llm_jax.data.parallel_text import read_parallel
from llm_jax.evaluation.text_metrics import rouge


def lead(dialogue: str, n: int = 3) -> str:
    return " ".join([turn for turn in dialogue.split("\n") if turn.strip()][:n])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--out", default="runs/samsum_summarisation/results_lead3.json",
                        help="JSON file to write")
    args = parser.parse_args(argv)
    dialogues, summaries = read_parallel("samsum", args.split, "", "")
    scores = rouge([lead(d, args.turns) for d in dialogues], summaries)
    result = {"baseline": f"lead-{args.turns}", "split": args.split, "examples": len(dialogues),
              **{k: round(v, 2) for k, v in scores.items()}}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
