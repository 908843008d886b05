"""Training throughput of llm_jax's encoder-decoder Transformer against torch.nn.Transformer.

  .venv/bin/python experiments/multi30k_transformer/bench/bench_train.py [--shape small|base|tiny]
      [--batch 64] [--len 32] [--steps N] [--repeats 3] [--compile on|off] [--malloc tuned]
      [--out runs/multi30k_transformer_bench/train.json]

The JAX side is llm_jax's own jitted train step (make_state_spec + make_train_step with the
seq2seq task's loss and the config's optimizer: Adam (0.9, 0.98, 1e-9), inverse-sqrt schedule,
label smoothing 0.1). The PyTorch side is torch.nn.Transformer of the same shape (post-LN, relu,
batch_first) with what the paper puts around it: one token embedding scaled by sqrt(d) for
source, target and the output projection, sinusoidal positions, F.cross_entropy with
label_smoothing, torch.optim.Adam at the same learning rate each step. Both train in float32 on
the same padded batch, made by llm_jax's seq2seq pipeline from random sentences of 8 to
--len - 1 tokens a side. PyTorch is timed eager and under torch.compile.

Before timing, the PyTorch model is loaded with llm_jax's initial weights (through the Marian
mapping table of llm_jax/interop/marian.py, whose q/k/v are then stacked into nn.Transformer's
in_proj_weight [3D, D]); with dropout off, the loss and gradient norm must agree and the
parameter counts must be equal. Throughput is target tokens (real, not padding) per second, the
median of --repeats timed runs, the implementations taking turns run by run (the shakespeare
benchmark's `measure`). The report goes to --out.
"""

import sys

from llm_jax.allocator import tune_malloc

# What `python -m llm_jax train` does first (llm_jax/cli.py), before JAX or PyTorch allocate:
# glibc's malloc tuned in this process, for both sides alike. --malloc=default/tuned opt out.
if __name__ == "__main__" and not any(a.startswith("--malloc") for a in sys.argv[1:]):
    tune_malloc()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from llm_jax.data.parallel_batches import eval_batches  # noqa: E402
from llm_jax.interop.marian import params_to_hf  # noqa: E402
from llm_jax.tasks.seq2seq import SPECIAL, Seq2Seq  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SHAPES = ("small", "base", "tiny")


# The timing, busy-core and environment helpers of the GPT benchmark, and the trainer's jitted
# step, so every benchmark measures alike.
BENCH_DIR = os.path.join(REPO, "experiments", "shakespeare_char", "bench")
sys.path.insert(0, BENCH_DIR)
from jax_train_step import (  # noqa: E402
    host_params,
    load_path,
    loss_and_grad_norm,
    step_runner,
    trainer_step,
    without_corpus,
)

bench = load_path("shakespeare_bench_train", os.path.join(BENCH_DIR, "bench_train.py"))


def load_config(shape):
    cfg = load_path("bench_cfg", os.path.join(REPO, "configs", "transformer_multi30k.py")
                    ).get_config(shape)
    with cfg.unlocked():
        cfg.model.vocab_size = cfg.data.vocab_size  # what the fitted tokenizer would give
    return cfg


def random_batch(cfg, batch, length, seed=0):
    """One padded batch of `batch` random sentence pairs, 8 to length - 1 ids a side (plus BOS /
    EOS), laid out by the seq2seq pipeline: src, src_mask, tgt_in, tgt_out, tgt_weights."""
    rng = np.random.default_rng(seed)
    lo = min(8, length - 1)
    lens = rng.integers(lo, length, (2, batch))
    lens[:, 0] = length - 1  # the longest sets the padded width to `length`
    first = max(SPECIAL.values()) + 1
    src, tgt = ([rng.integers(first, cfg.model.vocab_size, n) for n in row] for row in lens)
    out = next(eval_batches(src, tgt, batch_size=batch, pad_id=SPECIAL["pad_id"],
                            bos_id=SPECIAL["bos_id"], eos_id=SPECIAL["eos_id"],
                            max_len=cfg.model.max_len, length_multiple=8))
    return {k: v for k, v in out.items() if k != "index"}


# ---------------------------------------------------------------- JAX (llm_jax)

