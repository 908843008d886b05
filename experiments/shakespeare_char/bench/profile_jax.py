"""Where llm_jax's train step spends its time on CPU, by kind of XLA op.

  .venv/bin/python experiments/shakespeare_char/bench/profile_jax.py [--config cpu]
      [--layers scan|loop|unroll|scan,loop,...] [--malloc tuned] [--steps 10]

Traces train steps with jax.profiler (perfetto JSON, so no TensorBoard is needed) and sums the
XLA:CPU op times per category. --layers tries two alternatives to DecoderStack's lax.scan over
layers, patched in here only (llm_jax itself is not changed): a Python loop over the stacked
parameters, or the same scan fully unrolled; given several, it times them in turns instead.
--malloc tuned reruns it with bench_train.TUNED_MALLOC_ENV.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import types

import jax
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train  # noqa: E402

import llm_jax.layers.transformer as transformer  # noqa: E402


def loop_layers(self, x, *, mask=None, dropout_key=None, cache=None):
    """DecoderStack.__call__ as a Python loop over layers (training only: no KV cache)."""
    assert cache is None
    graphdef, state = nnx.split(self.blocks)
    keys = None if dropout_key is None else jax.random.split(dropout_key, self.num_layers)
    for i in range(self.num_layers):
        block = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        x, _ = block(x, mask=mask, dropout_key=None if keys is None else keys[i])
    return x, None


def unrolled_scan():
    """A stand-in for the `jax` module inside transformer.py whose lax.scan unrolls fully."""
    scan = jax.lax.scan
    lax = types.SimpleNamespace(scan=lambda *a, **k: scan(*a, unroll=True, **k))
    return types.SimpleNamespace(random=jax.random, checkpoint=jax.checkpoint,
                                 checkpoint_policies=jax.checkpoint_policies, lax=lax)


def category(name):
    """A coarse kind for an XLA:CPU op name. Eigen dots (here the weight gradients) run
    asynchronously: their spans cover only the launch, and their work shows up as time of the
    ops they overlap, mostly the YNNPACK dots."""
    for prefix, cat in (("ynn", "matmul (YNNPACK)"), ("dot", "matmul (other dot)"),
                        ("wrapped_broadcast", "broadcast (scan buffers)"),
                        ("copy", "copy / transpose"), ("transpose", "copy / transpose")):
        if name.startswith(prefix):
            return cat
    if "dynamic-update-slice" in name:
        return "dynamic-update-slice (scan)"
    if "dynamic-slice" in name:
        return "dynamic-slice (scan)"
    return "other fusions"


def compiled_step(cfg, tokens, layers):
    """(run(n), tokens per step) for llm_jax's train step, traced with `layers`' DecoderStack."""
    saved = transformer.DecoderStack.__call__, transformer.jax
    if layers == "loop":
        transformer.DecoderStack.__call__ = loop_layers
    elif layers == "unroll":
        transformer.jax = unrolled_scan()
    try:  # the patch only matters while jit traces, i.e. during the first call
        step, spec, batch = bench_train.build_jax_step(cfg, tokens)
        state = spec.init()
        for _ in range(2):
            state, m = step(state, batch)
        jax.block_until_ready(state)
    finally:
        transformer.DecoderStack.__call__, transformer.jax = saved

    def run(n):
        nonlocal state
        for _ in range(n):
            state, m = step(state, batch)
        jax.block_until_ready((state, m))
    return run


def profile(run, steps):
    """Milliseconds per step of each op category, from a jax.profiler trace of `steps` steps."""
    trace_dir = tempfile.mkdtemp(prefix="llm_jax_trace_")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        run(steps)
    path = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]
    totals = collections.Counter()
    for e in json.load(gzip.open(path))["traceEvents"]:
        name = e.get("name", "")
        # Leaf XLA ops only: skip Python frames, executor/thread-pool spans and loop bodies.
        if e.get("ph") != "X" or name.startswith(("$", "Thunk", "Slinky", "PjRt", "while")):
            continue
        totals[category(name)] += e["dur"] / 1e3 / steps
    return totals


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="cpu", choices=sorted(bench_train.CONFIGS))
    p.add_argument("--layers", default="scan",
                   help="scan, loop or unroll; several (comma-separated) are timed in turns "
                        "and compared instead of profiled")
    p.add_argument("--malloc", choices=("default", "tuned"), default="default")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.malloc == "tuned":
        bench_train.reexec_with_tuned_malloc()
    cfg = bench_train.load_config(args.config)
    B, T = cfg.train.batch_size, cfg.data.seq_len
    tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, (B, T + 1), np.int32)
    variants = args.layers.split(",")
    runners = {v: {"run": compiled_step(cfg, tokens, v), "steps": args.steps, "compile_s": 0}
               for v in variants}
    results = bench_train.measure(runners, args.repeats)
    print(f"{args.config}, malloc={args.malloc}:")
    for v, r in results.items():
        print(f"  layers={v:7s} {r['sec_per_step'] * 1e3:8.1f} ms/step {B * T / r['sec_per_step']:9,.0f}"
              f" tok/s  x{results[variants[0]]['sec_per_step'] / r['sec_per_step']:.2f}  "
              f"runs {r['runs_s']} s, {r['minor_faults_per_step']} page faults/step, "
              f"other processes {r['other_processes_cores']} cores")
    if len(variants) == 1:
        totals = profile(runners[variants[0]]["run"], args.steps)
        for cat, ms in totals.most_common():
            print(f"  {cat:30s} {ms:8.2f} ms/step")
        print(f"  {'sum of XLA ops':30s} {sum(totals.values()):8.2f} ms/step")


if __name__ == "__main__":
    main()
