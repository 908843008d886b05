"""The gradient training loop: any task, any model, over a device mesh.

The best checkpoint by `config.train.best_metric` (when set) is kept in WORKDIR/BEST_DIR.
"""

import json
import math
import os
import signal
import time

import jax
from flax import nnx
from tqdm.auto import tqdm

from llm_jax.tasks.protocols import NUM_TOKENS, DecodingEvaluator
from llm_jax.training.checkpoints import BestCheckpoint
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import SUMMARY_FILE, Experiment, save_config
from llm_jax.training.guards import FiniteWatch, GracefulStop, TrainingInterrupted
from llm_jax.training.metrics import MetricsWriter, read_metrics
from llm_jax.training.steps import NONFINITE, has_carry, make_eval_step, make_train_step

BEST_DIR = "checkpoints_best"


def evaluate(exp: Experiment, params, eval_step=None, *, max_batches=None, tokens=None,
             prefix="eval") -> dict:
    """Eval metrics over the eval split (all of it unless max_batches), or over `tokens`.

    Every metric is the task's sum over all batches divided by its total weight (exact over
    padded or uneven batches); perplexity is added where the task's loss is a token NLL. A
    task with a carry starts from a zero state and carries it from batch to batch.
    """
    eval_step = eval_step or make_eval_step(exp.task, exp.spec, exp.mesh)
    batches = exp.task.eval_batches(exp.config.train.batch_size, max_batches, tokens)
    sums, carry = {}, None
    for batch in batches:
        if has_carry(exp.task):
            m, carry = eval_step(params, carry, exp.put_batch(batch))
        else:
            m = eval_step(params, exp.put_batch(batch))
        for k, v in jax.device_get(m).items():
            if k == NUM_TOKENS:
                continue
            total, weight = sums.get(k, (0.0, 0.0))
            sums[k] = (total + float(v[0]), weight + float(v[1]))
    if not sums:
        raise ValueError("the eval split is too short for one batch of config.train.batch_size "
                         "examples")
    out = {f"{prefix}/{k}": total / weight if weight else math.nan
           for k, (total, weight) in sums.items()}
    if exp.task.reports_token_nll:  # of "loss", or of the token NLL metric the task names
        nll = getattr(exp.task, "token_nll_metric", "loss")
        out[f"{prefix}/perplexity"] = math.exp(min(out[f"{prefix}/{nll}"], 700.0))
    if isinstance(exp.task, DecodingEvaluator):
        model = nnx.merge(exp.spec.graphdef, params)
        scores = exp.task.decode_metrics(model, tokens, final=max_batches is None)
        out.update({f"{prefix}/{k}": v for k, v in scores.items()})
    return out