def jax_side(cfg, batch, steps, args):
    task = without_corpus(Seq2Seq, cfg.task)
    step, spec, schedule, batch = trainer_step(cfg, task, batch)
    state = spec.init()
    params = host_params(state)
    parity = loss_and_grad_norm(task, spec.graphdef, state["params"], batch)
    run, compile_s, _ = step_runner(step, state, batch)
    runner = {"run": run, "steps": bench.pick_steps(run, steps, args), "compile_s": compile_s}
    return runner, parity, params, schedule


# ---------------------------------------------------------------- PyTorch

def sinusoidal_table(length, d):
    """Sines then cosines ("concat", as llm_jax's config and Marian lay them out)."""
    inv = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv.float()[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)[:, :d]


class TorchTransformer(nn.Module):
    """nn.Transformer with tied, sqrt(d)-scaled embeddings, sinusoidal positions and a tied
    output projection; forward returns the label-smoothed loss over real target tokens."""

    def __init__(self, m, label_smoothing, pad_id):
        super().__init__()
        d, self.pad_id, self.label_smoothing = m.embed_dim, pad_id, label_smoothing
        self.scale = math.sqrt(d)
        self.embed = nn.Embedding(m.vocab_size, d)  # every weight is llm_jax's, loaded
        self.drop = nn.Dropout(m.dropout_rate)
        self.register_buffer("positions", sinusoidal_table(m.max_len, d), persistent=False)
        layer = dict(d_model=d, nhead=m.num_heads, dim_feedforward=m.mlp_dim,
                     dropout=m.dropout_rate, activation="relu", layer_norm_eps=m.ln_eps,
                     batch_first=True, norm_first=False)
        enc, dec = nn.TransformerEncoderLayer(**layer), nn.TransformerDecoderLayer(**layer)
        # nn.Transformer's layers also drop attention weights and FFN activations at the
        # residual rate; llm_jax's config has its own rates for those (0 in every variant), so
        # the two do the same work.
        for lay in (enc, dec):
            lay.dropout.p = m.activation_dropout
            for attn in (lay.self_attn, getattr(lay, "multihead_attn", None)):
                if attn is not None:
                    attn.dropout = m.attention_dropout
        # norm=None: post-LN stacks end in their last block's LayerNorm, as the paper's and
        # llm_jax's do; nn.Transformer's default adds one more LayerNorm after each stack.
        self.transformer = nn.Transformer(
            **layer, num_encoder_layers=m.num_encoder_layers,
            num_decoder_layers=m.num_decoder_layers,
            custom_encoder=nn.TransformerEncoder(enc, m.num_encoder_layers, norm=None,
                                                 enable_nested_tensor=False),
            custom_decoder=nn.TransformerDecoder(dec, m.num_decoder_layers, norm=None))

    def _embed(self, ids):
        return self.drop(self.embed(ids) * self.scale + self.positions[:ids.shape[1]])

    def forward(self, src, src_pad, tgt_in, tgt_out):
        T = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float32)
        h = self.transformer(self._embed(src), self._embed(tgt_in), tgt_mask=causal,
                             src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad,
                             tgt_is_causal=True)
        logits = F.linear(h, self.embed.weight)
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=self.pad_id,
                               label_smoothing=self.label_smoothing)


def load_llm_jax_params(model, params, m):
    """llm_jax's parameters into TorchTransformer, through the Marian names of params_to_hf."""
    hf = params_to_hf({**params, "logits_bias": np.zeros(m.vocab_size, np.float32)}, m)
    sd = {"embed.weight": hf["model.shared.weight"]}
    for side, n in (("encoder", m.num_encoder_layers), ("decoder", m.num_decoder_layers)):
        attns = [("self_attn", "self_attn")] + [("encoder_attn", "multihead_attn")] * (
            side == "decoder")
        norms = ["self_attn_layer_norm"] + ["encoder_attn_layer_norm"] * (side == "decoder") + [
            "final_layer_norm"]
        for i in range(n):
            a, b = f"model.{side}.layers.{i}.", f"transformer.{side}.layers.{i}."
            for ours, theirs in attns:
                for kind in ("weight", "bias"):
                    sd[f"{b}{theirs}.in_proj_{kind}"] = np.concatenate(
                        [hf[f"{a}{ours}.{x}_proj.{kind}"] for x in "qkv"])
                    sd[f"{b}{theirs}.out_proj.{kind}"] = hf[f"{a}{ours}.out_proj.{kind}"]
            for j, name in enumerate(norms, 1):
                for kind in ("weight", "bias"):
                    sd[f"{b}norm{j}.{kind}"] = hf[f"{a}{name}.{kind}"]
            for ours, theirs in (("fc1", "linear1"), ("fc2", "linear2")):
                for kind in ("weight", "bias"):
                    sd[f"{b}{theirs}.{kind}"] = hf[f"{a}{ours}.{kind}"]
    # strict: every PyTorch parameter gets one of ours, and nothing is left over
    model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in sd.items()},
                          strict=True)


