"""Width x learning-rate ablation of the CPU config, 500 steps per run.

  python -m llm_jax sweep --config=configs/gpt_shakespeare.py:cpu \
      --sweep=experiments/shakespeare_char/sweep.py --workdir=runs/shakespeare_sweep
"""

from llm_jax.training.sweeps import grid


def get_sweep():
    runs = grid(**{"model.embed_dim": [64, 128], "optimizer.lr": [1e-3, 3e-3]})
    for r in runs:
        r["train.steps"] = 500
    return runs
