"""Greedy KV-cache generation speed of llm_jax's GPT against Hugging Face GPT2LMHeadModel.generate.

  .venv/bin/python experiments/gpt2_zeroshot/bench/bench_decode.py [--shape 124m|tiny]
      [--vocab 50257] [--batches 1,8] [--prompt-len 32] [--new-tokens 128] [--repeats 3]
      [--malloc tuned] [--out runs/gpt2_zeroshot_bench/decode.json]

One random-weight model serves both sides: llm_jax's GPT with the shape of configs/gpt2.py:124m
(12 layers, 12 heads, 768 wide, context 1024; --vocab rows, GPT-2's 50,257 or the config's
padded 50,304), float32, exported with interop.gpt2.params_to_hf + hf_config and read back by
GPT2LMHeadModel.from_pretrained (PyTorch, its default attention, use_cache=True). For each
--batches size both generate --new-tokens tokens greedily after the same random prompts of
--prompt-len tokens: llm_jax's tasks.lm_decoding.generate_tokens(temperature=0) with its KV
cache, against generate(do_sample=False, use_cache=True) with EOS stopping off. Before any
timing the two sides' ids must be equal for every prompt, or the script stops.

Prefill and per-token time are measured the same way on both sides, from whole generate calls:
prefill is a call that generates one token (the prompt's forward into the cache and the first
greedy token: time to first token), per token is (full call - one-token call) / (new tokens -
1). Each call is warmed up once first (jit compilation excluded); a figure is the median of
--repeats timed runs, all four calls of a batch size taking turns (the shakespeare benchmark's
`measure`). tokens/s counts generated tokens of all rows: batch * new tokens / full call,
batch / per-token time, batch * prompt / prefill. The report goes to --out.
"""

import sys

from llm_jax.allocator import tune_malloc

# As bench_train.py: llm_jax's start-up malloc setting, before anything allocates, both sides.
if __name__ == "__main__" and not any(a.startswith("--malloc") for a in sys.argv[1:]):
    tune_malloc()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from llm_jax.interop import gpt2 as gpt2_interop  # noqa: E402
from llm_jax.interop.hf_files import write_dir  # noqa: E402
from llm_jax.models import build_model  # noqa: E402
from llm_jax.tasks.lm_decoding import generate_tokens  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# Changes to configs/gpt2.py:124m's model section; "tiny" is for the smoke test.
SHAPES = {"124m": {}, "tiny": dict(num_layers=2, num_heads=2, embed_dim=64, max_len=256)}


# The GPT training benchmark's timing helpers (measure, pick_steps, environment).
BENCH_DIR = os.path.join(REPO, "experiments", "shakespeare_char", "bench")
sys.path.insert(0, BENCH_DIR)
from jax_train_step import load_path  # noqa: E402

bench = load_path("shakespeare_bench_train", os.path.join(BENCH_DIR, "bench_train.py"))


def model_config(shape, vocab):
    cfg = load_path("gpt2_config", os.path.join(REPO, "configs", "gpt2.py")).get_config("124m").model
    cfg.update(SHAPES[shape])
    # configs/gpt2.py asks for bfloat16 activations (a GPU's default); PyTorch's bfloat16 on a
    # CPU is far slower than its float32, so both sides run float32.
    cfg.update(vocab_size=vocab, dtype="float32", param_dtype="float32")
    return cfg


def build_pair(cfg, seed, directory):
    """(llm_jax GPT with random weights, the same weights as a GPT2LMHeadModel)."""
    import transformers

    ours = build_model(cfg, rngs=nnx.Rngs(params=seed))
    tensors = gpt2_interop.params_to_hf(nnx.to_pure_dict(nnx.state(ours, nnx.Param)), cfg)
    write_dir(directory, gpt2_interop.hf_config(cfg), tensors)
    hf = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    # Every row generates exactly --new-tokens tokens, as generate_tokens without eos_id does.
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    return ours, hf


def first_difference(ours, want):
    """(row, position) of the first id where the two [B, L] arrays differ, or None."""
    rows, cols = np.nonzero(ours != want)
    return None if rows.size == 0 else (int(rows[0]), int(cols[0]))


