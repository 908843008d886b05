"""Where the encoder-inference gap is: each piece of a BERT-mini layer at bench_bert.py's batch
(32 x 128 = 4,096 tokens), float32, alone, under jax.jit and in PyTorch, side by side.

  .venv/bin/python experiments/bert_pretraining/bench/encoder_pieces.py \
      --out=runs/bert_bench/encoder_pieces.json

The matmuls are a layer's four projections (QKV fused, attention output, FFN in and out); the
elementwise pieces are exact (erf) GELU on the FFN's hidden activations, the attention
softmax over [32, 4, 128, 128] and a LayerNorm over [4,096, 256]. Each is timed as the median
of --repeats runs of --calls calls after one warm-up call; PyTorch runs one thread per core.
A piece alone is not the piece inside the model (XLA fuses elementwise work into its
neighbours), so the sums here explain, not reproduce, bench_bert.py's figure.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import numpy as np

TOKENS, D, FFN, HEADS, T = 4096, 256, 1024, 4, 128
MATMULS = {"qkv": (D, 3 * D), "attention_out": (D, D), "ffn_in": (D, FFN), "ffn_out": (FFN, D)}


def timed_ms(fn, args, calls, repeats):
    fn(*args)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        if hasattr(out, "block_until_ready"):
            out.block_until_ready()
        runs.append((time.perf_counter() - t) / calls * 1e3)
    return statistics.median(runs)


def pieces(rng):
    """{name: (jax fn, torch fn, inputs as numpy arrays)}."""
    import jax
    import jax.numpy as jnp
    import torch

    def layer_norm(x):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) * jax.lax.rsqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-12)

    out = {}
    for name, (k, n) in MATMULS.items():
        a = rng.standard_normal((TOKENS, k), np.float32)
        out[name] = (jnp.dot, torch.mm, (a, rng.standard_normal((k, n), np.float32)))
    out["gelu_erf"] = (lambda x: jax.nn.gelu(x, approximate=False), torch.nn.functional.gelu,
                       (rng.standard_normal((TOKENS, FFN), np.float32),))
    out["softmax"] = (lambda x: jax.nn.softmax(x, -1), lambda x: torch.softmax(x, -1),
                      (rng.standard_normal((TOKENS // T, HEADS, T, T), np.float32),))
    ln = torch.nn.LayerNorm(D, eps=1e-12)
    out["layernorm"] = (layer_norm, lambda x: ln(x), (rng.standard_normal((TOKENS, D), np.float32),))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--out", default=os.path.join("runs", "bert_bench", "encoder_pieces.json"))
    args = p.parse_args(argv)
    for flag in ("calls", "repeats", "threads"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag}={getattr(args, flag)}: must be >= 1")
    import jax
    import torch

    torch.set_num_threads(args.threads)
    rows = {}
    for name, (jax_fn, torch_fn, inputs) in pieces(np.random.default_rng(0)).items():
        jitted = jax.jit(jax_fn)
        jax_ms = timed_ms(jitted, [jax.numpy.asarray(x) for x in inputs], args.calls, args.repeats)
        with torch.no_grad():
            torch_ms = timed_ms(torch_fn, [torch.from_numpy(x) for x in inputs], args.calls,
                                args.repeats)
        with torch.no_grad():  # the two sides compute the same thing, or the timing says nothing
            ref = torch_fn(*[torch.from_numpy(x) for x in inputs]).numpy()
        diff = float(np.max(np.abs(np.asarray(jitted(*inputs)) - ref)) / max(np.max(np.abs(ref)), 1e-30))
        if diff > 1e-4:
            raise SystemExit(f"{name}: jax and torch differ by {diff:.2e} (relative): parity failed")
        rows[name] = {"jax_ms": jax_ms, "torch_ms": torch_ms, "jax_over_torch": jax_ms / torch_ms,
                      "max_rel_diff": diff}
        print(f"{name:14s} jax {jax_ms:8.3f} ms   torch {torch_ms:8.3f} ms   "
              f"jax/torch {jax_ms / torch_ms:5.2f}", flush=True)
    report = {"command": " ".join(["python", *sys.argv]), "jax": jax.__version__,
              "torch": torch.__version__, "threads": args.threads, "tokens": TOKENS, "pieces": rows}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
