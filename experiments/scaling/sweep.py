"""Loss against model size at a fixed token budget (Kaplan et al. 2020), on WikiText-2 characters.

  python -m llm_jax sweep --config=configs/gpt_shakespeare.py:cpu \
      --sweep=experiments/scaling/sweep.py --workdir=runs/scaling
  python experiments/scaling/fit.py --sweep_dir=runs/scaling --out=runs/scaling

Six GPT-2 shapes from about 0.1M to 10M non-embedding parameters (12 * layers * width^2), each
trained on the same TOKENS training tokens (characters), at one context and batch, with the
learning rate of Kaplan et al. (2020) eq. D.1 for its size. Every setting that defines the study
is an override here, so the base config only adds what the sizes share (configs/gpt_shakespeare.py
:cpu: pre-LN GPT-2 block without biases, exact GELU, AdamW b2=0.99, weight decay 0.1, gradient
clipping 1.0, a Python loop over layers, float32). Change the study by editing the constants
below; a run whose overrides change gets a new workdir, and finished runs are not redone.
"""

import math

CORPUS, TOKENIZER = "wikitext-2", "char"  # 10.8M training characters, 283 distinct ones
SEQ_LEN = 128
BATCH_SIZE = 16
TOKENS = 2**21  # training tokens per size: train.steps = TOKENS // (BATCH_SIZE * SEQ_LEN)
HEAD_DIM = 32   # heads = width // HEAD_DIM
SIZES = ((2, 64), (2, 96), (3, 128), (4, 192), (5, 256), (6, 384))  # (layers, width)
WARMUP_FRACTION = 0.05  # linear warm-up, then cosine decay to zero (Kaplan et al., section 2.2)
EVALS = 8  # evaluations a run, every steps // EVALS: the last reads the whole valid split, the
           # others train.eval_batches batches of it (the learning curves' points)
CHECKPOINTS = 4  # per run: how much a killed run loses (the sweep resumes it)


def approx_params(layers: int, width: int) -> int:
    """Kaplan et al.'s N = 2 d_model n_layer (2 d_attn + d_ff) = 12 n_layer d_model^2."""
    return 12 * layers * width**2


def kaplan_lr(n: float) -> float:
    """Kaplan et al. (2020) eq. D.1, fitted to their runs at 512 x 1024 tokens a step."""
    return 0.003239 - 0.0001395 * math.log(n)


def scaling_sweep(sizes=SIZES, *, tokens=TOKENS, seq_len=SEQ_LEN, batch_size=BATCH_SIZE,
                  corpus=CORPUS, tokenizer=TOKENIZER, head_dim=HEAD_DIM, evals=EVALS,
                  checkpoints=CHECKPOINTS) -> list[dict]:
    """One override dict per (layers, width); the size fields first, so run names start readably."""
    per_step = batch_size * seq_len
    if tokens % per_step:
        raise ValueError(f"tokens={tokens} is not a multiple of batch_size * seq_len = "
                         f"{batch_size} * {seq_len}: every size must see the same tokens")
    steps = tokens // per_step
    if steps < evals:
        raise ValueError(f"tokens={tokens} make {steps} steps, fewer than evals={evals}")
    runs = []
    for layers, width in sizes:
        if width % head_dim:
            raise ValueError(f"width {width} is not a multiple of head_dim={head_dim}")
        runs.append({
            "model.num_layers": layers, "model.embed_dim": width,
            "model.num_heads": width // head_dim,
            "optimizer.lr": float(f"{kaplan_lr(approx_params(layers, width)):.4g}"),
            "model.head_dim": 0,
            "optimizer.min_lr": 0.0, "optimizer.schedule": "cosine",
            "optimizer.warmup_steps": max(1, round(WARMUP_FRACTION * steps)),
            "optimizer.warmup_fraction": 0.0, "optimizer.decay_steps": 0,
            "data.corpus": corpus, "data.tokenizer": tokenizer, "data.seq_len": seq_len,
            "model.max_len": seq_len, "model.vocab_size": 0, "model.mlp_dim": 0,
            "model.dropout_rate": 0.0, "model.dtype": "float32", "model.param_dtype": "float32",
            "train.batch_size": batch_size, "train.grad_accum": 1, "train.steps": steps,
            "train.epochs": 0, "train.eval_every": steps // evals,
            "train.checkpoint_every": max(1, steps // checkpoints),
        })
    return runs


def get_sweep():
    return scaling_sweep()
