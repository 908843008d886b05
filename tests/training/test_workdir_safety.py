"""Ordinary mistakes do not break a workdir: two runs at once, a NaN between log steps, a
rejected resume, re-running a finished run, a failed first try, SIGTERM and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from llm_jax import models, tasks
from llm_jax.layers.params import normal, param
from llm_jax.tasks.protocols import mean_metric
from llm_jax.training.checkpoints import CheckpointError
from llm_jax.training.commands import evaluate_workdir, train
from llm_jax.training.config_schema import default_config
from llm_jax.training.guards import NonFiniteError
from llm_jax.training.metrics import read_metrics
from llm_jax.training.workdir_lock import WorkdirInUse, workdir_lock
from tests.conftest import REPO

TINY = ["--config=configs/gpt_shakespeare.py:tiny", "--config.train.progress_bar=False"]


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "llm_jax", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _error_lines(stderr):
    """The `error:` lines of a run's stderr (libraries may add warnings of their own)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _wait_for_step(proc, workdir, step, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        path = workdir / "metrics.jsonl"
        rows = read_metrics(path) if path.exists() else []
        if rows and rows[-1]["step"] >= step:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run did not reach step {step}: {proc.poll()}")


def test_a_second_train_on_a_busy_workdir_exits_at_once(real_data_dir, tmp_path, capfd):
    run = tmp_path / "run"
    first = _cli("train", *TINY, f"--workdir={run}", "--config.train.steps=400",
                 "--config.train.log_every=1")
    try:
        _wait_for_step(first, run, 1)
        t0 = time.time()
        second = _cli("train", *TINY, f"--workdir={run}")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1 and time.time() - t0 < 60
        line, = _error_lines(err)
        assert line.startswith("error: ") and f"pid {first.pid}" in line and "in use" in line
    finally:
        first.kill()
        first.wait()
    capfd.readouterr()
    # the first one is gone (kill -9): its lock is taken over, and that is said
    with workdir_lock(str(run)):
        assert f"took over the stale lock of {run}" in capfd.readouterr().err
        with pytest.raises(WorkdirInUse):  # and now it is held again
            with workdir_lock(str(run)):
                pass


class PoisonedRegression:
    """Linear regression whose 6th batch carries a NaN: a non-finite step between log steps."""

    reports_token_nll = False
    vocab_size = 1

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict(dict(name="poisoned", poison_batch=5))

    def __init__(self, config, workdir):
        self.poison_batch = config.task.poison_batch

    def train_batches(self, batch_size, seed):
        return Batches(batch_size, self.poison_batch)

    def eval_batches(self, batch_size, max_batches=None, tokens=None):
        return iter([Batches(batch_size, -1).make(0)])

    def split_tokens(self, split):
        raise NotImplementedError

    @staticmethod
    def saved_tokenizer(config, workdir):
        raise NotImplementedError

    def loss(self, model, batch, dropout_key=None):
        err = (batch["x"] @ model.w[...])[:, 0] - batch["y"] + batch["poison"]
        total, weight = mean_metric(err ** 2)
        return total / weight, {"loss": (total, weight)}


class Batches:
    def __init__(self, batch_size, poison_batch):
        self.batch_size, self.poison_batch, self.index = batch_size, poison_batch, 0

    def make(self, index):
        rng = np.random.default_rng(index)
        x = rng.normal(size=(self.batch_size, 3)).astype(np.float32)
        poison = np.full(self.batch_size, np.nan if index == self.poison_batch else 0.0, np.float32)
        return {"x": x, "y": x.sum(1), "poison": poison}

    def __iter__(self):
        return self

    def __next__(self):
        self.index += 1
        return self.make(self.index - 1)

    def get_state(self):
        return {"index": self.index}

    def set_state(self, state):
        self.index = state["index"]


class Linear(nnx.Module):
    def __init__(self, cfg, *, rngs):
        self.w = param(normal(0.1), rngs.params(), (3, 1), ("embed", None))


@pytest.fixture
def poisoned(monkeypatch):
    monkeypatch.setitem(tasks.TASKS, "poisoned", PoisonedRegression)
    monkeypatch.setitem(models.MODELS, "linear", (
        Linear, lambda: ml_collections.ConfigDict(dict(name="linear", vocab_size=0))))
    c = default_config("linear", "poisoned")
    c.data.seq_len = 1
    c.optimizer.update(warmup_steps=0, schedule="constant", lr=1e-2)
    c.train.update(steps=20, batch_size=4, log_every=10, eval_every=10, checkpoint_every=1,
                   keep_checkpoints=3, progress_bar=False)
    return c


