"""Training throughput of llm_jax's GPT against the same model in PyTorch (eager and compiled).

  .venv/bin/python experiments/shakespeare_char/bench/bench_train.py [--configs cpu,gpt2_124m]
      [--steps N | --steps cpu=N,gpt2_124m=M] [--malloc tuned]
      [--out runs/shakespeare_char_bench/results.json] [--update_results]

The JAX side is llm_jax's own train step (make_state_spec + make_train_step, AdamW with clipping
and the cosine schedule of the config); the PyTorch side is torch_gpt.GPT with torch.optim.AdamW
and clip_grad_norm_. Both train on the same random token batch, already in memory. Before any
timing, the PyTorch model is loaded with llm_jax's initial weights and the loss and gradient
norm of the first step must agree. Throughput is the median of 3 timed runs of N steps after
warm-up, the implementations taking turns run by run; model FLOPs use nanoGPT's estimate
(6N + 12*L*H*Dh*T per token), and each figure is also given as a share of the float32 matmul
speed measured in the same process. The report goes to --out (default under runs/); only
--update_results also writes experiments/shakespeare_char/bench/results.json, the tracked copy.
"""

import sys

from llm_jax.allocator import tune_malloc

# What `python -m llm_jax train` does first (llm_jax/cli.py), before JAX or PyTorch allocate:
# glibc's malloc tuned in this process, for both sides alike. --malloc=default/tuned opt out.
if __name__ == "__main__" and not any(a.startswith("--malloc") for a in sys.argv[1:]):
    tune_malloc()

import argparse  # noqa: E402
import json
import math
import os
import resource
import signal
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path[:0] = [HERE, REPO]

import torch_gpt  # noqa: E402
from jax_train_step import host_params, load_path, step_runner, trainer_step  # noqa: E402

from llm_jax.tasks.causal_lm import lm_loss  # noqa: E402
from llm_jax.training.optimizer import make_schedule  # noqa: E402

# name -> (config file, its argument, batch size, sequence length, vocabulary if the config
# leaves it to the tokenizer: Tiny Shakespeare has 65 characters).
CONFIGS = {
    "cpu": ("gpt_shakespeare.py", "cpu", None, None, 65),
    "gpt2_124m": ("gpt2.py", "124m", 4, 256, None),
}


def load_config(name):
    file, arg, batch, seq_len, vocab = CONFIGS[name]
    cfg = load_path("bench_cfg", os.path.join(REPO, "configs", file)).get_config(arg)
    with cfg.unlocked():
        cfg.train.batch_size = batch or cfg.train.batch_size
        cfg.data.seq_len = seq_len or cfg.data.seq_len
        cfg.model.vocab_size = cfg.model.vocab_size or vocab
        # configs/gpt2.py asks for bfloat16 activations (a GPU's default); the PyTorch side is
        # float32, so both are, as the results were measured.
        cfg.model.dtype = "float32"
    return cfg


class RandomTokensLM:
    """llm_jax.tasks.causal_lm.CausalLM.loss, without the corpus it reads in its constructor."""

    def loss(self, model, batch, dropout_key=None):
        return lm_loss(model(batch["inputs"], dropout_key=dropout_key), batch["targets"])


def flops_per_token(cfg, n_params_no_pos):
    m = cfg.model  # nanoGPT / PaLM: 6N for the matmuls, 12*L*H*Dh*T for attention scores
    return 6 * n_params_no_pos + 12 * m.num_layers * m.embed_dim * cfg.data.seq_len


