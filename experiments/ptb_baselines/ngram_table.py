"""PTB n-gram table: orders 2-5 x smoothings, valid/test perplexity, build and eval seconds.

    LLM_JAX_DATA_DIR=/work/shared/data .venv/bin/python experiments/ptb_baselines/ngram_table.py \
        [--out=runs/ptb_ngram_table] [--update_results]

Writes OUT/ngram_results.json and prints the Markdown table that README.md shows; only
--update_results (the maintainers' refresh of that table) also writes the tracked
experiments/ptb_baselines/ngram_results.json. Every model is counted from scratch (build =
counting + estimation; eval = scoring valid and test); tokenising PTB once is not included.
add-k's k is chosen on valid.
"""

import argparse
import json
import os
import pathlib
import time

import numpy as np

from llm_jax.data import make_tokenizer, read_corpus
from llm_jax.models.ngram import NGramLM

RESULTS = "ngram_results.json"
PUBLISHED = pathlib.Path(__file__).with_name(RESULTS)  # the README's table: --update_results only
DEFAULT_OUT = os.path.join("runs", "ptb_ngram_table")
ORDERS = (2, 3, 4, 5)
ADD_K_GRID = (1.0, 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4)
SRILM_CUTOFFS = (1, 1, 2, 2, 2)


def measure(ids, tok, order, smoothing, k=1.0, cutoffs=None):
    t0 = time.perf_counter()
    lm = NGramLM.fit(ids["train"], vocab_size=tok.vocab_size, eos_id=tok.eos_id, order=order,
                     smoothing=smoothing, k=k, cutoffs=cutoffs)
    t1 = time.perf_counter()
    valid, test = (lm.stream_logprobs(ids[s]) for s in ("valid", "test"))
    t2 = time.perf_counter()
    return dict(order=order, smoothing=smoothing, k=k if smoothing == "add_k" else None,
                cutoffs=list(lm.cutoffs), valid=float(np.exp(-valid.mean())),
                test=float(np.exp(-test.mean())), test_zero_prob=int(np.isneginf(test).sum()),
                build_s=t1 - t0, eval_s=t2 - t1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"directory for {RESULTS}")
    p.add_argument("--update_results", action="store_true", help=f"also write {PUBLISHED}")
    args = p.parse_args(argv)
    paths = [pathlib.Path(args.out) / RESULTS] + ([PUBLISHED] if args.update_results else [])
    paths[0].parent.mkdir(parents=True, exist_ok=True)  # fail before counting, not after
    tok = make_tokenizer("word", read_corpus("ptb", "train"))
    ids = {s: tok.encode(read_corpus("ptb", s)) for s in ("train", "valid", "test")}
    rows = []
    for order in ORDERS:
        rows.append(measure(ids, tok, order, "mle"))
        rows.append(measure(ids, tok, order, "add_k", k=1.0))
        tuned = [measure(ids, tok, order, "add_k", k=k) for k in ADD_K_GRID[1:]]
        rows.append(min(tuned, key=lambda r: r["valid"]))
        rows.append(measure(ids, tok, order, "kn"))
        rows.append(measure(ids, tok, order, "modified_kn"))
        if order >= 3:  # SRILM's defaults cut only 3-grams and above
            rows.append(measure(ids, tok, order, "modified_kn", cutoffs=SRILM_CUTOFFS[:order]))
    # strict JSON: an infinite perplexity is written as the string "inf"
    text = json.dumps([{k: (v if not isinstance(v, float) or np.isfinite(v) else str(v))
                        for k, v in r.items()} for r in rows], indent=1)
    for path in paths:
        path.write_text(text)
    print("| order | smoothing | cutoffs | valid ppl | test ppl | test words with p=0 | build s | eval s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = r["smoothing"] + (f" (k={r['k']:g})" if r["k"] is not None else "")
        cut = "-".join(map(str, r["cutoffs"])) if max(r["cutoffs"]) > 1 else "none"
        ppl = [f"{v:.2f}" if np.isfinite(v) else "inf" for v in (r["valid"], r["test"])]
        print(f"| {r['order']} | {name} | {cut} | {ppl[0]} | {ppl[1]} | {r['test_zero_prob']} | "
              f"{r['build_s']:.2f} | {r['eval_s']:.2f} |")
    print(f"\nwrote {' and '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
