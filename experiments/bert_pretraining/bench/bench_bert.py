"""BERT speed: llm_jax's MLM training and encoder inference against Hugging Face transformers.

  .venv/bin/python experiments/bert_pretraining/bench/bench_bert.py
      [--shape bert_mini|bert_tiny|bert_small|bert_medium|bert_base|tiny] [--batch 32] [--len 128]
      [--steps N] [--repeats 3] [--compile on|off] [--malloc tuned]
      [--out runs/bert_bench/results.json]

Two measurements, float32, the same batch on both sides:
  training   llm_jax's own jitted train step (make_state_spec + make_train_step with the masked_lm
             task's loss and configs/bert_wikitext2.py:mini's optimizer: AdamW, weight decay 0.01
             on matrices, clipping at 1.0, linear warm-up and decay) against
             transformers.BertForMaskedLM with torch.optim.AdamW at the same learning rate each
             step (the same decay groups and clipping), eager and under torch.compile; real
             (non-pad) input tokens per second.
  inference  llm_jax's Bert.encode, jitted, against transformers.BertModel (no pooler) under
             torch.no_grad(), eager and compiled; sentences per second.
The model is the --shape (bert.size_config) without pooler or next-sentence head, which
BertForMaskedLM lacks; the batch is made by llm_jax's MLM pipeline (pair_instances, then
MLMBatches' layout and Masker) from random token documents; Hugging Face gets `labels` with
-100 at the unmasked positions. One difference is kept, being the two implementations' own:
BertForMaskedLM runs its output layer over all T positions, llm_jax's task over the P masked
ones it gathers first.

Before timing, both Hugging Face models are loaded with llm_jax's initial weights (through
llm_jax.interop.bert's params_to_hf and hf_config, `strict`); with dropout off the MLM loss must
agree to 1e-4, its gradient norm to 1e-3 (relative), the encoder outputs to 1e-3, and the
parameter counts must be equal. Each figure is the median of --repeats timed runs, the
implementations taking turns run by run (the shakespeare benchmark's `measure`). The report
goes to --out.
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
import shlex  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from llm_jax.data.mlm_batches import Masker, MLMBatches  # noqa: E402
from llm_jax.data.mlm_data import Documents, pair_instances  # noqa: E402
from llm_jax.interop.bert import hf_config, params_to_hf  # noqa: E402
from llm_jax.models import bert  # noqa: E402
from llm_jax.tasks.masked_lm import MaskedLM  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
# published sizes (bert.SIZES) and a seconds-long one for smoke tests
SHAPES = ("bert_mini", "bert_tiny", "bert_small", "bert_medium", "bert_base", "tiny")
TINY = dict(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, vocab_size=1024)
# bert-base-uncased's vocab.txt: what configs/bert_wikitext2.py's WordPiece tokenizer gives
IDS = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
FIRST_ORDINARY = 104
LOSS_TOL, GRAD_REL_TOL, HIDDEN_TOL = 1e-4, 1e-3, 1e-3
SIDES = ("llm_jax", "torch_eager", "torch_compile")


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


def load_config(shape, batch, length):
    """configs/bert_wikitext2.py:mini (its optimizer and schedule) with the model of `shape`,
    MLM alone: no pooler, no sentence head."""
    cfg = load_path("bench_cfg", os.path.join(REPO, "configs", "bert_wikitext2.py")
                    ).get_config("mini")
    with cfg.unlocked():
        cfg.model.update(bert.size_config("bert_mini" if shape == "tiny" else shape))
        if shape == "tiny":
            cfg.model.update(TINY)
        cfg.model.update(pooler=False, sentence_head="")
        cfg.task.update(sentence_task="")
        cfg.data.seq_len, cfg.train.batch_size = length, batch
    if length > cfg.model.max_len:
        raise SystemExit(f"--len {length} exceeds the model's max_len {cfg.model.max_len}")
    return cfg


def random_batch(cfg, batch, length, seed=0):
    """One MLM batch from random token documents, made as the masked_lm task makes its own:
    BERT's sentence pairs (pair_instances, short_seq_prob 0.1), laid out and statically masked
    by MLMBatches with the task's Masker (15%, P = ceil(0.15 T) + 2)."""
    rng = np.random.default_rng(seed)
    V, t = cfg.model.vocab_size, cfg.task
    # documents of 8- to 40-token sentences, about 8 instances' worth each (WikiText's are
    # longer still), enough for two batches: few rows end short at a document's end
    lens = [rng.integers(8, 41, max(2, 8 * length // 24)) for _ in range(batch // 4 + 2)]
    sentences = np.concatenate(lens)
    flat = rng.integers(FIRST_ORDINARY, V, int(sentences.sum())).astype(np.int32)
    docs = Documents(flat, np.concatenate([[0], np.cumsum(sentences)]).astype(np.int64),
                     np.concatenate([[0], np.cumsum([len(x) for x in lens])]).astype(np.int64))
    inst = pair_instances(docs, length, np.random.default_rng([seed, 1]), sentence_task="",
                          short_seq_prob=t.short_seq_prob)
    P = int(t.max_predictions or math.ceil(t.mask_prob * length) + 2)
    masker = Masker(vocab_size=V, mask_id=IDS["mask"], mask_prob=t.mask_prob, max_predictions=P,
                    special_ids=[IDS[k] for k in ("cls", "sep", "pad")])
    return MLMBatches(inst, batch_size=batch, max_len=length, seed=seed, masker=masker,
                      masking="static", ids=IDS, sentence_task=False).batch(0)


# ---------------------------------------------------------------- JAX (llm_jax)

def jax_train_side(cfg, batch, steps, args):
    task = without_corpus(MaskedLM, cfg.task)
    step, spec, schedule, batch = trainer_step(cfg, task, batch)
    state = spec.init()
    params = host_params(state)
    parity = loss_and_grad_norm(task, spec.graphdef, state["params"], batch)
    run, compile_s, _ = step_runner(step, state, batch)
    runner = {"run": run, "steps": bench.pick_steps(run, steps, args), "compile_s": compile_s}
    return runner, parity, params, schedule, spec.graphdef


def jax_encode_side(graphdef, params, batch, steps, args):
    """A runner of jitted Bert.encode, and its output on `batch` (for parity)."""
    p = jax.device_put(jax.tree.map(jnp.asarray, params))
    inputs = jax.device_put(tuple(batch[k] for k in ("input_ids", "segment_ids", "mask")))
    encode = jax.jit(lambda p, ids, seg, mask: nnx.merge(graphdef, p).encode(ids, seg, mask))
    t = time.perf_counter()
    hidden = np.asarray(encode(p, *inputs))  # compiles
    compile_s = time.perf_counter() - t

    def run(n):
        for _ in range(n):
            out = encode(p, *inputs)
        jax.block_until_ready(out)

    run(1)
    return {"run": run, "steps": bench.pick_steps(run, steps, args), "compile_s": compile_s}, hidden


# ---------------------------------------------------------------- PyTorch (Hugging Face)

def hf_models(cfg, params):
    """(BertForMaskedLM, BertModel without pooler) holding llm_jax's weights, loaded strictly."""
    import transformers

    config = transformers.BertConfig(**hf_config(cfg.model, {"pad": IDS["pad"]}))
    family, tensors = params_to_hf(params, cfg.model)
    assert family == "bert", family
    sd = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in tensors.items()}
    # tied to the word embedding and the MLM bias: state_dict lists them, params_to_hf does not
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]
    sd["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"]
    mlm = transformers.BertForMaskedLM(config)
    mlm.load_state_dict(sd, strict=True)
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight
    enc = transformers.BertModel(config, add_pooling_layer=False)
    enc.load_state_dict({k.removeprefix("bert."): v for k, v in sd.items()
                         if k.startswith("bert.")}, strict=True)
    return mlm, enc


def torch_inputs(batch):
    t = lambda k: torch.from_numpy(np.ascontiguousarray(batch[k])).long()  # noqa: E731
    labels = torch.full(batch["input_ids"].shape, -100, dtype=torch.long)
    rows, cols = np.nonzero(batch["mlm_weights"])
    labels[rows, batch["mlm_positions"][rows, cols]] = t("mlm_ids")[rows, cols]
    return {"input_ids": t("input_ids"), "token_type_ids": t("segment_ids"),
            "attention_mask": t("mask")}, labels


def torch_parity(cfg, params, batch):
    mlm, enc = hf_models(cfg, params)
    inputs, labels = torch_inputs(batch)
    mlm.eval()  # dropout off, as on the JAX side
    loss = mlm(**inputs, labels=labels).loss
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(mlm.parameters(), float("inf"))
    with torch.no_grad():
        hidden = enc.eval()(**inputs).last_hidden_state.numpy()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731  tied ones once
    return ({"loss": loss.item(), "grad_norm": norm.item()}, hidden,
            {"mlm": count(mlm), "encoder": count(enc),
             "attn_implementation": mlm.config._attn_implementation})


def make_adamw(model, o, impl):
    """AdamW as llm_jax configures it: decay on matrices and embeddings, not biases or norms."""
    params = list(model.parameters())  # tied weights appear once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kind = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
    return torch.optim.AdamW(groups, lr=o.lr, betas=(o.b1, o.b2), eps=o.eps, **kind)


def torch_train_side(cfg, params, batch, lrs, steps, args, compile_model):
    model = hf_models(cfg, params)[0].train()  # dropout on, as llm_jax's train step
    opt = make_adamw(model, cfg.optimizer, args.torch_adamw)
    fwd = torch.compile(model) if compile_model else model
    (inputs, labels), clip, i = torch_inputs(batch), cfg.optimizer.grad_clip, 0

    def run(n):
        nonlocal i
        for _ in range(n):
            loss = fwd(**inputs, labels=labels).loss
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for group in opt.param_groups:
                group["lr"] = lrs[i % len(lrs)]
            opt.step()
            opt.zero_grad(set_to_none=True)
            i += 1
        return loss.item()  # CPU PyTorch is synchronous; this just uses the result

    compile_s = bench.first_run(run, args.compile_timeout if compile_model else 0)
    run(1)
    return {"run": run, "steps": bench.pick_steps(run, steps, args), "compile_s": compile_s}


def torch_encode_side(cfg, params, batch, steps, args, compile_model):
    model = hf_models(cfg, params)[1].eval()
    fwd = torch.compile(model) if compile_model else model
    inputs = torch_inputs(batch)[0]

    def run(n):
        with torch.no_grad():
            for _ in range(n):
                out = fwd(**inputs).last_hidden_state
        return out

    compile_s = bench.first_run(run, args.compile_timeout if compile_model else 0)
    run(1)
    return {"run": run, "steps": bench.pick_steps(run, steps, args), "compile_s": compile_s}


# ---------------------------------------------------------------- report

def timed(runners, errors, args, rate):
    """bench.measure over `runners`, each result with its `rate` fields, errors kept."""
    results = {**errors, **bench.measure(runners, args.repeats)}
    for r in results.values():
        if "sec_per_step" in r:
            r.update({k: n / r["sec_per_step"] for k, n in rate.items()})
    return {k: results[k] for k in SIDES}


def ratios(results, key):
    """llm_jax / each PyTorch side, and / the faster of the two (None where one is missing)."""
    ours = results["llm_jax"].get(key)
    out = {f"vs_{k}": ours / results[k][key] if ours and key in results[k] else None
           for k in SIDES[1:]}
    best = max((results[k][key] for k in SIDES[1:] if key in results[k]), default=None)
    out["vs_best_torch"] = ours / best if ours and best else None
    return out


def cell(r, key):
    if key in r:
        return f"{r[key]:,.1f}"
    return f"failed: {r['error']}" if "error" in r else f"skipped ({r['skipped']})"


def print_report(report):
    print("\n| shape | measurement | llm_jax | torch eager | torch.compile | llm_jax / best torch |")
    print("|---|---|---:|---:|---:|---:|")
    for part, key, what in (("train", "tok_s", "MLM training, tokens/s"),
                            ("inference", "sentences_s", "encoder, sentences/s")):
        r, best = report[part], report["ratios"][part]["vs_best_torch"]
        print(f"| {report['shape']} | {what} | {cell(r['llm_jax'], key)} "
              f"| {cell(r['torch_eager'], key)} | {cell(r['torch_compile'], key)} "
              f"| {f'{best:.2f}x' if best else 'n/a'} |")
        for k, v in r.items():
            if v.get("other_processes_cores", 0) > 0.2:
                print(f"WARNING: other processes kept {v['other_processes_cores']} cores busy "
                      f"while {part}/{k} was timed: that figure is not trustworthy")
    p, env = report["parity"], report["environment"]
    print(f"\n{report['params']:,} params (both; encoder {report['params_encoder']:,}); "
          f"{report['tokens_per_step']} real tokens and {report['masked_per_step']} masked per "
          f"step ({report['batch_shape']} padded, P = {report['max_predictions']}). Parity at "
          f"llm_jax's init, dropout off: MLM loss jax {p['jax']['loss']:.6f} / torch "
          f"{p['torch']['loss']:.6f}, grad norm jax {p['jax']['grad_norm']:.6f} / torch "
          f"{p['torch']['grad_norm']:.6f}, encoder outputs within "
          f"{p['encoder_max_abs_diff']:.2e}.")
    print(f"jax {env['jax']}, torch {env['torch']} ({env['torch_threads']} threads, AdamW "
          f"{env['torch_adamw']}), transformers {env['transformers']} (attention "
          f"{env['hf_attn_implementation']}); CPU {env['cpu']}, {env['cores']} cores; malloc "
          f"{env['malloc']}; other processes used {env['other_processes_cores_at_start']:.2f} "
          "cores at start.")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=SHAPES, default="bert_mini",
                   help="a bert.size_config size (without pooler / NSP head), or tiny")
    p.add_argument("--batch", type=int, default=32, help="sequences per step")
    p.add_argument("--len", type=int, default=128, help="padded tokens per sequence")
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps (or encoder calls) per repeat (0: enough for ~--seconds, "
                        "at least 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per side")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--torch-adamw", choices=("default", "foreach", "fused"), default="fused",
                   help="torch.optim.AdamW's implementation")
    p.add_argument("--compile", choices=("on", "off"), default="on",
                   help="off: skip torch.compile (it takes minutes on a CPU)")
    p.add_argument("--compile-timeout", type=int, default=900)
    p.add_argument("--malloc", choices=("llm_jax", "default", "tuned"), default="llm_jax",
                   help="llm_jax: llm_jax.allocator's start-up setting, as the CLI applies it; "
                        "default: glibc untouched; tuned: rerun with the GPT benchmark's "
                        "TUNED_MALLOC_ENV (each applies to both sides alike)")
    p.add_argument("--out", default=os.path.join("runs", "bert_bench", "results.json"),
                   help="the JSON report")
    args = p.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # fail before timing
    if args.len < 5 or args.batch < 1:
        p.error("--len must be >= 5 (a sentence pair) and --batch >= 1")
    if args.malloc == "tuned":
        bench.reexec_with_tuned_malloc()
    torch.set_num_threads(args.threads)
    exe = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(REPO) else (
        sys.executable)
    command = shlex.join([exe, os.path.relpath(os.path.abspath(sys.argv[0]), REPO),
                          *sys.argv[1:]])

    import transformers
    env = bench.environment(args)
    env["transformers"] = transformers.__version__
    busy = env["other_processes_cores_at_start"] = bench.other_processes_cores()
    if busy > 0.2:
        print(f"warning: other processes keep {busy:.2f} cores busy: timings will be noisy")
    cfg = load_config(args.shape, args.batch, args.len)
    batch = random_batch(cfg, args.batch, args.len, cfg.seed)
    steps = args.steps or None

    print(f"[{args.shape}] llm_jax train step ...", flush=True)
    runners, errors = {}, {}
    runners["llm_jax"], jax_parity, params, schedule, graphdef = jax_train_side(
        cfg, batch, steps, args)
    t_parity, t_hidden, counts = torch_parity(cfg, params, batch)
    env["hf_attn_implementation"] = counts.pop("attn_implementation")
    n_params = sum(x.size for x in jax.tree.leaves(params))
    head = {k: params[k] for k in ("mlm_dense", "mlm_ln", "mlm_bias")}
    n_encoder = n_params - sum(x.size for x in jax.tree.leaves(head))
    parity = {"jax": jax_parity, "torch": t_parity,
              "loss_abs_diff": abs(jax_parity["loss"] - t_parity["loss"])}
    if (parity["loss_abs_diff"] > LOSS_TOL or not math.isclose(
            jax_parity["grad_norm"], t_parity["grad_norm"], rel_tol=GRAD_REL_TOL)):
        raise SystemExit(f"parity failed: Hugging Face with llm_jax's weights gives another MLM "
                         f"loss or gradient norm: {parity}")
    if (counts["mlm"], counts["encoder"]) != (n_params, n_encoder):
        raise SystemExit(f"parity failed: parameter counts differ: llm_jax {n_params:,} "
                         f"(encoder {n_encoder:,}), Hugging Face {counts}")

    lrs = np.asarray(jax.vmap(schedule)(jnp.arange(cfg.train.steps)), np.float64).tolist()
    for key, compiled in (("torch_eager", False), ("torch_compile", True)):
        if compiled and args.compile == "off":
            errors[key] = {"skipped": "--compile off"}
            continue
        print(f"[{args.shape}] {key} train step ...", flush=True)
        try:
            runners[key] = torch_train_side(cfg, params, batch, lrs, steps, args, compiled)
        except Exception as e:  # reported, not dropped
            errors[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    print(f"[{args.shape}] timing training: {', '.join(runners)}, interleaved ...", flush=True)
    tokens, B = int(batch["mask"].sum()), args.batch
    train = timed(runners, errors, args, {"tok_s": tokens, "sequences_s": B})
    del runners

    print(f"[{args.shape}] encoder inference ...", flush=True)
    runners, errors = {}, {}
    runners["llm_jax"], j_hidden = jax_encode_side(graphdef, params, batch, steps, args)
    parity["encoder_max_abs_diff"] = float(np.abs(j_hidden - t_hidden).max())
    if not parity["encoder_max_abs_diff"] <= HIDDEN_TOL:
        raise SystemExit(f"parity failed: encoder outputs differ by "
                         f"{parity['encoder_max_abs_diff']:.3g} (tolerance {HIDDEN_TOL})")
    for key, compiled in (("torch_eager", False), ("torch_compile", True)):
        if compiled and args.compile == "off":
            errors[key] = {"skipped": "--compile off"}
            continue
        try:
            runners[key] = torch_encode_side(cfg, params, batch, steps, args, compiled)
        except Exception as e:
            errors[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    print(f"[{args.shape}] timing inference: {', '.join(runners)}, interleaved ...", flush=True)
    inference = timed(runners, errors, args, {"sentences_s": B, "tok_s": tokens})
    del runners

    report = {"command": command, "environment": env, "shape": args.shape,
              "model": cfg.model.to_dict(),
              "optimizer": {k: cfg.optimizer[k] for k in ("name", "lr", "b1", "b2", "eps",
                                                           "weight_decay", "grad_clip",
                                                           "schedule", "warmup_steps")},
              "batch_shape": [B, args.len], "tokens_per_step": tokens,
              "padded_tokens_per_step": int(batch["mask"].size),
              "masked_per_step": int(batch["mlm_weights"].sum()),
              "max_predictions": int(batch["mlm_positions"].shape[1]),
              "params": n_params, "params_hf": counts["mlm"], "params_encoder": n_encoder,
              "params_encoder_hf": counts["encoder"], "parity": parity,
              "train": train, "inference": inference,
              "ratios": {"train": ratios(train, "tok_s"),
                         "inference": ratios(inference, "sentences_s")}}
    print_report(report)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
