"""Beam-search decoding speed of llm_jax's Transformer against Hugging Face MarianMTModel.generate.

  .venv/bin/python experiments/multi30k_transformer/bench/bench_decode.py [--shape small|base|tiny]
      [--batch 64] [--beams 5] [--max-length 64] [--repeats 3] [--malloc tuned]
      [--out runs/multi30k_transformer_bench/decode.json]

One random-weight model serves both sides: a MarianMTModel with the shape of a
configs/transformer_multi30k.py variant (relu, scaled embeddings, post-LN) is saved with
save_pretrained and read into llm_jax with interop.marian.load_marian. Its final_logits_bias
gets --eos-bias on EOS, so that hypotheses end at realistic lengths rather than all at
--max-length. Both decode the same --batch source sentences (8 to 30 tokens with EOS, right
padded) in one call, float32 on the CPU: llm_jax's translate_array with Hugging Face's beam
rules (hf_rules, length_penalty "hf" with alpha 1.0, forced EOS at max length) against
generate(num_beams=..., max_length=...). Before timing, their token ids must be equal
(`ids_equal` in the report). Each side is warmed up once on the same shapes (jit compile
excluded); speed is sentences per second, the median of --repeats timed runs taken in turns
(the shakespeare benchmark's `measure`). The report goes to --out.
"""

import sys

from llm_jax.allocator import tune_malloc

# As bench_train.py: llm_jax's start-up malloc setting, before anything allocates, both sides.
if __name__ == "__main__" and not any(a.startswith("--malloc") for a in sys.argv[1:]):
    tune_malloc()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from llm_jax.interop.marian import load_marian  # noqa: E402
from llm_jax.tasks.seq2seq_decoding import translate_array  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
EOS = 0  # Marian's ids: </s> first, <pad> last (also the decoder start)


def load_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The training benchmark beside this file: the config it reads and the GPT benchmark's timing
# helpers it loads.
train_bench = load_path("multi30k_bench_train", os.path.join(HERE, "bench_train.py"))
bench = train_bench.bench


def random_marian(shape, directory, eos_bias, init_std):
    """A MarianMTModel of config variant `shape`, random weights, saved as safetensors."""
    import transformers

    m = train_bench.load_config(shape).model
    pad = m.vocab_size - 1
    torch.manual_seed(0)
    cfg = transformers.MarianConfig(
        vocab_size=m.vocab_size, d_model=m.embed_dim, encoder_layers=m.num_encoder_layers,
        decoder_layers=m.num_decoder_layers, encoder_attention_heads=m.num_heads,
        decoder_attention_heads=m.num_heads, encoder_ffn_dim=m.mlp_dim,
        decoder_ffn_dim=m.mlp_dim, max_position_embeddings=m.max_len,
        activation_function=m.activation, scale_embedding=True, dropout=m.dropout_rate,
        attention_dropout=m.attention_dropout, activation_dropout=m.activation_dropout,
        pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=EOS,
        forced_eos_token_id=EOS, init_std=init_std or m.embed_dim ** -0.5)
    model = transformers.MarianMTModel(cfg).eval()
    with torch.no_grad():
        model.final_logits_bias[0, EOS] += eos_bias
    model.save_pretrained(directory, safe_serialization=True)
    return model, pad


