"""The gradient training loop: any task, any model, over a device mesh.

The best checkpoint by `config.train.best_metric` (when set) is kept in WORKDIR/BEST_DIR.
With `config.train.early_stop_patience` P > 0 as well, training stops after P periodic evals in
a row without a new best: that eval reads the whole split (as the last step's does), a final
checkpoint is saved, the test split is scored and summary.json written as at a normal end, with
"stopped_early": true and "step" the step it stopped at. The count of evals since the best is
kept in each checkpoint's data state (EVALS_SINCE_BEST; the best value itself is read back from
BEST_DIR), so a resumed run goes on counting, and a run that stopped early is finished.
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
from llm_jax.training.init_from import model_from_init_from
from llm_jax.training.metrics import MetricsWriter, read_metrics
from llm_jax.training.steps import NONFINITE, has_carry, make_eval_step, make_train_step

BEST_DIR = "checkpoints_best"
EVALS_SINCE_BEST = "evals_since_best"  # the early-stopping count, in a checkpoint's data state


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


def _patience(tc) -> int:
    return int(tc.get("early_stop_patience", 0) or 0) if tc.get("best_metric") else 0


def _split_data_state(data_state):
    """(the data pipeline's own state, the early-stopping count) of a restored data state."""
    if data_state is None:
        return None, 0
    data_state = dict(data_state)
    return data_state, int(data_state.pop(EVALS_SINCE_BEST, 0) or 0)


def train(config, workdir: str, *, devices=None) -> dict:
    """Trains (resuming from `workdir` if it holds checkpoints); returns the final metrics.

    Nothing is written to the workdir until its checkpoint (if any) has been restored, so a
    resume that cannot work leaves the workdir as it was; a finished run is not redone.
    """
    config = model_from_init_from(config)
    check_config(config)
    exp = Experiment(config, workdir, devices=devices)
    config, tc = exp.config, exp.config.train
    state, data_state = exp.initial_state()
    start = int(state["step"])
    summary_path = os.path.join(workdir, SUMMARY_FILE)
    patience = _patience(tc)
    stopped = patience and _split_data_state(data_state)[1] >= patience
    if (start >= tc.steps or stopped) and os.path.exists(summary_path):
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
    data_state, since_best = _split_data_state(data_state)
    if data_state is not None:
        batches.set_state(data_state)
    patience = _patience(tc)

    def data_state_now(count=None):
        data = batches.get_state()
        return {**data, EVALS_SINCE_BEST: since_best if count is None else count} if patience else data
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
    stopped_early = bool(patience) and since_best >= patience
    if start >= tc.steps or stopped_early:  # finished but for summary.json: rebuild it from
        for row in read_metrics(os.path.join(workdir, "metrics.jsonl")):  # the metrics log
            final.update({k: v for k, v in row.items() if k != "step"})
    watch, last_saved = FiniteWatch(), exp.checkpointer.latest_step()
    step = start
    for step in range(start + 1, (start if stopped_early else tc.steps) + 1):
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
                if best.update(step, row, state, data_state_now(0)):
                    row["best/" + tc.best_metric] = best.best
                    since_best = 0
                elif step < tc.steps:
                    since_best += 1
                    stopped_early = bool(patience) and since_best >= patience
            if stopped_early:
                bar.write(f"step {step}: early stop, {since_best} evals without a new best "
                          f"{tc.best_metric} ({best.best:.4f}); config.train.early_stop_patience="
                          f"{patience}")
                if limit is not None:  # the final eval reads the whole split
                    row.update(evaluate(exp, state["params"], eval_step))
                row["stopped_early_at_step"] = step
        if row:
            writer.write(step, row)
            final.update(row)
        stopping = stop.requested is not None
        if (step % tc.checkpoint_every == 0 or step == tc.steps or epoch_end or stopping
                or stopped_early):
            watch.check(last_saved, exp.checkpointer.directory)
            exp.checkpointer.save(step, state, data_state_now())
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
        if stopped_early:
            break
    bar.close()
    if config.data.test_split:
        final.update(evaluate(exp, state["params"], eval_step,
                              tokens=exp.task.split_tokens(config.data.test_split), prefix="test"))
        print(f"{config.data.test_split}: " + _eval_line(final, "test"), flush=True)
    if best is not None:
        best.close()
        final["best/" + tc.best_metric] = best.best
    writer.close()
    if stopped_early:
        final["stopped_early"] = True
    final.update({"step": max(step, start), "wall_time_sec": time.perf_counter() - t0,
                  "params": exp.spec.param_count})
    return final


def _eval_line(row: dict, prefix: str = "eval") -> str:
    keys = [f"{prefix}/loss"] + ([f"{prefix}/perplexity"] if f"{prefix}/perplexity" in row else [])
    keys += [k for k in row if k.startswith(prefix + "/") and k not in keys][:3]
    return " ".join(f"{k} {row[k]:.4f}" for k in keys)