def busy_cpu_seconds():
    """(CPU seconds all processes have used, CPU seconds this process has used), from /proc."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    t = os.times()
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def measure(runners, repeats):
    """Times `repeats` rounds; each round runs every implementation's `steps` steps in turn.

    Interleaving the rounds makes slow drift of this shared VM (+-15% between runs minutes
    apart) hit every implementation alike. Per implementation: the median seconds per step,
    minor page faults per step (each a first touch of freshly mapped memory, see
    TUNED_MALLOC_ENV) and how many cores other processes kept busy meanwhile (on 2 cores, any
    spoils a timing).
    """
    acc = {k: {"runs_s": [], "faults": 0, "others_s": 0.0} for k in runners}
    for _ in range(repeats):
        for key, r in runners.items():
            faults, (busy, own) = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, busy_cpu_seconds()
            t = time.perf_counter()
            r["run"](r["steps"])
            acc[key]["runs_s"].append(time.perf_counter() - t)
            busy2, own2 = busy_cpu_seconds()
            acc[key]["faults"] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            acc[key]["others_s"] += max(0.0, (busy2 - busy) - (own2 - own))
    out = {}
    for key, a in acc.items():
        steps = runners[key]["steps"]
        out[key] = {"sec_per_step": statistics.median(a["runs_s"]) / steps, "steps": steps,
                    "runs_s": [round(x, 3) for x in a["runs_s"]],
                    "compile_s": round(runners[key]["compile_s"], 2),
                    "minor_faults_per_step": round(a["faults"] / (steps * repeats)),
                    "other_processes_cores": round(a["others_s"] / sum(a["runs_s"]), 2)}
    return out


def other_processes_cores(seconds=2.0):
    """Cores that other processes keep busy, sampled over `seconds` (we sleep meanwhile)."""
    busy, own = busy_cpu_seconds()
    time.sleep(seconds)
    busy2, own2 = busy_cpu_seconds()
    return max(0.0, (busy2 - busy) - (own2 - own)) / seconds


# glibc malloc settings that keep memory mapped between train steps. XLA:CPU allocates each
# execution's buffers afresh, from its worker threads: by default glibc serves big blocks with
# fresh mmaps, trims the heap top, and gives each thread its own arena (capped at 64 MiB, past
# which it mmaps again), so every step page-faults its activation memory in anew, 4 KiB at a
# time (~16k faults/step on cpu, ~620k on gpt2_124m). One arena and high mmap/trim thresholds
# keep blocks up to 1 GiB on the heap; blocks larger still (gpt2_124m's 2.5 GB temp buffer)
# are always mmapped, and hugetlb=1 lets those use 2 MiB transparent huge pages instead.
# GLIBC_TUNABLES is read only at process start, hence the re-exec.
TUNED_MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
                    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
                    "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def reexec_with_tuned_malloc():
    """Restarts this script with TUNED_MALLOC_ENV, unless it is already in place."""
    if all(os.environ.get(k) == v for k, v in TUNED_MALLOC_ENV.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **TUNED_MALLOC_ENV})


def pick_steps(run, steps, args):
    """`steps` if given, else enough for about --seconds per implementation over all repeats."""
    if steps:
        return steps
    count, t = 0, time.perf_counter()
    while time.perf_counter() - t < 0.5 or count == 0:
        run(1)
        count += 1
    per_step = (time.perf_counter() - t) / count
    return max(5, math.ceil(args.seconds / args.repeats / per_step))


# ---------------------------------------------------------------- JAX (llm_jax)

def build_jax_step(cfg, tokens):
    """llm_jax's jitted train step, its state spec, and the batch placed as the trainer does."""
    step, spec, _, batch = trainer_step(cfg, RandomTokensLM(),
                                        {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]})
    return step, spec, batch


def jax_side(cfg, tokens, steps, args):
    step, spec, batch = build_jax_step(cfg, tokens)
    state = spec.init()
    params = host_params(state)
    fwd = jax.jit(lambda p, b: RandomTokensLM().loss(nnx.merge(spec.graphdef, p), b)[0])
    first_loss = float(fwd(state["params"], batch))
    run, compile_s, metrics = step_runner(step, state, batch)
    runner = {"run": run, "steps": pick_steps(run, steps, args), "compile_s": compile_s}
    n_pos = params["positions"]["table"].size
    n_params = sum(x.size for x in jax.tree.leaves(params))
    parity = {"fwd_loss": first_loss, "step_loss": float(metrics["loss"]),
              "grad_norm": float(metrics["grad_norm"])}
    return runner, parity, params, n_params, n_params - n_pos


# ---------------------------------------------------------------- PyTorch

class CompileTimeout(Exception):
    pass


