"""Unigram perplexity on a biLM run's eval split, with the run's own vocabulary (the baseline
the biLM's perplexity is compared with; a unigram model is the same in both directions).

  python experiments/elmo_sst2/unigram_baseline.py --workdir=runs/elmo_small [--out=FILE.json]

Prints JSON: the unigram perplexity and, beside it, the biLM's own final evaluation from the
workdir's summary.json (when the run has finished). --out also writes that JSON to FILE.json.
"""

import argparse
import json
import math
import os

import numpy as np

from llm_jax.data import load_tokenizer, read_corpus
from llm_jax.training.experiment import load_config


def unigram_perplexity(workdir, split=None):
    config = load_config(workdir)
    vocab = load_tokenizer(f"{workdir}/tokenizer")
    split = split or config.data.eval_split
    train = vocab.encode(read_corpus(config.data.corpus, config.data.train_split))
    counts = np.bincount(train, minlength=vocab.vocab_size).astype(np.float64)
    log_p = np.log(counts / counts.sum())
    ids = vocab.encode(read_corpus(config.data.corpus, split))
    return {"split": split, "vocab_size": vocab.vocab_size, "tokens": int(len(ids)),
            "unigram_perplexity": math.exp(-float(log_p[ids].mean()))}


BILM_KEYS = ("step", "params", "eval/forward_loss", "eval/backward_loss", "eval/loss",
             "eval/perplexity")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default=None)
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    a = p.parse_args()
    result = {"workdir": a.workdir, **unigram_perplexity(a.workdir, a.split)}
    summary = os.path.join(a.workdir, "summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            s = json.load(f)
        result["bilm_summary"] = {k: s[k] for k in BILM_KEYS if k in s}
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