def time_batch(ours, hf, prompts, args):
    """Parity, then the four calls of one batch size timed in turns; the batch's report row."""
    B, P, N = prompts.shape[0], prompts.shape[1], args.new_tokens
    prompt_lists = prompts.tolist()
    hf_inputs = dict(input_ids=torch.from_numpy(prompts),
                     attention_mask=torch.ones(prompts.shape, dtype=torch.int64))

    def ours_call(n_new):
        def run(steps):
            for _ in range(steps):
                out = generate_tokens(ours, prompt_lists, n_new, temperature=0.0)  # host lists
            return np.asarray(out, np.int64)
        return run

    def hf_call(n_new):
        def run(steps):
            with torch.inference_mode():
                for _ in range(steps):
                    out = hf.generate(**hf_inputs, do_sample=False, max_new_tokens=n_new,
                                      use_cache=True)
            return out.numpy()
        return run

    calls = {"llm_jax": ours_call(N), "llm_jax_first_token": ours_call(1),
             "hf_generate": hf_call(N), "hf_generate_first_token": hf_call(1)}
    runners, outputs = {}, {}
    for key, run in calls.items():  # warm-up: compiles llm_jax's two programs
        t = time.perf_counter()
        outputs[key] = run(1)
        runners[key] = {"run": run, "compile_s": time.perf_counter() - t}
    for mine, theirs in (("llm_jax", "hf_generate"), ("llm_jax_first_token", "hf_generate_first_token")):
        a, b = outputs[mine], outputs[theirs]
        where = first_difference(a, b) if a.shape == b.shape else (0, 0)
        if where is not None:
            r, c = where
            sys.exit(f"parity: batch {B}, {mine} and {theirs} differ (shapes {a.shape}, "
                     f"{b.shape}) first at row {r}, position {c} (prompt {P}): llm_jax "
                     f"{a[r, c:c + 3].tolist()}..., HF {b[r, c:c + 3].tolist()}...; not timing")
    for r in runners.values():
        r["steps"] = bench.pick_steps(r["run"], args.steps or None, args)
    print(f"[batch {B}] ids equal; timing {', '.join(runners)}, interleaved ...", flush=True)
    results = bench.measure(runners, args.repeats)
    row = {"batch": B, "ids_equal": True, "results": results}
    for side, full, first in (("llm_jax", "llm_jax", "llm_jax_first_token"),
                              ("hf_generate", "hf_generate", "hf_generate_first_token")):
        full_s, prefill_s = results[full]["sec_per_step"], results[first]["sec_per_step"]
        per_token_s = (full_s - prefill_s) / (N - 1)
        row[side] = {
            "generate_s": full_s, "prefill_s": prefill_s,
            # None when noise makes the difference non-positive (tiny shapes, few tokens)
            "per_token_s": per_token_s if per_token_s > 0 else None,
            "tokens_s": B * N / full_s,
            "decode_tokens_s": B / per_token_s if per_token_s > 0 else None,
            "prefill_tokens_s": B * P / prefill_s}
    j, h = row["llm_jax"], row["hf_generate"]
    row["ratio"] = {k: (j[k] / h[k] if j[k] and h[k] else None)
                    for k in ("tokens_s", "decode_tokens_s", "prefill_tokens_s")}
    return row


def logits_gap(ours, hf, prompts):
    """max |llm_jax - HF| over the prompts' logits (float32 parity, for the record)."""
    with torch.inference_mode():
        want = hf(input_ids=torch.from_numpy(prompts)).logits.numpy()
    return float(np.abs(np.asarray(ours(jnp.asarray(prompts))) - want).max())


def fmt(x, spec=",.1f"):
    return "n/a" if x is None else format(x, spec)