def torch_parity(cfg, params, tokens):
    model = torch_gpt.GPT(cfg.model)
    torch_gpt.load_llm_jax_params(model, params, cfg.model.num_layers)
    x, y = (torch.from_numpy(np.ascontiguousarray(a)).long()
            for a in (tokens[:, :-1], tokens[:, 1:]))
    loss = model(x, y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    return {"fwd_loss": loss.item(), "grad_norm": norm.item()}


def torch_side(cfg, tokens, lrs, steps, args, compile_model):
    """A runner for PyTorch's train step; compile_model: torch.compile(model), as nanoGPT does."""
    torch.manual_seed(cfg.seed)
    model = torch_gpt.GPT(cfg.model)
    impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    opt = torch_gpt.make_adamw(model, cfg.optimizer, **impl[args.torch_adamw])
    fwd = torch.compile(model) if compile_model else model
    x, y = (torch.from_numpy(np.ascontiguousarray(a)).long()
            for a in (tokens[:, :-1], tokens[:, 1:]))
    clip, i = cfg.optimizer.grad_clip, 0

    def run(n):
        nonlocal i
        for _ in range(n):
            loss = fwd(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for group in opt.param_groups:
                group["lr"] = lrs[i % len(lrs)]
            opt.step()
            opt.zero_grad(set_to_none=True)
            i += 1
        return loss.item()  # CPU PyTorch is synchronous; this just uses the result

    compile_s = first_run(run, args.compile_timeout if compile_model else 0)
    run(1)
    return {"run": run, "steps": pick_steps(run, steps, args), "compile_s": compile_s}


def first_run(run, timeout_s: int = 0) -> float:
    """Seconds of run(1), the step that compiles; with timeout_s, SIGALRM aborts a compile
    that takes unreasonably long (CompileTimeout)."""
    t = time.perf_counter()
    if not timeout_s:
        run(1)
        return time.perf_counter() - t

    def on_alarm(*_):
        raise CompileTimeout(f"compile took over {timeout_s} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout_s)
    try:
        run(1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return time.perf_counter() - t


# ---------------------------------------------------------------- matmul ceiling

def matmul_gflops(n, reps=5):
    """Best-of-`reps` float32 n x n matmul speed of each framework, GFLOP/s."""
    a, b = (jax.random.normal(jax.random.key(k), (n, n), jnp.float32) for k in (0, 1))
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    best_jax = min(_time(lambda: mm(a, b).block_until_ready()) for _ in range(reps))
    ta, tb = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(ta, tb)
    best_torch = min(_time(lambda: torch.matmul(ta, tb)) for _ in range(reps))
    return {"jax": 2 * n**3 / best_jax / 1e9, "torch": 2 * n**3 / best_torch / 1e9}


def _time(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


# ---------------------------------------------------------------- report

def environment(args):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown")
    return {"jax": jax.__version__, "torch": torch.__version__, "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "jax_backend": jax.default_backend(), "jax_devices": jax.device_count(),
            "torch_adamw": args.torch_adamw, "malloc": args.malloc,
            "llm_jax_allocator": tune_malloc() if args.malloc == "llm_jax" else None}


def cell(r, key="tok_s"):
    return f"{r[key]:,.0f}" if "error" not in r else f"failed: {r['error']}"


def ratio(jax_r, other):
    return f"{jax_r['tok_s'] / other['tok_s']:.2f}x" if "error" not in other else "n/a"


def print_report(report):
    ceiling = report["ceiling_gflops"]
    print("\n| config | llm_jax tok/s | torch eager tok/s | torch.compile tok/s | jax/eager "
          "| jax/compile | jax GFLOP/s (% ceiling) | torch best GFLOP/s (% ceiling) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in report["results"].items():
        j, e, c = r["llm_jax"], r["torch_eager"], r["torch_compile"]
        best = max((x for x in (e, c) if "error" not in x), key=lambda x: x["tok_s"])
        print(f"| {name} | {cell(j)} | {cell(e)} | {cell(c)} | {ratio(j, e)} | {ratio(j, c)} "
              f"| {j['gflops']:.1f} ({100 * j['gflops'] / ceiling:.0f}%) "
              f"| {best['gflops']:.1f} ({100 * best['gflops'] / ceiling:.0f}%) |")
    for name, r in report["results"].items():
        for k, v in r.items():
            if isinstance(v, dict) and v.get("other_processes_cores", 0) > 0.2:
                print(f"WARNING: other processes kept {v['other_processes_cores']} cores busy "
                      f"while {name}/{k} was timed: that figure is not trustworthy")
    env, mm = report["environment"], report["matmul_gflops"]
    print(f"\nfloat32 matmul ceiling ({report['matmul_n']}^2, best of 5): jax {mm['jax']:.1f} "
          f"GFLOP/s, torch {mm['torch']:.1f} GFLOP/s; % ceiling is of the larger, "
          f"{ceiling:.1f}.")
    print(f"jax {env['jax']} ({env['jax_backend']}, {env['jax_devices']} device, XLA's own "
          f"thread pool), torch {env['torch']} ({env['torch_threads']} threads, AdamW "
          f"{env['torch_adamw']}); CPU {env['cpu']}, {env['cores']} cores; glibc malloc "
          f"{env['malloc']}; other processes used "
          f"{env['other_processes_cores_at_start']:.2f} cores at start.")
    for name, r in report["results"].items():
        details = "; ".join(f"{k}: {v['steps']} steps x {len(v['runs_s'])}, runs {v['runs_s']} s, "
                            f"warm-up {v['compile_s']} s, {v['minor_faults_per_step']} page "
                            f"faults/step, other processes {v['other_processes_cores']} cores"
                            for k, v in r.items()
                            if isinstance(v, dict) and "steps" in v)
        j, t = r["parity"]["jax"], r["parity"]["torch"]
        print(f"\n{name}: {r['params']:,} params, {r['tokens_per_step']} tokens/step, "
              f"{r['flops_per_token'] / 1e6:.1f} MFLOP/token. Parity at llm_jax's init: loss "
              f"jax {j['fwd_loss']:.6f} / torch {t['fwd_loss']:.6f}, grad norm jax "
              f"{j['grad_norm']:.6f} / torch {t['grad_norm']:.6f}.\n  {details}")


def parse_steps(text, names):
    """"N" (every config) or "name=N,..." -> {config name: steps}; missing names are absent."""
    if text.isdigit():
        return dict.fromkeys(names, int(text))
    pairs = (item.split("=") for item in text.split(",") if item)
    return {name: int(n) for name, n in pairs}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="cpu,gpt2_124m")
    p.add_argument("--steps", default="", help="timed steps per repeat: N, or per config as "
                   "cpu=N,gpt2_124m=M (unset: enough for ~--seconds, at least 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per side")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    # fused: the fastest of the three for PyTorch here (cpu config, eager: 13.0k tok/s against
    # 10.1k for the default single-tensor loop and 9.4k for foreach).
    p.add_argument("--torch-adamw", choices=("default", "foreach", "fused"), default="fused")
    p.add_argument("--compile-timeout", type=int, default=900)
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--malloc", choices=("llm_jax", "default", "tuned"), default="llm_jax",
                   help="llm_jax: llm_jax.allocator's start-up setting, as the CLI applies it; "
                        "default: glibc untouched; tuned: rerun with TUNED_MALLOC_ENV "
                        "(each applies to both sides alike)")
    p.add_argument("--out", default=os.path.join("runs", "shakespeare_char_bench", "results.json"),
                   help="the JSON report")
    p.add_argument("--update_results", action="store_true",
                   help=f"also write {os.path.join(HERE, 'results.json')}")
    args = p.parse_args()
    outs = [args.out] + ([os.path.join(HERE, "results.json")] if args.update_results else [])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # fail before timing
    args.steps = parse_steps(args.steps, args.configs.split(","))
    if args.malloc == "tuned":
        reexec_with_tuned_malloc()
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("high")  # no effect on CPU; the usual setting elsewhere

    report = {"environment": environment(args), "matmul_n": args.matmul_n, "results": {}}
    busy = report["environment"]["other_processes_cores_at_start"] = other_processes_cores()
    if busy > 0.2:
        print(f"warning: other processes keep {busy:.2f} cores busy: timings will be noisy")
    mm = matmul_gflops(args.matmul_n)
    report["matmul_gflops"] = mm
    report["ceiling_gflops"] = ceiling = max(mm.values())

    for name in args.configs.split(","):
        cfg = load_config(name)
        B, T = cfg.train.batch_size, cfg.data.seq_len
        tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, (B, T + 1), np.int32)
        print(f"[{name}] llm_jax ...", flush=True)
        runners, results = {}, {}
        steps = args.steps.get(name)
        runners["llm_jax"], parity, params, n_params, n_no_pos = jax_side(cfg, tokens, steps, args)

        # Parity: PyTorch with llm_jax's initial weights must give the same loss and gradients.
        t_par = torch_parity(cfg, params, tokens)
        parity = {"jax": parity, "torch": t_par}
        assert abs(parity["jax"]["fwd_loss"] - t_par["fwd_loss"]) < 1e-4, parity
        assert abs(parity["jax"]["step_loss"] - t_par["fwd_loss"]) < 1e-4, parity
        assert math.isclose(parity["jax"]["grad_norm"], t_par["grad_norm"], rel_tol=1e-3), parity
        n_torch = sum(p.numel() for p in torch_gpt.GPT(cfg.model).parameters())
        assert n_torch == n_params, (n_torch, n_params)
        del params

        schedule = make_schedule(cfg.optimizer, cfg.train.steps)
        lrs = np.asarray(jax.vmap(schedule)(jnp.arange(cfg.train.steps)), np.float64).tolist()
        for key, compiled in (("torch_eager", False), ("torch_compile", True)):
            print(f"[{name}] {key} ...", flush=True)
            try:
                runners[key] = torch_side(cfg, tokens, lrs, steps, args, compiled)
            except Exception as e:  # reported in the table, not dropped
                results[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"}
        print(f"[{name}] timing {', '.join(runners)}, interleaved ...", flush=True)
        results.update(measure(runners, args.repeats))
        del runners
        results = {k: results[k] for k in ("llm_jax", "torch_eager", "torch_compile")}
        fpt = flops_per_token(cfg, n_no_pos)
        for r in results.values():
            if "error" not in r:
                r["tok_s"] = B * T / r["sec_per_step"]
                r["gflops"] = r["tok_s"] * fpt / 1e9
                r["pct_ceiling"] = 100 * r["gflops"] / ceiling
        report["results"][name] = {**results, "tokens_per_step": B * T, "params": n_params,
                                   "params_no_positions": n_no_pos, "flops_per_token": fpt,
                                   "parity": parity}
    print_report(report)
    for out in outs:
        with open(out, "w") as f:
            json.dump(report, f, indent=2)
    print(f"\nwrote {' and '.join(outs)}")


if __name__ == "__main__":
    main()
