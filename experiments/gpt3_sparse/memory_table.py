"""Compiled memory and time of dense vs locally banded attention (GPT-3's odd layers).

  .venv/bin/python experiments/gpt3_sparse/memory_table.py [--lengths 2048,4096,8192]
      [--window 256] [--heads 4] [--head_dim 64] [--repeats 5] [--modes fwd,fwd_bwd]
      [--out runs/gpt3_sparse]

Three ways to attend, at batch 1, over float32 q/k/v [1, T, H, D]:
  dense:         ops.dot_product_attention under the causal mask (GPT-3's even layers)
  masked_local:  the same call under ops.local_mask(T, window=w): the band, T x T logits
  blocked_local: ops.local_attention(window=w): the band block by block, T x 2w logits
Modes: fwd (the output) and fwd_bwd (the gradients of sum(output * cotangent) with respect to
q, k and v). Memory is XLA's own account of the compiled function (`memory_analysis()`: temp,
argument and output bytes), so it is exact for this backend and needs no profiler; time is the
median of --repeats calls after one warm-up call. Writes memory_table.json and memory_table.md
under --out.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from llm_jax import ops

IMPLS = ("dense", "masked_local", "blocked_local")
MODES = ("fwd", "fwd_bwd")


def attention(impl, window):
    def fn(q, k, v):
        T = q.shape[1]
        if impl == "dense":
            return ops.dot_product_attention(q, k, v, ops.causal_mask(T))
        if impl == "masked_local":
            return ops.dot_product_attention(q, k, v, ops.local_mask(T, window=window))
        return ops.local_attention(q, k, v, window=window)
    return fn


def program(impl, mode, window):
    """(function, number of [1, T, H, D] arguments it takes)."""
    fn = attention(impl, window)
    if mode == "fwd":
        return fn, 3
    # the cotangent is an argument, so XLA cannot fold the backward pass into a constant
    return jax.grad(lambda q, k, v, ct: jnp.sum(fn(q, k, v) * ct), argnums=(0, 1, 2)), 4


def measure(impl, mode, T, a):
    fn, n_args = program(impl, mode, a.window)
    rng = np.random.RandomState(0)
    args = [jnp.asarray(rng.randn(1, T, a.heads, a.head_dim).astype(np.float32))
            for _ in range(n_args)]
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    row = dict(T=T, impl=impl, mode=mode, temp_bytes=int(mem.temp_size_in_bytes),
               argument_bytes=int(mem.argument_size_in_bytes),
               output_bytes=int(mem.output_size_in_bytes), compile_s=round(compile_s, 3),
               time_ms=round(1e3 * statistics.median(times), 3),
               times_ms=[round(1e3 * t, 3) for t in times])
    row["total_bytes"] = row["temp_bytes"] + row["argument_bytes"] + row["output_bytes"]
    return row


def add_ratios(rows):
    """memory_vs_dense, time_vs_dense: each row against dense at the same T and mode."""
    dense = {(r["T"], r["mode"]): r for r in rows if r["impl"] == "dense"}
    for r in rows:
        d = dense.get((r["T"], r["mode"]))
        if d:
            r["memory_vs_dense"] = round(r["total_bytes"] / d["total_bytes"], 4)
            r["time_vs_dense"] = round(r["time_ms"] / d["time_ms"], 4)


def markdown(report):
    c = report["config"]
    lines = [f"Batch 1, {c['heads']} heads of {c['head_dim']}, float32, window {c['window']}, "
             f"{report['environment']['backend']} ({report['environment']['device']}); memory "
             "= temp + argument + output bytes of the compiled function; time = median of "
             f"{c['repeats']} calls.", "",
             "| T | mode | attention | temp MiB | total MiB | time ms | memory / dense | "
             "time / dense |", "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['T']} | {r['mode']} | {r['impl']} | {r['temp_bytes'] / 2**20:.1f} | "
                     f"{r['total_bytes'] / 2**20:.1f} | {r['time_ms']:.2f} | "
                     f"{r.get('memory_vs_dense', float('nan')):.3f} | "
                     f"{r.get('time_vs_dense', float('nan')):.3f} |")
    return "\n".join(lines) + "\n"


def parse_list(text, kind, choices=None):
    items = [kind(x) for x in text.split(",") if x]
    if not items or (choices and any(x not in choices for x in items)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list"
                                         + (f" of {choices}" if choices else ""))
    return items


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=lambda s: parse_list(s, int), default=[2048, 4096, 8192])
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head_dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--modes", type=lambda s: parse_list(s, str, MODES), default=list(MODES))
    p.add_argument("--out", default=os.path.join("runs", "gpt3_sparse"))
    a = p.parse_args()
    if a.window < 1 or a.repeats < 1 or min(a.lengths) < 1:
        p.error("--window, --repeats and every --lengths must be >= 1")
    device = jax.devices()[0]
    report = dict(
        config=dict(lengths=a.lengths, window=a.window, heads=a.heads, head_dim=a.head_dim,
                    batch=1, dtype="float32", repeats=a.repeats, modes=a.modes),
        environment=dict(jax=jax.__version__, backend=jax.default_backend(),
                         device=getattr(device, "device_kind", str(device)),
                         cpus=os.cpu_count(), python=platform.python_version(),
                         load_average=list(os.getloadavg())),
        command=" ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        rows=[])
    for T in a.lengths:
        for mode in a.modes:
            for impl in IMPLS:
                row = measure(impl, mode, T, a)
                report["rows"].append(row)
                print(f"T={T:5d} {mode:7s} {impl:13s} total {row['total_bytes'] / 2**20:9.1f} "
                      f"MiB  {row['time_ms']:9.2f} ms", flush=True)
    add_ratios(report["rows"])
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "memory_table.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(a.out, "memory_table.md"), "w") as f:
        f.write(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
