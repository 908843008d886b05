"""What bounds one greedy decoding step of the GPT-2-124M shape at batch 1 on this CPU.

  .venv/bin/python experiments/gpt2_zeroshot/bench/decode_floor.py \
      [--out runs/gpt2_zeroshot_bench/decode_floor.json]

At batch 1 a decoding step reads every weight once (about 0.5 GB in float32) to do 2 FLOPs per
weight, so it is bound by memory bandwidth, not compute. This measures, on one random-weight
model of bench_decode.py's shape (float32, 50,257 rows):
  read_GBps     the machine's read bandwidth as XLA sees it: a jitted sum over a 512 MiB array;
  floor_ms      the model's weight bytes / read_GBps: no step can be faster (caches aside);
  step_ms       one jitted KV-cache step (model.forward on one token, cache holding the prompt's
                32 positions of 160) as generate_tokens' while loop runs it: after
                DecoderStack.hoist_layers, each layer's weights sliced out of the stack once,
                outside the loop;
  sliced_step_ms  the same step slicing each layer's weights out of the stacked parameters
                inside the step, as the loop did before hoist_layers (the config's scan over
                layers), and sliced_loop_step_ms with scan_layers=False (a Python loop);
  head_ms       the tied output projection alone ([1, 768] x [768, 50257]) and blocks_ms, the
                step without it: which part runs at the bandwidth and which does not.
Each time is the median of --repeats calls after a warm-up call. bench_decode.py's per-token
times (its results_decode.json) are the whole loop's; this splits one step of it.
"""

import sys

from llm_jax.allocator import tune_malloc

if __name__ == "__main__":
    tune_malloc()  # as bench_decode.py: the start-up malloc setting llm_jax's CLI applies

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from llm_jax.models import build_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_decode import SHAPES, bench, model_config  # noqa: E402


def median_ms(fn, *args, repeats):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _unrolled(cfg):
    cfg = cfg.copy_and_resolve_references()
    cfg.scan_layers = False
    return cfg


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=tuple(SHAPES), default="124m")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--cache-len", type=int, default=160, help="bench_decode's 32 + 128")
    p.add_argument("--out", default=os.path.join("runs", "gpt2_zeroshot_bench", "decode_floor.json"))
    args = p.parse_args()
    if args.repeats < 1 or args.prompt_len < 1:
        p.error("--repeats and --prompt-len must be >= 1")
    if args.cache_len <= args.prompt_len:
        p.error(f"--cache-len={args.cache_len} must exceed --prompt-len={args.prompt_len}: the "
                "step writes one more position into the cache")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    busy = bench.other_processes_cores()

    big = jnp.ones((2**27,), jnp.float32)  # 512 MiB, far past the caches
    sum_ms = median_ms(jax.jit(jnp.sum), big, repeats=args.repeats)
    read_gbps = big.nbytes / sum_ms / 1e6
    del big

    cfg = model_config(args.shape, 50257)
    model = build_model(cfg, rngs=nnx.Rngs(params=0))
    graphdef, params = nnx.split(model)
    weight_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    # the position table is read one row a step, not whole
    weight_bytes -= model.positions.table[...].nbytes

    def step_time(graphdef, params):
        """One KV-cache step after a prompt, timed."""
        @jax.jit
        def prefill(params, tokens):
            m = nnx.merge(graphdef, params)
            return m.forward(tokens, cache=m.init_cache(1, args.cache_len))[1]

        @jax.jit
        def step(params, token, cache):
            return nnx.merge(graphdef, params).forward(token, cache=cache)

        cache = prefill(params, jnp.ones((1, args.prompt_len), jnp.int32))
        return median_ms(step, params, jnp.ones((1, 1), jnp.int32), cache, repeats=args.repeats)

    @jax.jit
    def head(params, x):
        return nnx.merge(graphdef, params).embed.attend(x)

    sliced_step_ms = step_time(graphdef, params)  # configs/gpt2.py:124m: scan_layers=True
    # the same parameters (stacked either way), the layers as a Python loop instead of a scan
    loop_graphdef = nnx.graphdef(build_model(_unrolled(cfg), rngs=nnx.Rngs(0)))
    sliced_loop_step_ms = step_time(loop_graphdef, params)
    model.stack.hoist_layers()  # eagerly: the slices are arguments of the step, not work in it
    step_ms = step_time(*nnx.split(model))
    head_ms = median_ms(head, params, jnp.ones((1, 1, cfg.embed_dim), jnp.float32),
                        repeats=args.repeats)
    head_bytes = model.embed.table[...].nbytes
    floor_ms = weight_bytes / read_gbps / 1e6
    report = {
        "shape": args.shape, "environment": {"jax": jax.__version__, "cpus": len(os.sched_getaffinity(0)),
                                             "other_processes_cores_at_start": busy},
        "read_GBps": read_gbps, "weight_bytes": weight_bytes, "floor_ms": floor_ms,
        "step_ms": step_ms, "step_GBps": weight_bytes / step_ms / 1e6,
        "head_ms": head_ms, "head_GBps": head_bytes / head_ms / 1e6,
        "blocks_ms": step_ms - head_ms,
        "blocks_GBps": (weight_bytes - head_bytes) / (step_ms - head_ms) / 1e6,
        "step_over_floor": step_ms / floor_ms,
        "sliced_step_ms": sliced_step_ms, "sliced_step_over_floor": sliced_step_ms / floor_ms,
        "sliced_loop_step_ms": sliced_loop_step_ms,
        "repeats": args.repeats,
        "command": " ".join(sys.argv),
    }
    for k, v in report.items():
        print(f"{k:>16}: {v:.3f}" if isinstance(v, float) else f"{k:>16}: {v}")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
