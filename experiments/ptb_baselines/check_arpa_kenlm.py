"""Scores PTB test with KenLM reading our model.arpa: an independent check of the ARPA export.

    pip install kenlm          # builds KenLM's query code from source (about 4 minutes here)
    LLM_JAX_DATA_DIR=/work/shared/data .venv/bin/python -m llm_jax train \
        --config=configs/ngram.py:modified_kn5 --workdir=runs/ptb_kn5 --config.task.write_arpa=True
    LLM_JAX_DATA_DIR=/work/shared/data .venv/bin/python \
        experiments/ptb_baselines/check_arpa_kenlm.py runs/ptb_kn5

KenLM adds <s> and </s> to each line and predicts </s>, the same convention as ours, so its
perplexity over words + sentence ends must equal the one in the run's summary.json.
"""

import json
import math
import pathlib
import sys

import kenlm

from llm_jax.data import read_corpus


def main(workdir):
    workdir = pathlib.Path(workdir)
    model = kenlm.Model(str(workdir / "model.arpa"))
    log10_total, tokens = 0.0, 0
    for line in read_corpus("ptb", "test").splitlines():
        log10_total += model.score(line.strip(), bos=True, eos=True)
        tokens += len(line.split()) + 1
    ours = json.loads((workdir / "summary.json").read_text())["test/perplexity"]
    kenlm_ppl = 10 ** (-log10_total / tokens)
    print(f"tokens {tokens}  KenLM perplexity {kenlm_ppl:.4f}  llm_jax {ours:.4f}  "
          f"relative difference {abs(kenlm_ppl / ours - 1):.1e}")
    return math.isclose(kenlm_ppl, ours, rel_tol=1e-4)


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1]) else 1)
