"""Where one epoch of skip-gram negative sampling spends its time: numpy pipeline vs jitted updates.

  python experiments/word2vec/profile_sgns.py [--batch_sizes=256,1024,4096] [--steps_per_call=32]

Builds one epoch's chunks first (timed alone), then runs the jitted update over them (timed
alone, after a compile), so the two costs are measured separately; the training loop overlaps them.
"""

import argparse
import time

import jax
import numpy as np

from llm_jax.training import sharding
from llm_jax.training.word2vec_loop import _chunk_shardings, _tables


def _config(batch_size, steps_per_call, variant):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "configs" / "word2vec.py"
    spec = importlib.util.spec_from_file_location("w2v_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config(variant)
    c.train.batch_size, c.task.steps_per_call = batch_size, steps_per_call
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch_sizes", default="256,1024,4096")
    p.add_argument("--steps_per_call", type=int, default=32)
    p.add_argument("--variant", default="sg_neg")
    args = p.parse_args()
    from llm_jax.tasks.word2vec import Word2VecTask
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        config = _config(bs, args.steps_per_call, args.variant)
        task = Word2VecTask(config)
        mesh = sharding.make_mesh(config.mesh)
        t0 = time.perf_counter()
        chunks = [c for c, _ in task.batches.epoch(0, 1, 0.025, 1e-4)]
        t_pipe = time.perf_counter() - t0
        tables = _tables(config, task, mesh)
        sh = _chunk_shardings(mesh, chunks[0])
        rep = sharding.replicated(mesh)
        update = jax.jit(task.make_update(), donate_argnums=(0, 1), in_shardings=(rep, rep, sh),
                         out_shardings=rep)
        w_in, w_out = tables["input"], tables["output"]
        w_in, w_out, loss, _ = update(w_in, w_out, chunks[0])  # compile
        jax.block_until_ready(w_in)
        dev = [jax.device_put(c, sh) for c in chunks]
        t0 = time.perf_counter()
        for c in dev:
            w_in, w_out, loss, n = update(w_in, w_out, c)
        jax.block_until_ready(w_in)
        t_dev = time.perf_counter() - t0
        words = task.corpus.raw_words
        examples = sum(float(np.sum(c["weights"])) for c in chunks)
        print(f"batch {bs:6d}: pipeline {t_pipe:6.2f} s  updates {t_dev:6.2f} s  "
              f"({examples / t_dev / 1e6:.2f} M examples/s)  -> {words / (t_pipe + t_dev):,.0f} words/s "
              f"serial, {words / max(t_pipe, t_dev):,.0f} words/s if fully overlapped", flush=True)


if __name__ == "__main__":
    main()
