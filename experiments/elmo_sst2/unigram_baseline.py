"""Unigram perplexity on a biLM run's eval split, with the run's own vocabulary (the baseline
the biLM's perplexity is compared with; a unigram model is the same in both directions).

  python experiments/elmo_sst2/unigram_baseline.py --workdir=runs/elmo_small
"""

import argparse
import json
import math

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


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default=None)
    a = p.parse_args()
    print(json.dumps(unigram_perplexity(a.workdir, a.split), indent=2))