def _epoch_ends(step: int, steps_per_epoch) -> bool:
    """Whether an epoch ends with this (1-based) step; epochs need not align with steps."""
    return bool(steps_per_epoch) and int(step // steps_per_epoch) != int((step - 1) // steps_per_epoch)


def train(config, workdir: str, *, devices=None) -> dict:
    """Trains (resuming from `workdir` if it holds checkpoints); returns the final metrics.

    Nothing is written to the workdir until its checkpoint (if any) has been restored, so a
    resume that cannot work leaves the workdir as it was; a finished run is not redone.
    """
    check_config(config)
    exp = Experiment(config, workdir, devices=devices)
    config, tc = exp.config, exp.config.train
    state, data_state = exp.initial_state()
    start = int(state["step"])
    summary_path = os.path.join(workdir, SUMMARY_FILE)
    if start >= tc.steps and os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        print(f"already finished: {os.path.abspath(workdir)} (step {start}); " + _eval_line(summary),
              flush=True)
        exp.checkpointer.close()
        return summary
    save_config(config, workdir)
    try:
        with GracefulStop() as stop:
            final = _loop(exp, state, data_state, start, stop)
    finally:
        exp.checkpointer.close()  # never leaves an async save in flight, error or not
    with open(summary_path + ".tmp", "w") as f:
        json.dump(final, f, indent=2)
    os.replace(summary_path + ".tmp", summary_path)
    return final


def _loop(exp: Experiment, state, data_state, start: int, stop: GracefulStop) -> dict:
    config, tc, workdir = exp.config, exp.config.train, exp.workdir
    batches = exp.task.train_batches(tc.batch_size, config.seed)
    if data_state is not None:
        batches.set_state(data_state)
    it = iter(batches)
    train_step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh,
                                 grad_accum=tc.grad_accum)
    eval_step = make_eval_step(exp.task, exp.spec, exp.mesh)
    writer = MetricsWriter(workdir, resume_step=start)
    best = (BestCheckpoint(os.path.join(workdir, BEST_DIR), tc.best_metric, tc.best_mode)
            if tc.best_metric else None)
    bar = tqdm(total=tc.steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
               disable=not tc.progress_bar)
    if start:
        bar.write(f"resumed from {exp.checkpointer.directory}/{start}")
    # Token counts and non-finite codes stay on device until a log or checkpoint step, so no
    # step waits for the host; no checkpoint is written before they are checked.
    last_time, t0, final, token_counts = time.perf_counter(), time.perf_counter(), {}, []
    if start >= tc.steps:  # finished but for summary.json: rebuild it from the metrics log
        for row in read_metrics(os.path.join(workdir, "metrics.jsonl")):
            final.update({k: v for k, v in row.items() if k != "step"})
    watch, last_saved = FiniteWatch(), exp.checkpointer.latest_step()
    for step in range(start + 1, tc.steps + 1):
        state, metrics = train_step(state, exp.put_batch(next(it)))
        token_counts.append(metrics.pop(NUM_TOKENS, None))
        watch.add(step, metrics.pop(NONFINITE))
        row = {}
        if step % tc.log_every == 0 or step == tc.steps:
            watch.check(last_saved, exp.checkpointer.directory)
            now = time.perf_counter()
            row = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
            if token_counts[0] is not None:
                tokens = sum(float(n) for n in jax.device_get(token_counts))
                row["train/tokens_per_sec"] = tokens / (now - last_time)
            last_time, token_counts = now, []
            bar.set_postfix(loss=f"{row['train/loss']:.4f}",
                            tok_s=f"{row.get('train/tokens_per_sec', 0):.0f}")
        epoch_end = tc.epochs > 0 and _epoch_ends(step, exp.steps_per_epoch)
        evaluated = step % tc.eval_every == 0 or step == tc.steps or epoch_end
        if evaluated:
            # the last eval, and those at epoch ends, read the whole split
            limit = None if step == tc.steps or epoch_end else tc.eval_batches
            row.update(evaluate(exp, state["params"], eval_step, max_batches=limit))
            if epoch_end:
                row["epoch"] = round(step / exp.steps_per_epoch)
            bar.write(f"step {step}: " + _eval_line(row))
            if best is not None:
                watch.check(last_saved, exp.checkpointer.directory)
                if best.update(step, row, state, batches.get_state()):
                    row["best/" + tc.best_metric] = best.best
        if row:
            writer.write(step, row)
            final.update(row)
        stopping = stop.requested is not None
        if step % tc.checkpoint_every == 0 or step == tc.steps or epoch_end or stopping:
            watch.check(last_saved, exp.checkpointer.directory)
            exp.checkpointer.save(step, state, batches.get_state())
            last_saved = step
        if stopping:
            bar.close()
            writer.close()
            if best is not None:
                best.close()
            name = signal.Signals(stop.requested).name
            raise TrainingInterrupted(
                f"{name}: stopped at step {step} of {tc.steps} and saved a checkpoint in "
                f"{exp.checkpointer.directory}; run the same command again to resume",
                stop.requested)
        if step == start + 1 or evaluated:
            # keep compilation and evaluation out of the tokens/s figure
            jax.block_until_ready(state)
            last_time, token_counts = time.perf_counter(), []
        bar.update(1)
    bar.close()
    if config.data.test_split:
        final.update(evaluate(exp, state["params"], eval_step,
                              tokens=exp.task.split_tokens(config.data.test_split), prefix="test"))
        print(f"{config.data.test_split}: " + _eval_line(final, "test"), flush=True)
    if best is not None:
        best.close()
        final["best/" + tc.best_metric] = best.best
    writer.close()
    final.update({"step": tc.steps, "wall_time_sec": time.perf_counter() - t0,
                  "params": exp.spec.param_count})
    return final


def _eval_line(row: dict, prefix: str = "eval") -> str:
    keys = [f"{prefix}/loss"] + ([f"{prefix}/perplexity"] if f"{prefix}/perplexity" in row else [])
    keys += [k for k in row if k.startswith(prefix + "/") and k not in keys][:3]
    return " ".join(f"{k} {row[k]:.4f}" for k in keys)
