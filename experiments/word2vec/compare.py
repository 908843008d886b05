"""llm_jax word2vec vs gensim, side by side on WikiText-2 train, one subprocess per trainer and variant.

  LLM_JAX_DATA_DIR=../shared/data python experiments/word2vec/compare.py \
      [--variants=sg_neg,sg_hs,cbow_neg,cbow_hs] [--epochs=5] [--out=/tmp/w2v_compare]

Both trainers get the same hyperparameters (configs/word2vec.py: dim 100, window 5, negative 5 or
hierarchical softmax, sample 1e-3, min_count 5, alpha 0.025 -> 1e-4, 5 epochs); gensim runs with
workers=2 and its defaults otherwise. Both sets of vectors are scored by the same evaluator
(llm_jax.evaluation, which matches gensim's evaluate_word_analogies/evaluate_word_pairs; gensim's
own analogy score is recorded as a check). Throughput is raw corpus words (every token of the
file, before min_count and subsampling) x epochs / training seconds, for both; wall time runs from
reading the corpus to trained vectors (llm_jax's includes its checkpoints and vector export),
without the evaluation. Peak memory is the
subprocess's own ru_maxrss. Writes OUT/results.json and OUT/results.md.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VARIANTS = ("sg_neg", "sg_hs", "cbow_neg", "cbow_hs")


def _config(variant, epochs):
    sys.path.insert(0, REPO)
    from tests.conftest import load_config
    c = load_config("word2vec", variant)
    c.task.epochs = epochs
    c.train.progress_bar = False
    return c


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_gensim(variant, epochs, workdir):
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    from llm_jax.data.paths import require_file
    from llm_jax.evaluation.word_vectors import WordVectors
    from llm_jax.training.word2vec_loop import evaluate_vectors
    c = _config(variant, epochs)
    t = c.task
    t0 = time.perf_counter()
    corpus = str(require_file("wikitext-2", "wiki.train.tokens"))
    model = Word2Vec(vector_size=c.model.dim, window=t.window, min_count=t.min_count, sample=t.sample,
                     sg=int(t.architecture == "sg"), hs=int(t.objective == "hs"),
                     negative=t.negative if t.objective == "neg" else 0, ns_exponent=t.ns_exponent,
                     alpha=t.alpha, min_alpha=t.min_alpha, cbow_mean=1, workers=2, seed=c.seed)
    sentences = LineSentence(corpus)
    model.build_vocab(sentences)
    t1 = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    train_s = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    kv = model.wv
    result = {"wall_time_sec": wall, "train_seconds": train_s,
              "train_words_per_sec": model.corpus_total_words * epochs / train_s,
              "vocab_size": len(kv), "raw_words": model.corpus_total_words}
    result.update(evaluate_vectors(t, WordVectors(kv.index_to_key, kv.vectors)))
    result["gensim_own_analogy_accuracy"] = kv.evaluate_word_analogies(
        str(require_file("word2vec", "questions-words.txt")), restrict_vocab=t.restrict_vocab)[0]
    return result


def run_llm_jax(variant, epochs, workdir):
    from llm_jax.training.word2vec_loop import train
    return train(_config(variant, epochs), workdir)


def worker(trainer, variant, epochs, out):
    workdir = os.path.join(out, f"{trainer}_{variant}")
    os.makedirs(workdir, exist_ok=True)
    result = (run_gensim if trainer == "gensim" else run_llm_jax)(variant, epochs, workdir)
    result.update(trainer=trainer, variant=variant, peak_rss_mb=_peak_mb())
    with open(os.path.join(workdir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


def table(rows) -> str:
    lines = ["| variant | trainer | analogy acc. % | WordSim-353 rho | train words/s | train s | wall s "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['trainer']} | {100 * r['analogy_accuracy']:.2f} | "
                     f"{r['wordsim_spearman']:.3f} | {r['train_words_per_sec']:,.0f} | "
                     f"{r['train_seconds']:.1f} | {r['wall_time_sec']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| variant | d analogy (points) | d rho x100 | llm_jax / gensim words/s |",
              "|---|---|---|---|"]
    by = {(r["variant"], r["trainer"]): r for r in rows}
    for v in dict.fromkeys(r["variant"] for r in rows):
        if (v, "gensim") in by and (v, "llm_jax") in by:
            a, g = by[(v, "llm_jax")], by[(v, "gensim")]
            lines.append(f"| {v} | {100 * (a['analogy_accuracy'] - g['analogy_accuracy']):+.2f} | "
                         f"{100 * (a['wordsim_spearman'] - g['wordsim_spearman']):+.1f} | "
                         f"{a['train_words_per_sec'] / g['train_words_per_sec']:.2f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", default="/tmp/w2v_compare")
    p.add_argument("--trainers", default="gensim,llm_jax")
    p.add_argument("--worker", choices=("gensim", "llm_jax"), help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.variant, args.epochs, args.out)
    variants = args.variants.split(",")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {bad}; expected some of {VARIANTS}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for variant in variants:
        for trainer in args.trainers.split(","):
            print(f"== {variant}: {trainer}", flush=True)
            subprocess.run([sys.executable, os.path.abspath(__file__), f"--worker={trainer}",
                            f"--variant={variant}", f"--epochs={args.epochs}", f"--out={args.out}"],
                           check=True, cwd=REPO)
            with open(os.path.join(args.out, f"{trainer}_{variant}", "result.json")) as f:
                rows.append(json.load(f))
    md = table(rows)
    md += f"\n\nwhole comparison: {time.perf_counter() - t0:.0f} s; machine: {os.cpu_count()} CPUs"
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
