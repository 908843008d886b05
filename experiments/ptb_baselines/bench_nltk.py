"""llm_jax's n-gram counting and scoring vs nltk.lm on PTB, side by side: time and agreement.

    LLM_JAX_DATA_DIR=/work/shared/data .venv/bin/python experiments/ptb_baselines/bench_nltk.py \
        [--out=runs/ptb_bench_nltk] [--update_results]

Both fit an add-k (nltk: Lidstone) trigram on PTB train and score every PTB test word whose
history is two real words (nltk pads sentence starts with extra <s> symbols, so the first two
words of a sentence are conditioned differently). nltk's vocabulary also holds <s> and <UNK>,
so ours is given V + 2 ids to make the denominators equal. Writes OUT/bench_nltk.json;
--update_results (the maintainers' refresh of the README's numbers) also writes
experiments/ptb_baselines/bench_nltk.json.
"""

import argparse
import json
import os
import pathlib
import time

import numpy as np

from llm_jax.data import make_tokenizer, read_corpus
from llm_jax.models.ngram import NGramLM
from llm_jax.models.ngram_counts import PAD

ORDER, K = 3, 0.01
RESULTS = "bench_nltk.json"
PUBLISHED = pathlib.Path(__file__).with_name(RESULTS)  # the README's numbers: --update_results only
DEFAULT_OUT = os.path.join("runs", "ptb_bench_nltk")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"directory for {RESULTS}")
    p.add_argument("--update_results", action="store_true", help=f"also write {PUBLISHED}")
    args = p.parse_args(argv)
    # nltk is the reference, not a dependency of llm_jax: imported here, after --help.
    from nltk.lm import Lidstone
    from nltk.lm.preprocessing import padded_everygram_pipeline

    paths = [pathlib.Path(args.out) / RESULTS] + ([PUBLISHED] if args.update_results else [])
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer("word", read_corpus("ptb", "train"))
    train_ids, test_ids = (tok.encode(read_corpus("ptb", s)) for s in ("train", "test"))
    names = ["</s>" if w == "<eos>" else w for w in tok.words]
    sentences = [line.split() for line in read_corpus("ptb", "train").splitlines()]

    t0 = time.perf_counter()
    ours = NGramLM.fit(train_ids, vocab_size=tok.vocab_size + 2, eos_id=tok.eos_id,
                       order=ORDER, smoothing="add_k", k=K)
    t1 = time.perf_counter()
    rows = ours.windows(test_ids)
    rows = rows[(rows[:, 0] != PAD) & (rows[:, 0] != ours.bos_id)]  # two real history words
    ours_logp = ours.logprobs(rows)
    t2 = time.perf_counter()

    train, vocab = padded_everygram_pipeline(ORDER, sentences)
    ref = Lidstone(K, ORDER)
    ref.fit(train, vocab)
    t3 = time.perf_counter()
    assert len(ref.vocab) == tok.vocab_size + 2, len(ref.vocab)
    ref_logp = np.log([ref.score(names[r[2]], [names[r[0]], names[r[1]]]) for r in rows])
    t4 = time.perf_counter()

    result = dict(
        words_scored=len(rows),
        max_abs_logprob_diff=float(np.abs(ours_logp - ref_logp).max()),
        ours_fit_s=t1 - t0, ours_score_s=t2 - t1, nltk_fit_s=t3 - t2, nltk_score_s=t4 - t3,
        fit_speedup=(t3 - t2) / (t1 - t0), score_speedup=(t4 - t3) / (t2 - t1))
    for path in paths:
        path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"wrote {' and '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