def torch_batch(batch):
    t = {k: torch.from_numpy(np.ascontiguousarray(batch[k])).long()
         for k in ("src", "tgt_in", "tgt_out")}
    return t["src"], torch.from_numpy(~batch["src_mask"]), t["tgt_in"], t["tgt_out"]


def torch_model(cfg, params):
    model = TorchTransformer(cfg.model, cfg.task.label_smoothing, SPECIAL["pad_id"])
    load_llm_jax_params(model, params, cfg.model)
    return model


def torch_parity(cfg, params, batch):
    model = torch_model(cfg, params).eval()  # dropout off, as on the JAX side
    loss = model(*torch_batch(batch))
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    return {"loss": loss.item(), "grad_norm": norm.item()}


def torch_side(cfg, params, batch, lrs, steps, args, compile_model):
    model = torch_model(cfg, params).train()
    o = cfg.optimizer
    impl = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    opt = torch.optim.Adam(model.parameters(), lr=lrs[0], betas=(o.b1, o.b2), eps=o.eps,
                           **impl[args.torch_adamw])
    fwd = torch.compile(model) if compile_model else model
    inputs, i = torch_batch(batch), 0

    def run(n):
        nonlocal i
        for _ in range(n):
            loss = fwd(*inputs)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = lrs[i % len(lrs)]
            opt.step()
            opt.zero_grad(set_to_none=True)
            i += 1
        return loss.item()  # CPU PyTorch is synchronous; this just uses the result

    compile_s = bench.first_run(run, args.compile_timeout if compile_model else 0)
    run(1)
    return {"run": run, "steps": bench.pick_steps(run, steps, args), "compile_s": compile_s}


# ---------------------------------------------------------------- report

def cell(r):
    if "tok_s" in r:
        return f"{r['tok_s']:,.0f}"
    return f"failed: {r['error']}" if "error" in r else f"skipped ({r['skipped']})"


