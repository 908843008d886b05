"""Train-step speed and page faults of configs/gpt_shakespeare.py:cpu under each malloc setting.

  .venv/bin/python experiments/shakespeare_char/bench/bench_malloc.py [--repeats 3]
      [--steps 50] [--cli-steps 60] [--modes steps,cli] [--variants default,mallopt,...]
      [--out results_malloc.json]

Variants (llm_jax/allocator.py):
  default      glibc as it comes (LLM_JAX_MALLOC=default)
  mallopt      mallopt(3) at start-up, the command line's default
  env          re-exec with MALLOC_* and GLIBC_TUNABLES=glibc.malloc.hugetlb=1
  env_nohuge   the MALLOC_* variables alone, to tell what hugetlb adds

Step mode: a fresh process per variant and repeat, the variants taking turns within each
repeat (this VM's speed drifts by +-15% over minutes, and other people's jobs share its two
cores). Each builds the run as the trainer does (Experiment on the real corpus), compiles,
then times --steps steps and counts the minor page faults they cause. CLI mode then times
`python -m llm_jax train` end to end and reads train/tokens_per_sec from metrics.jsonl.
Every figure is a median over repeats; the load average is sampled before every process.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, REPO)

from llm_jax import allocator  # noqa: E402

VARIANTS = ("default", "mallopt", "env", "env_nohuge")


def variant_env(variant):
    env = {k: v for k, v in os.environ.items()
           if k not in allocator.TUNED_ENV and k != "GLIBC_TUNABLES"}
    if variant == "env_nohuge":
        return {**env, **allocator.TUNED_ENV, allocator.ENV_VAR: "default"}
    return {**env, allocator.ENV_VAR: variant}


def _cpu_seconds():
    """CPU time of all this process's threads: unlike wall time, barely changed by other
    people's jobs on the same cores (only through caches), so the steadier figure here."""
    t = os.times()
    return t.user + t.system


def child(steps):
    """One variant in this process: the allocator first, then JAX."""
    applied = allocator.tune_malloc()
    import jax

    sys.path.insert(0, os.path.join(REPO, "tests"))
    from conftest import load_config

    from llm_jax.training.experiment import Experiment
    from llm_jax.training.steps import make_train_step

    cfg = load_config("gpt_shakespeare", "cpu")
    with tempfile.TemporaryDirectory() as workdir:
        exp = Experiment(cfg, workdir)
        step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh)
        it = iter(exp.task.train_batches(cfg.train.batch_size, cfg.seed))
        batches = [exp.put_batch(next(it)) for _ in range(steps + 3)]
        state = exp.spec.init()
        for b in batches[:3]:  # compile, and let the allocator reach its steady state
            state, m = step(state, b)
        jax.block_until_ready(state)
        faults, t, cpu = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter(),
                          _cpu_seconds())
        for b in batches[3:]:
            state, m = step(state, b)
        jax.block_until_ready(state)
        seconds, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    tokens = steps * cfg.train.batch_size * cfg.data.seq_len
    print(json.dumps({"applied": applied, "tok_s": tokens / seconds, "ms_per_step": 1e3 * seconds / steps,
                      "faults_per_step": faults / steps,
                      "cpu_ms_per_step": 1e3 * cpu / steps, "loss": float(m["loss"])}))


def run_child(variant, steps):
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, "--child", str(steps)], env=variant_env(variant),
                         capture_output=True, text=True, check=True, cwd=REPO)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load1": load}


def run_cli(variant, steps):
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        before, t = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt, time.perf_counter()
        subprocess.run([sys.executable, "-m", "llm_jax", "train", "--config=configs/gpt_shakespeare.py:cpu",
                        f"--workdir={workdir}", f"--config.train.steps={steps}",
                        "--config.train.progress_bar=False"], env=variant_env(variant),
                       capture_output=True, text=True, check=True, cwd=REPO)
        wall = time.perf_counter() - t
        faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
    # the first logged row also holds steps 2..10, just after compilation: leave it out
    tok_s = [r["train/tokens_per_sec"] for r in rows if "train/tokens_per_sec" in r][1:]
    return {"tok_s": statistics.median(tok_s), "wall_s": wall, "faults_total": faults, "load1": load}


def summarise(results):
    out = {}
    for variant, runs in results.items():
        out[variant] = {k: round(statistics.median(r[k] for r in runs), 3)
                        for k in runs[0] if isinstance(runs[0][k], float | int)}
        out[variant]["tok_s_runs"] = [round(r["tok_s"]) for r in runs]
        if "applied" in runs[0]:
            out[variant]["applied"] = sorted({r["applied"] for r in runs})
    for variant, runs in results.items():
        if "default" in results:  # tok/s over default's in the same repeat, then the median
            pairs = [r["tok_s"] / d["tok_s"] for r, d in zip(runs, results["default"])]
            out[variant]["paired_speedup_vs_default"] = round(statistics.median(pairs), 3)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cli-steps", type=int, default=60)
    p.add_argument("--modes", default="steps,cli", help="steps, cli or both")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child)
    variants = args.variants.split(",")
    modes = args.modes.split(",")
    steps = {v: [] for v in variants} if "steps" in modes else {}
    cli = {v: [] for v in variants if v != "env_nohuge"} if "cli" in modes else {}
    loads = []
    for r in range(args.repeats):
        for v in steps:
            steps[v].append(run_child(v, args.steps))
            print(f"[repeat {r + 1}] step {v}: {steps[v][-1]}", flush=True)
        for v in cli:
            cli[v].append(run_cli(v, args.cli_steps))
            print(f"[repeat {r + 1}] cli {v}: {cli[v][-1]}", flush=True)
        loads.append(os.getloadavg())
    record = {"command": " ".join([os.path.relpath(__file__, REPO), *sys.argv[1:]]),
              "cpu_count": os.cpu_count(), "loadavg_after_each_repeat": loads,
              "steps": summarise(steps) if steps else None, "cli": summarise(cli) if cli else None}
    print(json.dumps(record, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