def print_table(report):
    print("\n| batch | llm_jax tokens/s | HF tokens/s | llm_jax / HF | prefill ms (llm_jax / HF) "
          "| per token ms (llm_jax / HF) | decode llm_jax / HF | ids equal |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in report["rows"]:
        j, h, r = row["llm_jax"], row["hf_generate"], row["ratio"]
        ms = lambda x: fmt(None if x is None else 1e3 * x, ".2f")  # noqa: E731
        print(f"| {row['batch']} | {fmt(j['tokens_s'])} | {fmt(h['tokens_s'])} "
              f"| {fmt(r['tokens_s'], '.2f')}x | {ms(j['prefill_s'])} / {ms(h['prefill_s'])} "
              f"| {ms(j['per_token_s'])} / {ms(h['per_token_s'])} "
              f"| {fmt(r['decode_tokens_s'], '.2f')}x | {row['ids_equal']} |")


def parse_batches(text):
    try:
        batches = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batches={text!r}: expected sizes like 1,8") from None
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"--batches={text!r}: every size must be >= 1")
    return batches


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=tuple(SHAPES), default="124m",
                   help="124m: configs/gpt2.py:124m; tiny: 2 layers, 64 wide (smoke test)")
    p.add_argument("--vocab", type=int, default=50257,
                   help="embedding rows: GPT-2's 50257, or configs/gpt2.py's padded 50304")
    p.add_argument("--batches", type=parse_batches, default=[1, 8], help="e.g. 1,8")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt tokens per row")
    p.add_argument("--new-tokens", type=int, default=128, help="greedy tokens generated per row")
    p.add_argument("--seed", type=int, default=0, help="weights and prompts")
    p.add_argument("--steps", type=int, default=0,
                   help="timed calls per repeat (0: enough for ~--seconds per call, at least 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--malloc", choices=("llm_jax", "default", "tuned"), default="llm_jax",
                   help="as in bench_train.py (applies to both sides alike)")
    p.add_argument("--out", default=os.path.join("runs", "gpt2_zeroshot_bench", "decode.json"),
                   help="the JSON report")
    args = p.parse_args()
    if args.new_tokens < 2:
        p.error(f"--new-tokens={args.new_tokens} must be >= 2 (per-token time is the full call "
                "minus the one-token call)")
    if args.prompt_len < 1 or args.repeats < 1 or args.vocab < 2:
        p.error("--prompt-len and --repeats must be >= 1, --vocab >= 2")
    cfg = model_config(args.shape, args.vocab)
    if args.prompt_len + args.new_tokens > cfg.max_len:
        p.error(f"--prompt-len {args.prompt_len} + --new-tokens {args.new_tokens} exceeds the "
                f"context of shape {args.shape} ({cfg.max_len})")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # fail before timing
    if args.malloc == "tuned":
        bench.reexec_with_tuned_malloc()
    torch.set_num_threads(args.threads)

    env = bench.environment(argparse.Namespace(**vars(args), torch_adamw=None))
    env.pop("torch_adamw")
    import transformers
    env["transformers"] = transformers.__version__
    busy = env["other_processes_cores_at_start"] = bench.other_processes_cores()
    if busy > 0.2:
        print(f"warning: other processes keep {busy:.2f} cores busy: timings will be noisy")

    with tempfile.TemporaryDirectory() as tmp:
        ours, hf = build_pair(cfg, args.seed, tmp)
    env["hf_attention"] = hf.config._attn_implementation
    rng = np.random.default_rng(args.seed)
    all_prompts = rng.integers(0, args.vocab, (max(args.batches), args.prompt_len))
    report = {"environment": env, "shape": args.shape, "model": cfg.to_dict(),
              "params": sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.Param))),
              "dtype": "float32", "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
              "timing": "prefill: a 1-token generate call; per token: (full - 1-token call) / "
                        "(new tokens - 1); medians over repeats, calls in turns",
              "prompt_logits_max_abs_diff": logits_gap(ours, hf, all_prompts[:1]),
              "rows": []}
    for B in args.batches:
        report["rows"].append(time_batch(ours, hf, all_prompts[:B], args))
    print_table(report)
    for row in report["rows"]:
        for k, v in row["results"].items():
            if v["other_processes_cores"] > 0.2:
                print(f"WARNING: other processes kept {v['other_processes_cores']} cores busy "
                      f"while {k} (batch {row['batch']}) was timed: that figure is not trustworthy")
    print(f"\nprompt {args.prompt_len} tokens, {args.new_tokens} new tokens per row, greedy, "
          f"float32, HF attention {env['hf_attention']}; prompt logits differ by at most "
          f"{report['prompt_logits_max_abs_diff']:.1e}. Other processes used {busy:.2f} cores "
          "at start.")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
