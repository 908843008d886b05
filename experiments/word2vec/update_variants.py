"""Skip-gram negative-sampling update variants, timed on the same real chunks (pairs per CPU-second).

  LLM_JAX_DATA_DIR=../shared/data python experiments/word2vec/update_variants.py [--chunks=60]

Compares XLA's default (clamped) gathers/scatters with mode="promise_in_bounds", and jax.grad
with the closed-form word2vec gradient. CPU-seconds (time.process_time) are reported next to wall
seconds because the machine this was written on was shared: CPU time is less sensitive to load.
"""

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

from llm_jax.ops.word2vec import (
    logistic_loss_and_row_grads,
    loss_and_row_grads,
    negative_sampling_labels,
    negative_sampling_loss,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_sgns import _config  # noqa: E402


def make_update(mode, closed_form):
    kw = {"mode": mode} if mode else {}

    def step(tables, b):
        w_in, w_out = tables
        inp, tgt, neg, wt, lr = b["inputs"], b["targets"], b["negatives"], b["weights"], b["lr"]
        rows = jnp.concatenate([tgt[:, None], neg], 1)
        h, o = w_in.at[inp].get(**kw), w_out.at[rows].get(**kw)
        w = jnp.concatenate([jnp.ones_like(tgt[:, None], jnp.float32),
                             (neg != tgt[:, None]).astype(jnp.float32)], 1) * wt[:, None]
        if closed_form:
            _, (d_h, d_o) = logistic_loss_and_row_grads(h, o, negative_sampling_labels(o), w)
        else:
            _, (d_h, d_o) = loss_and_row_grads(negative_sampling_loss, h, o, w)
        return (w_in.at[inp].add(-lr * d_h, **kw), w_out.at[rows].add(-lr * d_o, **kw)), None

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def update(w_in, w_out, chunk):
        return jax.lax.scan(step, (w_in, w_out), chunk)[0]
    return update


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chunks", type=int, default=60)
    args = p.parse_args()
    from llm_jax.tasks.word2vec import Word2VecTask
    task = Word2VecTask(_config(1024, 32, "sg_neg"))
    chunks = [c for c, _ in task.batches.epoch(0, 1, 0.025, 1e-4)][:args.chunks]
    pairs = sum(float(c["weights"].sum()) for c in chunks)
    for mode, closed in [(None, False), ("promise_in_bounds", False), ("promise_in_bounds", True),
                         (None, False)]:  # the default again: a drift check for a busy machine
        update = make_update(mode, closed)
        w_in = jnp.full((task.vocab_size, 100), 1e-3)
        w_out = jnp.zeros((task.vocab_size, 100))
        w_in, w_out = update(w_in, w_out, chunks[0])
        jax.block_until_ready(w_in)
        t, pt = time.perf_counter(), time.process_time()
        for c in chunks:
            w_in, w_out = update(w_in, w_out, c)
        jax.block_until_ready(w_in)
        print(f"mode={mode or 'default':18s} grad={'closed form' if closed else 'jax.grad':11s} "
              f"{pairs / (time.perf_counter() - t) / 1e6:.2f} M pairs/s wall, "
              f"{pairs / (time.process_time() - pt) / 1e6:.2f} M pairs per CPU-s", flush=True)


if __name__ == "__main__":
    main()