def print_report(report):
    r, env = report["results"], report["environment"]
    ratio = f"{report['ratio_vs_best_torch']:.2f}x" if report["ratio_vs_best_torch"] else "n/a"
    print("\n| shape | llm_jax tok/s | torch eager tok/s | torch.compile tok/s "
          "| llm_jax / best torch |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {report['shape']} | {cell(r['llm_jax'])} | {cell(r['torch_eager'])} "
          f"| {cell(r['torch_compile'])} | {ratio} |")
    for k, v in r.items():
        if v.get("other_processes_cores", 0) > 0.2:
            print(f"WARNING: other processes kept {v['other_processes_cores']} cores busy "
                  f"while {k} was timed: that figure is not trustworthy")
    p = report["parity"]
    print(f"\n{report['params']:,} params (both); {report['tokens_per_step']} target tokens "
          f"per step ({report['batch_shape']} padded). Parity at llm_jax's init, dropout off: "
          f"loss jax {p['jax']['loss']:.6f} / torch {p['torch']['loss']:.6f}, grad norm jax "
          f"{p['jax']['grad_norm']:.6f} / torch {p['torch']['grad_norm']:.6f}.")
    print(f"jax {env['jax']}, torch {env['torch']} ({env['torch_threads']} threads, Adam "
          f"{env['torch_adam']}); CPU {env['cpu']}, {env['cores']} cores; malloc "
          f"{env['malloc']}; other processes used {env['other_processes_cores_at_start']:.2f} "
          "cores at start.")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=SHAPES, default="small",
                   help="variant of configs/transformer_multi30k.py")
    p.add_argument("--batch", type=int, default=64, help="sentence pairs per step")
    p.add_argument("--len", type=int, default=32, help="padded tokens per side")
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps per repeat (0: enough for ~--seconds, at least 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per side")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--torch-adam", dest="torch_adamw", choices=("default", "foreach", "fused"),
                   default="fused", help="torch.optim.Adam's implementation")
    p.add_argument("--compile", choices=("on", "off"), default="on",
                   help="off: skip torch.compile (it takes minutes on a CPU)")
    p.add_argument("--compile-timeout", type=int, default=900)
    p.add_argument("--malloc", choices=("llm_jax", "default", "tuned"), default="llm_jax",
                   help="llm_jax: llm_jax.allocator's start-up setting, as the CLI applies it; "
                        "default: glibc untouched; tuned: rerun with the GPT benchmark's "
                        "TUNED_MALLOC_ENV (each applies to both sides alike)")
    p.add_argument("--out", default=os.path.join("runs", "multi30k_transformer_bench",
                                                 "train.json"), help="the JSON report")
    args = p.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # fail before timing
    if args.len < 2 or args.batch < 1:
        p.error("--len must be >= 2 and --batch >= 1")
    if args.malloc == "tuned":
        bench.reexec_with_tuned_malloc()
    torch.set_num_threads(args.threads)

    env = bench.environment(args)
    env["torch_adam"] = env.pop("torch_adamw")
    busy = env["other_processes_cores_at_start"] = bench.other_processes_cores()
    if busy > 0.2:
        print(f"warning: other processes keep {busy:.2f} cores busy: timings will be noisy")
    cfg = load_config(args.shape)
    batch = random_batch(cfg, args.batch, args.len, cfg.seed)
    steps = args.steps or None

    print(f"[{args.shape}] llm_jax ...", flush=True)
    runners, results = {}, {}
    runners["llm_jax"], jax_parity, params, schedule = jax_side(cfg, batch, steps, args)
    t_parity = torch_parity(cfg, params, batch)
    parity = {"jax": jax_parity, "torch": t_parity}
    assert abs(jax_parity["loss"] - t_parity["loss"]) < 1e-4, parity
    assert math.isclose(jax_parity["grad_norm"], t_parity["grad_norm"], rel_tol=1e-3), parity
    n_params = sum(x.size for x in jax.tree.leaves(params))
    n_torch = sum(q.numel() for q in torch_model(cfg, params).parameters())
    assert n_torch == n_params, (n_torch, n_params)

    lrs = np.asarray(jax.vmap(schedule)(jnp.arange(10_000)), np.float64).tolist()
    for key, compiled in (("torch_eager", False), ("torch_compile", True)):
        if compiled and args.compile == "off":
            results[key] = {"skipped": "--compile off"}
            continue
        print(f"[{args.shape}] {key} ...", flush=True)
        try:
            runners[key] = torch_side(cfg, params, batch, lrs, steps, args, compiled)
        except Exception as e:  # reported, not dropped
            results[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    print(f"[{args.shape}] timing {', '.join(runners)}, interleaved ...", flush=True)
    del params
    results.update(bench.measure(runners, args.repeats))
    del runners
    results = {k: results[k] for k in ("llm_jax", "torch_eager", "torch_compile")}
    tokens = int(batch["tgt_weights"].sum())
    for r in results.values():
        if "sec_per_step" in r:
            r["tok_s"] = tokens / r["sec_per_step"]
            r["src_tok_s"] = int(batch["src_mask"].sum()) / r["sec_per_step"]
    best = max((r["tok_s"] for k, r in results.items() if k != "llm_jax" and "tok_s" in r),
               default=None)
    report = {"environment": env, "shape": args.shape, "model": cfg.model.to_dict(),
              "optimizer": {k: cfg.optimizer[k] for k in ("name", "lr", "b1", "b2", "eps",
                                                           "schedule", "warmup_steps")},
              "label_smoothing": cfg.task.label_smoothing,
              "batch_shape": list(batch["src"].shape), "tokens_per_step": tokens,
              "src_tokens_per_step": int(batch["src_mask"].sum()),
              "padded_tokens_per_step": int(batch["tgt_out"].size), "params": n_params,
              "params_torch": n_torch, "parity": parity, "results": results,
              "ratio_vs_best_torch": best and results["llm_jax"]["tok_s"] / best}
    print_report(report)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
