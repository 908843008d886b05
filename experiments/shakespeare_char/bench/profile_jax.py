"""Where llm_jax's train step spends its time on CPU, by kind of XLA op.

  .venv/bin/python experiments/shakespeare_char/bench/profile_jax.py [--config cpu]
      [--layers scan|loop|unroll] [--mallopt]

Traces 10 train steps with jax.profiler (perfetto JSON, so no TensorBoard is needed) and sums
the XLA:CPU thunk times per category. --layers tries two alternatives to DecoderStack's
lax.scan over layers, patched in here only (llm_jax itself is not changed): a Python loop over
the stacked parameters, or the same scan fully unrolled. --mallopt applies bench_train's
allocator setting.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="cpu", choices=sorted(bench_train.CONFIGS))
    p.add_argument("--layers", default="scan", choices=("scan", "loop", "unroll"))
    p.add_argument("--mallopt", action="store_true")
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    if args.mallopt:
        bench_train.tune_malloc()
    if args.layers == "loop":
        transformer.DecoderStack.__call__ = loop_layers
    elif args.layers == "unroll":
        transformer.jax = unrolled_scan()

    cfg = bench_train.load_config(args.config)
    B, T = cfg.train.batch_size, cfg.data.seq_len
    tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, (B, T + 1), np.int32)
    step, spec, batch = bench_train.build_jax_step(cfg, tokens)
    state = spec.init()
    for _ in range(2):
        state, m = step(state, batch)
    jax.block_until_ready(state)
    t = time.perf_counter()
    for _ in range(args.steps):
        state, m = step(state, batch)
    jax.block_until_ready((state, m))
    untraced = (time.perf_counter() - t) / args.steps

    trace_dir = tempfile.mkdtemp(prefix="llm_jax_trace_")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(args.steps):
            state, m = step(state, batch)
        jax.block_until_ready((state, m))
    path = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]
    events = json.load(gzip.open(path))["traceEvents"]
    totals = collections.Counter()
    for e in events:
        name = e.get("name", "")
        # Leaf XLA ops only: skip Python frames, executor/thread-pool spans and loop bodies.
        if e.get("ph") != "X" or name.startswith(("$", "Thunk", "Slinky", "PjRt", "while")):
            continue
        totals[category(name)] += e["dur"] / 1e3 / args.steps
    print(f"{args.config}, layers={args.layers}, mallopt={args.mallopt}: "
          f"{untraced * 1e3:.1f} ms/step untraced ({B * T / untraced:,.0f} tok/s)")
    for cat, ms in totals.most_common():
        print(f"  {cat:30s} {ms:8.2f} ms/step")
    print(f"  {'sum of XLA ops':30s} {sum(totals.values()):8.2f} ms/step")


if __name__ == "__main__":
    main()