def test_nan_between_log_steps_saves_nothing_bad(poisoned, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="loss and gradient norm became non-finite at step 6"
                       r".*step 5, is kept"):
        train(poisoned, str(run))
    assert sorted(os.listdir(run / "checkpoints"), key=int) == ["3", "4", "5"]
    assert not (run / "summary.json").exists()
    assert evaluate_workdir(str(run))["step"] == 5  # the kept checkpoints restore


def test_nonfinite_step_is_one_cli_line(real_data_dir, tmp_path):
    proc = _cli("train", *TINY, f"--workdir={tmp_path / 'run'}", "--config.optimizer.lr=1e30",
                "--config.optimizer.warmup_steps=0", "--config.optimizer.grad_clip=0",
                "--config.train.steps=30", "--config.train.checkpoint_every=5")
    _, err = proc.communicate(timeout=240)
    line, = _error_lines(err)
    assert proc.returncode == 1 and line.startswith("error: the training") and "non-finite" in line


def test_rejected_resume_leaves_the_workdir_as_it_was(tiny_config, tmp_path):
    run = tmp_path / "run"
    tiny_config.train.update(steps=4, eval_every=4, checkpoint_every=4)
    train(tiny_config, str(run))
    before = {name: (run / name).read_bytes() for name in ("config.json", "metrics.jsonl",
                                                           "summary.json")}
    wider = tiny_config.copy_and_resolve_references()
    wider.train.steps, wider.model.embed_dim = 8, 64
    with pytest.raises(CheckpointError, match=r"model\.embed_dim \(32 -> 64\).*nothing .* was changed"):
        train(wider, str(run))
    assert {name: (run / name).read_bytes() for name in before} == before
    assert evaluate_workdir(str(run))["step"] == 4


def test_rerunning_a_finished_run_keeps_its_summary(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    tiny_config.train.update(steps=4, eval_every=4, checkpoint_every=4)
    first = train(tiny_config, str(run))
    again = train(tiny_config, str(run))
    assert again == first and json.loads((run / "summary.json").read_text()) == first
    assert "already finished" in capsys.readouterr().out
    # killed just after its last checkpoint, before summary.json: finishing redoes only the end
    os.remove(run / "summary.json")
    redone = train(tiny_config, str(run))
    assert redone["eval/loss"] == first["eval/loss"] and redone["step"] == 4


def test_a_failed_first_run_leaves_nothing_behind(tiny_config, tmp_path, monkeypatch):
    real = (tiny_config and os.environ["LLM_JAX_DATA_DIR"])
    corpus = tmp_path / "data" / "tinyshakespeare" / "input.txt"
    corpus.parent.mkdir(parents=True)
    corpus.write_text("")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    run = tmp_path / "run"
    with pytest.raises(ValueError):
        train(tiny_config, str(run))
    assert sorted(os.listdir(run)) == [".lock"]  # no tokenizer with an empty vocabulary
    with open(os.path.join(real, "tinyshakespeare", "input.txt")) as f:
        corpus.write_text(f.read(200_000))
    tiny_config.train.update(steps=2, eval_every=2, checkpoint_every=2, eval_batches=1)
    assert train(tiny_config, str(run))["step"] == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_at_a_step_boundary_and_resumes_exactly(real_data_dir, tmp_path, sig):
    steps = ["--config.train.steps=200", "--config.train.log_every=1",
             "--config.train.checkpoint_every=1000", "--config.train.eval_every=100"]
    ref = tmp_path / "ref"
    _cli("train", *TINY, f"--workdir={ref}", *steps).communicate(timeout=300)
    run = tmp_path / "run"
    proc = _cli("train", *TINY, f"--workdir={run}", *steps)
    _wait_for_step(proc, run, 40)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig
    line, = _error_lines(err)
    assert line.startswith(f"error: {signal.Signals(sig).name}: stopped at step")
    saved = int(line.split("stopped at step ")[1].split()[0])
    assert os.listdir(run / "checkpoints") == [str(saved)] and saved < 200
    out, _ = _cli("train", *TINY, f"--workdir={run}", *steps).communicate(timeout=300)
    a = {r["step"]: r for r in read_metrics(ref / "metrics.jsonl")}
    b = {r["step"]: r for r in read_metrics(run / "metrics.jsonl")}
    assert sorted(a) == sorted(b)
    for step in range(saved - 5, 201):
        assert b[step]["train/loss"] == a[step]["train/loss"], step
    assert b[200]["eval/loss"] == a[200]["eval/loss"]
    assert jnp.isfinite(b[200]["eval/loss"])
