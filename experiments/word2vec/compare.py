"""llm_jax word2vec vs gensim, side by side on WikiText-2 train, one subprocess per trainer and variant.

  LLM_JAX_DATA_DIR=../shared/data python experiments/word2vec/compare.py \
      [--variants=sg_neg,sg_hs,cbow_neg,cbow_hs] [--epochs=5] [--seeds=0] [--out=runs/w2v_compare]
      [--update_results]

Both trainers get the same hyperparameters (configs/word2vec.py: dim 100, window 5, negative 5 or
hierarchical softmax, sample 1e-3, min_count 5, alpha 0.025 -> 1e-4, 5 epochs); gensim runs with
workers=2 and its defaults otherwise. Both sets of vectors are scored by the same evaluator
(llm_jax.evaluation, which matches gensim's evaluate_word_analogies/evaluate_word_pairs; gensim's
own analogy score is recorded as a check). Throughput is raw corpus words (every token of the
file, before min_count and subsampling) x epochs / training seconds, for both; wall time runs from
reading the corpus to trained vectors (llm_jax's includes its checkpoints and vector export),
without the evaluation. Peak memory is the
subprocess's own ru_maxrss. With several --seeds every (variant, trainer) trains once per seed
and a second table gives the mean and spread over seeds (gensim with 2 workers is not
deterministic even for one seed, so one run of each is a noisy comparison). A run whose
result.json is already in OUT is kept, not redone (use a new OUT for a fresh comparison).
Writes OUT/results.json and OUT/results.md (and every run's workdir under OUT). Only
--update_results, the maintainers' refresh of the README's table (every variant, both trainers,
--seeds=0,1,2), copies them to experiments/word2vec/results_3seeds.json and .md.
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
TRAINERS = ("gensim", "llm_jax")
PUBLISHED_SEEDS = [0, 1, 2]  # the README's table; results_3seeds.* are only ever that
DEFAULT_OUT = os.path.join("runs", "w2v_compare")


def _config(variant, epochs, seed):
    sys.path.insert(0, REPO)
    from tests.conftest import load_config
    c = load_config("word2vec", variant)
    c.task.epochs = epochs
    c.seed = seed
    c.train.progress_bar = False
    return c


def seed_list(text):
    """"0,1,2" -> [0, 1, 2]; argparse names the flag and the value when this raises."""
    return [int(x) for x in text.split(",")]


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_gensim(variant, epochs, seed, workdir):
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    from llm_jax.data.paths import require_file
    from llm_jax.evaluation.word_vectors import WordVectors
    from llm_jax.training.word2vec_loop import evaluate_vectors
    c = _config(variant, epochs, seed)
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


def run_llm_jax(variant, epochs, seed, workdir):
    from llm_jax.training.word2vec_loop import train
    return train(_config(variant, epochs, seed), workdir)


def _workdir(out, trainer, variant, seed):
    return os.path.join(out, f"{trainer}_{variant}" + (f"_seed{seed}" if seed else ""))


def worker(trainer, variant, epochs, seed, out):
    workdir = _workdir(out, trainer, variant, seed)
    os.makedirs(workdir, exist_ok=True)
    result = (run_gensim if trainer == "gensim" else run_llm_jax)(variant, epochs, seed, workdir)
    result.update(trainer=trainer, variant=variant, seed=seed, peak_rss_mb=_peak_mb())
    with open(os.path.join(workdir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


def table(rows) -> str:
    lines = ["| variant | trainer | seed | analogy acc. % | WordSim-353 rho | train words/s | train s "
             "| wall s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['trainer']} | {r.get('seed', 0)} | "
                     f"{100 * r['analogy_accuracy']:.2f} | "
                     f"{r['wordsim_spearman']:.3f} | {r['train_words_per_sec']:,.0f} | "
                     f"{r['train_seconds']:.1f} | {r['wall_time_sec']:.1f} | {r['peak_rss_mb']:.0f} |")
    by = _means(rows)
    several = any(m["n"] > 1 for m in by.values())
    of = " (mean over seeds)" if several else ""
    lines += ["", f"| variant | d analogy (points){of} | d rho x100{of} | llm_jax / gensim words/s{of} |",
              "|---|---|---|---|"]
    for v in dict.fromkeys(r["variant"] for r in rows):
        if (v, "gensim") in by and (v, "llm_jax") in by:
            a, g = by[(v, "llm_jax")], by[(v, "gensim")]
            lines.append(f"| {v} | {100 * (a['analogy_accuracy'] - g['analogy_accuracy']):+.2f} | "
                         f"{100 * (a['wordsim_spearman'] - g['wordsim_spearman']):+.1f} | "
                         f"{a['train_words_per_sec'] / g['train_words_per_sec']:.2f} |")
    if several:
        lines += ["", "| variant | trainer | seeds | analogy acc. % mean (min-max) | rho mean (min-max) |",
                  "|---|---|---|---|---|"]
        for (v, trainer), m in by.items():
            lines.append(f"| {v} | {trainer} | {m['n']} | {100 * m['analogy_accuracy']:.2f} "
                         f"({100 * m['analogy_min']:.2f}-{100 * m['analogy_max']:.2f}) | "
                         f"{m['wordsim_spearman']:.3f} ({m['rho_min']:.3f}-{m['rho_max']:.3f}) |")
    return "\n".join(lines)


def _means(rows):
    """(variant, trainer) -> the mean of each score over that pair's runs (one per seed)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["variant"], r["trainer"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        mean = {k: sum(r[k] for r in rs) / len(rs)
                for k in ("analogy_accuracy", "wordsim_spearman", "train_words_per_sec")}
        acc, rho = [r["analogy_accuracy"] for r in rs], [r["wordsim_spearman"] for r in rs]
        out[key] = dict(mean, n=len(rs), analogy_min=min(acc), analogy_max=max(acc),
                        rho_min=min(rho), rho_max=max(rho))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", default=DEFAULT_OUT, help="directory for the runs and the tables")
    p.add_argument("--trainers", default=",".join(TRAINERS))
    p.add_argument("--seeds", default=[0], type=seed_list,
                   help="comma-separated integers; each (variant, trainer) once per seed")
    p.add_argument("--update_results", action="store_true",
                   help="also copy the tables to results_3seeds.json/.md beside this script")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=("gensim", "llm_jax"), help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.variant, args.epochs, args.seed, args.out)
    variants = args.variants.split(",")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {bad}; expected some of {VARIANTS}")
    if args.update_results and (sorted(variants) != sorted(VARIANTS) or args.seeds != PUBLISHED_SEEDS
                                or sorted(args.trainers.split(",")) != sorted(TRAINERS)):
        raise SystemExit("--update_results: results_3seeds.* hold the README's whole table; run it "
                         f"with the default --variants and --trainers and --seeds={PUBLISHED_SEEDS}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    seeds = args.seeds
    for variant in variants:
        for seed in seeds:
            for trainer in args.trainers.split(","):
                done = os.path.join(_workdir(args.out, trainer, variant, seed), "result.json")
                if os.path.exists(done):  # as sweeps do: a finished run in OUT is kept, not redone
                    print(f"== {variant}: {trainer} (seed {seed}): kept from {done}", flush=True)
                else:
                    print(f"== {variant}: {trainer} (seed {seed})", flush=True)
                    subprocess.run([sys.executable, os.path.abspath(__file__), f"--worker={trainer}",
                                    f"--variant={variant}", f"--epochs={args.epochs}", f"--seed={seed}",
                                    f"--out={args.out}"], check=True, cwd=REPO)
                with open(done) as f:
                    rows.append(json.load(f))
    md = table(rows)
    md += f"\n\nwhole comparison: {time.perf_counter() - t0:.0f} s; machine: {os.cpu_count()} CPUs"
    targets = [os.path.join(args.out, "results")]
    if args.update_results:
        targets.append(os.path.join(HERE, "results_3seeds"))
    for stem in targets:
        with open(stem + ".json", "w") as f:
            json.dump(rows, f, indent=2)
        with open(stem + ".md", "w") as f:
            f.write(md + "\n")
    print(md)
    print(f"\nwrote {' and '.join(stem + '.json/.md' for stem in targets)}")


if __name__ == "__main__":
    main()