def source_batch(batch, vocab, pad, min_len=8, max_len=30, seed=0):
    """`batch` random sentences of min_len to max_len ids (EOS last), right padded, and mask."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(min_len, max_len + 1, batch)
    lens[0] = max_len
    mask = np.arange(max_len)[None] < lens[:, None]
    src = np.where(mask, rng.integers(EOS + 1, pad, (batch, max_len)), pad)
    src[np.arange(batch), lens - 1] = EOS
    return src.astype(np.int64), mask


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=train_bench.SHAPES, default="small",
                   help="variant of configs/transformer_multi30k.py")
    p.add_argument("--batch", type=int, default=64, help="source sentences per call")
    p.add_argument("--beams", type=int, default=5)
    p.add_argument("--max-length", type=int, default=64,
                   help="generate's max_length = translate_array's max_len (decoder start "
                        "included)")
    p.add_argument("--eos-bias", type=float, default=4.0,
                   help="added to EOS's logit bias, so that hypotheses end before max length")
    p.add_argument("--init-std", type=float, default=0.0,
                   help="Marian's init_std (0: d^-0.5, llm_jax's initialisation)")
    p.add_argument("--steps", type=int, default=0,
                   help="timed decoding calls per repeat (0: enough for ~--seconds, at least 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per side")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--malloc", choices=("llm_jax", "default", "tuned"), default="llm_jax",
                   help="as in bench_train.py (applies to both sides alike)")
    p.add_argument("--out", default=os.path.join("runs", "multi30k_transformer_bench",
                                                 "decode.json"), help="the JSON report")
    args = p.parse_args()
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
        hf, pad = random_marian(args.shape, tmp, args.eos_bias, args.init_std)
        ours, model_cfg, ids = load_marian(tmp)
    src, mask = source_batch(args.batch, model_cfg.vocab_size, pad)
    L = args.max_length
    hf_inputs = dict(input_ids=torch.from_numpy(src),
                     attention_mask=torch.from_numpy(mask.astype(np.int64)))
    # Hugging Face's defaults spelt out, as translate_array is told them: length_penalty 1.0
    # (score / length), no early stopping (its heuristic stop, which hf_rules follows).
    hf_kwargs = dict(num_beams=args.beams, max_length=L, do_sample=False, length_penalty=1.0,
                     early_stopping=False)
    ours_kwargs = dict(bos_id=ids["bos_id"], eos_id=ids["eos_id"], pad_id=ids["pad_id"],
                       max_len=L, beam_size=args.beams, alpha=1.0, length_penalty="hf",
                       hf_rules=True, force_eos=True)

    def run_ours(n):
        for _ in range(n):
            out = translate_array(ours, src, mask, **ours_kwargs)  # NumPy: already waited for
        return out

    def run_hf(n):
        for _ in range(n):
            out = hf.generate(**hf_inputs, **hf_kwargs)
        return out

    print(f"[{args.shape}] warm-up (llm_jax compiles) and parity ...", flush=True)
    runners = {}
    for key, run in (("llm_jax", run_ours), ("hf_generate", run_hf)):
        t = time.perf_counter()
        out = run(1)
        runners[key] = {"run": run, "compile_s": time.perf_counter() - t}
        if key == "llm_jax":
            seqs, _, lens = out
            ours_ids = seqs[:, 0]
        else:
            want = np.full(ours_ids.shape, pad, np.int64)  # HF pads the shorter outputs
            want[:, :out.shape[1]] = out.numpy()
    rows_differing = int((ours_ids != want).any(axis=1).sum())
    if rows_differing:
        print(f"WARNING: {rows_differing} of {args.batch} outputs differ from generate's")
    steps = args.steps or None
    for r in runners.values():
        r["steps"] = bench.pick_steps(r["run"], steps, args)

    print(f"[{args.shape}] timing {', '.join(runners)}, interleaved ...", flush=True)
    results = bench.measure(runners, args.repeats)
    for r in results.values():
        r["sentences_s"] = args.batch / r["sec_per_step"]
    out_lens = lens[:, 0] - 1  # tokens after the decoder start, EOS included
    report = {"environment": env, "shape": args.shape, "model": model_cfg.to_dict(),
              "params": sum(x.size for x in jax.tree.leaves(nnx.state(ours))),
              "batch": args.batch,
              "beams": args.beams, "max_length": L, "eos_bias": args.eos_bias,
              "init_std": hf.config.init_std, "src_lengths": mask.sum(1).tolist(),
              "mean_src_length": float(mask.sum(1).mean()),
              "ids_equal": rows_differing == 0, "rows_differing": rows_differing,
              "mean_output_length": float(out_lens.mean()), "output_lengths": out_lens.tolist(),
              "outputs_at_max_length": int((lens[:, 0] >= L).sum()),
              "llm_jax_kwargs": ours_kwargs, "hf_generate_kwargs": hf_kwargs,
              "results": results,
              "ratio": results["llm_jax"]["sentences_s"] / results["hf_generate"]["sentences_s"]}
    j, h = results["llm_jax"], results["hf_generate"]
    print(f"\n| shape | llm_jax sentences/s | HF generate sentences/s | llm_jax / HF | ids equal |"
          f"\n|---|---:|---:|---:|---|\n| {args.shape} | {j['sentences_s']:,.1f} "
          f"| {h['sentences_s']:,.1f} | {report['ratio']:.2f}x | {report['ids_equal']} |")
    for k, v in results.items():
        if v["other_processes_cores"] > 0.2:
            print(f"WARNING: other processes kept {v['other_processes_cores']} cores busy "
                  f"while {k} was timed: that figure is not trustworthy")
    print(f"\n{args.batch} sources of mean length {report['mean_src_length']:.1f}, beam "
          f"{args.beams}, max length {L}: outputs of mean length "
          f"{report['mean_output_length']:.1f}, {report['outputs_at_max_length']} at max "
          f"length. Other processes used {busy:.2f} cores at start.")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
