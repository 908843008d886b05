"""The data pipeline before and after token files: resume start-up time, and peak memory on a
corpus larger than the process should hold.

  .venv/bin/python experiments/data_pipeline/bench_data.py --old=/tmp/old [--gb=1.0]
      [--parts resume,rss] [--tmp=/tmp/llm_jax_data_bench] [--update_results]

--old is a checkout of the code before (`git archive <commit> | tar -x -C /tmp/old`); its
children run with PYTHONPATH=/tmp/old. Every measurement runs in a fresh child process.

resume: the task of configs/gpt2.py:124m (WikiText-2, SentencePiece BPE 16,000, train.steps=2,
  batch_size=1) built in a workdir that already holds the run's tokenizer, as every resume (and
  `eval`) does first. Reported: seconds from process start to the task being ready (imports
  included), median of --repeats fresh processes, before and after; the first "after" start,
  which writes the token files, separately. The tokenizer is fitted once (by the old code) and
  copied, so both read the same model; the script checks that both give the same ids.
rss: peak RSS (os.wait4's ru_maxrss) of a child that trains configs/gpt_shakespeare.py:tiny for a
  few steps on a directory corpus whose train.txt is a --gb synthetic file (written here into
  --tmp, never into the repository), then of a second child that resumes it; a 1 MB corpus gives
  the baseline of the runtime itself; then the task alone (no training) on the big corpus. For
  contrast, the task alone on a 100 MB file in the built-in layout, before and after.

The report goes to --out (default runs/data_pipeline/results.json); only --update_results also
writes experiments/data_pipeline/results.json, the tracked copy.
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TRACKED = os.path.join(HERE, "results.json")


def load_config(root, name, arg):
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, "configs", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


# ------------------------------------------------------------------ children (one process each)

def child_task(a):
    """Builds the task of a config in a workdir; prints timings as JSON."""
    t_import = time.time()
    import numpy as np

    from llm_jax.tasks import build_task
    config = load_config(a.root, *a.config.split(":"))
    config.train.update(steps=2, batch_size=1)
    if a.corpus:
        config.data.corpus = a.corpus
    t0 = time.time()
    task = build_task(config, a.workdir)
    t1 = time.time()
    if a.dump:
        np.save(a.dump, np.asarray(task.train_tokens))
    print(json.dumps({"process_to_ready_s": t1 - float(os.environ["BENCH_T0"]),
                      "import_s": t0 - t_import, "task_s": t1 - t0,
                      "train_tokens": len(task.train_tokens), "vocab_size": task.vocab_size}))


def child_train(a):
    from llm_jax.training.trainer import train
    config = load_config(a.root, "gpt_shakespeare", "tiny")
    # 256-token windows: the shuffler holds one int64 per window of an epoch (32 MiB for 1 G
    # tokens), which 32-token windows would make 256 MiB.
    config.data.corpus, config.data.seq_len, config.model.max_len = a.corpus, 256, 256
    config.train.update(steps=a.steps, batch_size=8, eval_every=a.steps, eval_batches=2,
                        checkpoint_every=a.steps, log_every=1, progress_bar=False)
    t0 = time.time()
    summary = train(config, a.workdir)
    print(json.dumps({"train_s": time.time() - t0, "eval_loss": summary["eval/loss"]}))


# ------------------------------------------------------------------ the parent

def spawn(args, old=None):
    """(JSON the child printed, peak RSS in MiB) of `bench_data.py args` in a fresh process."""
    env = dict(os.environ, BENCH_T0=repr(time.time()))
    if old:
        env["PYTHONPATH"] = old
    cmd = [sys.executable, os.path.abspath(__file__), *args, "--root", old or REPO]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, cwd="/")
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {status}")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def bench_resume(a):
    root = os.path.join(a.tmp, "resume")
    shutil.rmtree(root, ignore_errors=True)
    before, after = os.path.join(root, "before"), os.path.join(root, "after")
    task = ["_task", "--config", "gpt2:124m"]
    fit, _ = spawn([*task, "--workdir", before, "--dump", os.path.join(root, "old.npy")], a.old)
    os.makedirs(after)
    shutil.copytree(os.path.join(before, "tokenizer"), os.path.join(after, "tokenizer"))
    first, _ = spawn([*task, "--workdir", after, "--dump", os.path.join(root, "new.npy")])
    same = spawn(["_same", "--workdir", os.path.join(root, "old.npy"),
                  "--corpus", os.path.join(root, "new.npy")])[0]["same"]
    runs = {"before": [], "after": []}
    for _ in range(a.repeats):  # taking turns, so that load on the machine hits both alike
        runs["before"].append(spawn([*task, "--workdir", before], a.old)[0])
        runs["after"].append(spawn([*task, "--workdir", after])[0])
    med = {k: {f: statistics.median(r[f] for r in v) for f in ("process_to_ready_s", "task_s",
                                                                "import_s")}
           for k, v in runs.items()}
    return {"config": "configs/gpt2.py:124m --config.train.steps=2 --config.train.batch_size=1",
            "fresh_start_before_s (fits SentencePiece, tokenises)": fit["process_to_ready_s"],
            "first_start_after_s (saved tokenizer, writes token files)":
                first["process_to_ready_s"],
            "resume_before": med["before"], "resume_after": med["after"],
            "speedup_task": med["before"]["task_s"] / med["after"]["task_s"],
            "train_tokens": first["train_tokens"], "same_ids_before_and_after": same,
            "repeats": a.repeats, "runs": runs}


def child_write(a):
    """Random lowercase 'words' in lines of 80 bytes; deterministic, written in 8 MiB blocks."""
    import numpy as np
    path, nbytes = a.workdir, a.steps
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(a.seed)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)
    block = 80 << 17  # 10 MiB, a multiple of 80
    with open(path + ".tmp", "wb") as f:
        for start in range(0, nbytes, block):
            n = min(block, nbytes - start)
            data = alphabet[rng.integers(len(alphabet), size=n, dtype=np.uint8)]
            data[79::80] = ord("\n")
            f.write(data.tobytes())
    os.replace(path + ".tmp", path)
    print(json.dumps({"bytes": nbytes}))


def child_same(a):
    import numpy as np
    print(json.dumps({"same": bool(np.array_equal(np.load(a.workdir), np.load(a.corpus)))}))


def write_synthetic(path, nbytes, seed=0):
    # In a child: a child's ru_maxrss starts from its parent's peak (vfork, then exec), so the
    # parent never holds more than a few MB.
    if not (os.path.exists(path) and os.path.getsize(path) == nbytes):
        spawn(["_write", "--workdir", path, "--steps", str(nbytes), "--seed", str(seed)])


def corpus_dir(root, train_bytes):
    write_synthetic(os.path.join(root, "train.txt"), train_bytes)
    write_synthetic(os.path.join(root, "valid.txt"), 1 << 20, seed=1)
    return root


def bench_rss(a):
    mib = 1 << 20
    big = corpus_dir(os.path.join(a.tmp, "synthetic"), int(a.gb * (1 << 30)) // 80 * 80)
    small = corpus_dir(os.path.join(a.tmp, "synthetic_small"), mib)
    out = {"train_file_mib": os.path.getsize(os.path.join(big, "train.txt")) / mib}
    for name, corpus in (("small_1mib_corpus", small), ("big_corpus", big)):
        workdir = os.path.join(a.tmp, f"rss_{name}")
        shutil.rmtree(workdir, ignore_errors=True)
        t0 = time.time()
        first, rss = spawn(["_train", "--corpus", corpus, "--workdir", workdir, "--steps", "5"])
        out[name] = {"fresh_peak_rss_mib": rss, "fresh_wall_s": time.time() - t0, **first}
        t0 = time.time()
        again, rss = spawn(["_train", "--corpus", corpus, "--workdir", workdir, "--steps", "10"])
        out[name].update(resume_peak_rss_mib=rss, resume_wall_s=time.time() - t0,
                         resume_eval_loss=again["eval_loss"])
        tokens = os.path.join(workdir, "tokens")
        out[name]["token_files_mib"] = sum(
            os.path.getsize(os.path.join(tokens, f)) for f in os.listdir(tokens)) / mib
    # The task alone (fresh: fits the characters, writes the token files) on the big corpus.
    workdir = os.path.join(a.tmp, "task_big_corpus")
    shutil.rmtree(workdir, ignore_errors=True)
    result, rss = spawn(["_task", "--config", "gpt_shakespeare:tiny", "--workdir", workdir,
                         "--corpus", big])
    out["task_only_big_corpus_after"] = {"peak_rss_mib": rss, "task_s": result["task_s"],
                                         "train_tokens": result["train_tokens"]}
    shutil.rmtree(workdir, ignore_errors=True)
    # Contrast: the task alone on 100 MB in the built-in layout, which the old code can read.
    data = os.path.join(a.tmp, "data_100mb")
    write_synthetic(os.path.join(data, "tinyshakespeare", "input.txt"), 100 * mib // 80 * 80)
    os.environ["LLM_JAX_DATA_DIR"] = data
    contrast = {}
    for label, old in (("before", a.old), ("after", None)):
        workdir = os.path.join(a.tmp, f"task_100mb_{label}")
        shutil.rmtree(workdir, ignore_errors=True)
        result, rss = spawn(["_task", "--config", "gpt_shakespeare:tiny", "--workdir", workdir],
                            old)
        contrast[label] = {"peak_rss_mib": rss, "task_s": result["task_s"]}
    out["task_only_100mib_tinyshakespeare_layout"] = contrast
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode")
    for name in ("_task", "_train", "_write", "_same"):
        c = sub.add_parser(name)
        c.add_argument("--root", required=True)
        c.add_argument("--workdir", required=True)
        c.add_argument("--config", default="gpt2:124m")
        c.add_argument("--corpus", default="")
        c.add_argument("--dump", default="")
        c.add_argument("--steps", type=int, default=5)
        c.add_argument("--seed", type=int, default=0)
    p.add_argument("--old", default="/tmp/old")
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--parts", default="resume,rss")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tmp", default="/tmp/llm_jax_data_bench")
    p.add_argument("--out", default=os.path.join(REPO, "runs", "data_pipeline", "results.json"))
    p.add_argument("--update_results", action="store_true")
    a = p.parse_args()
    if a.mode == "_task":
        return child_task(a)
    if a.mode in ("_train", "_write", "_same"):
        return {"_train": child_train, "_write": child_write, "_same": child_same}[a.mode](a)
    os.environ.setdefault("LLM_JAX_DATA_DIR", os.path.join(os.path.dirname(REPO), "shared", "data"))
    report = {"command": " ".join(["python", *sys.argv]), "cpus": os.cpu_count(),
              "LLM_JAX_DATA_DIR": os.environ["LLM_JAX_DATA_DIR"]}
    parts = a.parts.split(",")
    if "resume" in parts:
        report["resume"] = bench_resume(a)
        print(json.dumps(report["resume"], indent=1), flush=True)
    if "rss" in parts:
        report["rss"] = bench_rss(a)
        print(json.dumps(report["rss"], indent=1), flush=True)
    import resource  # the parent's own peak, which its children's figures start from
    report["parent_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for path in [a.out] + ([TRACKED] if a.update_results else []):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        print("wrote", path)


if __name__ == "__main__":
    main()
