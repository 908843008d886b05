"""The one generic training loop: any task, any model, over a device mesh."""

import json
import math
import os
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import Experiment, save_config
from llm_jax.training.loops import custom_loop
from llm_jax.training.metrics import MetricsWriter
from llm_jax.training.steps import has_carry, make_eval_step, make_train_step


def evaluate(exp: Experiment, params, eval_step=None, *, max_batches=None, tokens=None,
             prefix="eval") -> dict:
    """Mean eval metrics over the eval split (all of it unless max_batches), plus perplexity.

    A task with a carry starts from a zero state and carries it from batch to batch.
    """
    eval_step = eval_step or make_eval_step(exp.task, exp.spec, exp.mesh)
    batches = exp.task.eval_batches(exp.config.train.batch_size, max_batches, tokens)
    sums, n, carry = {}, 0, None
    for batch in batches:
        if has_carry(exp.task):
            m, carry = eval_step(params, carry, exp.put_batch(batch))
            m = jax.device_get(m)
        else:
            m = jax.device_get(eval_step(params, exp.put_batch(batch)))
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    if n == 0:
        raise ValueError("the eval split is too short for one batch of "
                         "config.train.batch_size x config.data.seq_len tokens")
    out = {f"{prefix}/{k}": v / n for k, v in sums.items()}
    out[f"{prefix}/perplexity"] = math.exp(min(out[f"{prefix}/loss"], 700.0))
    return out


def split_tokens(exp: Experiment, split: str):
    """The token ids of a data split, encoded with the run's tokenizer."""
    if hasattr(exp.task, "split_tokens"):
        return exp.task.split_tokens(split)
    from llm_jax.tasks.causal_lm import read_split
    return exp.task.tokenizer.encode(read_split(exp.config.data, split))


def _epoch_ends(step: int, steps_per_epoch) -> bool:
    """Whether an epoch ends with this (1-based) step; epochs need not align with steps."""
    return bool(steps_per_epoch) and int(step // steps_per_epoch) != int((step - 1) // steps_per_epoch)


def train(config, workdir: str, *, devices=None) -> dict:
    """Trains (resuming from `workdir` if it holds checkpoints); returns the final metrics."""
    check_config(config)
    loop = custom_loop(config.task.name)
    if loop is not None:
        return loop.train(config, workdir)
    exp = Experiment(config, workdir, devices=devices)
    config, tc = exp.config, exp.config.train
    save_config(config, workdir)
    state, data_state = exp.initial_state()
    start = int(state["step"])
    batches = exp.task.train_batches(tc.batch_size, config.seed)
    if data_state is not None:
        batches.set_state(data_state)
    it = iter(batches)
    train_step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh,
                                 grad_accum=tc.grad_accum)
    eval_step = make_eval_step(exp.task, exp.spec, exp.mesh)
    writer = MetricsWriter(workdir, resume_step=start)
    tokens_per_step = tc.batch_size * config.data.seq_len
    bar = tqdm(total=tc.steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
               disable=not tc.progress_bar)
    if start:
        bar.write(f"resumed from {exp.checkpointer.directory}/{start}")
    last_time, last_step, t0, final = time.perf_counter(), start, time.perf_counter(), {}
    for step in range(start + 1, tc.steps + 1):
        state, metrics = train_step(state, exp.put_batch(next(it)))
        row = {}
        if step % tc.log_every == 0 or step == tc.steps:
            now = time.perf_counter()
            row = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
            row["train/tokens_per_sec"] = tokens_per_step * (step - last_step) / (now - last_time)
            last_time, last_step = now, step
            if not np.isfinite(row["train/loss"]):
                raise FloatingPointError(f"train/loss is {row['train/loss']} at step {step}; "
                                         "lower config.optimizer.lr or check the data")
            bar.set_postfix(loss=f"{row['train/loss']:.4f}",
                            tok_s=f"{row['train/tokens_per_sec']:.0f}")
        epoch_end = tc.epochs > 0 and _epoch_ends(step, exp.steps_per_epoch)
        if step % tc.eval_every == 0 or step == tc.steps or epoch_end:
            # the last eval, and those at epoch ends, read the whole split
            limit = None if step == tc.steps or epoch_end else tc.eval_batches
            row.update(evaluate(exp, state["params"], eval_step, max_batches=limit))
            if epoch_end:
                row["epoch"] = round(step / exp.steps_per_epoch)
            bar.write(f"step {step}: eval/loss {row['eval/loss']:.4f} "
                      f"perplexity {row['eval/perplexity']:.2f}")
        if row:
            writer.write(step, row)
            final.update(row)
        if step % tc.checkpoint_every == 0 or step == tc.steps or epoch_end:
            exp.checkpointer.save(step, state, batches.get_state())
        if step == start + 1 or "eval/loss" in row:
            # keep compilation and evaluation out of the tokens/s figure
            jax.block_until_ready(state)
            last_time, last_step = time.perf_counter(), step
        bar.update(1)
    bar.close()
    if config.data.test_split:
        final.update(evaluate(exp, state["params"], eval_step,
                              tokens=split_tokens(exp, config.data.test_split), prefix="test"))
        print(f"{config.data.test_split}: loss {final['test/loss']:.4f} "
              f"perplexity {final['test/perplexity']:.2f}", flush=True)
    exp.checkpointer.close()
    writer.close()
    final.update({"step": tc.steps, "wall_time_sec": time.perf_counter() - t0,
                  "params": exp.spec.param_count})
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(final, f, indent=2)
    return final
