"""The trainer end to end on the tiny Shakespeare config: metrics, resume, errors, eval."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.data import MissingDataError
from llm_jax.training.checkpoints import CheckpointError
from llm_jax.training.commands import evaluate_workdir, generate_text
from llm_jax.training.metrics import read_metrics
from llm_jax.training.trainer import train
from tests.conftest import REPO


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """One tiny run (40 steps, checkpoints at 20 and 40) shared by the tests below."""
    request.getfixturevalue("real_data_dir")
    from tests.conftest import load_config
    c = load_config("gpt_shakespeare", "tiny")
    c.train.progress_bar = False
    workdir = str(tmp_path_factory.mktemp("tiny"))
    summary = train(c, workdir)
    return c, workdir, summary


@pytest.fixture(scope="module")
def real_data_dir():
    """Module-scoped (the shared `trained` run needs it), so no monkeypatch: restored by hand."""
    from tests.conftest import require_real_data
    path, before = require_real_data(), os.environ.get("LLM_JAX_DATA_DIR")
    os.environ["LLM_JAX_DATA_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("LLM_JAX_DATA_DIR", None)
    else:
        os.environ["LLM_JAX_DATA_DIR"] = before


def test_run_writes_config_metrics_and_learns(trained):
    c, workdir, summary = trained
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    train_loss = [r["train/loss"] for r in rows if "train/loss" in r]
    assert train_loss[-1] < train_loss[0] - 0.3
    assert [r["step"] for r in rows if "eval/loss" in r] == [20, 40]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["vocab_size"] == 65
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["20", "40"]
    assert any(n.startswith("events") for n in os.listdir(os.path.join(workdir, "tensorboard")))


def test_eval_and_generate_from_workdir(trained):
    _, workdir, summary = trained
    full = evaluate_workdir(workdir)
    assert full["step"] == 40
    # The last eval of a run reads the whole split with the same parameters: the same numbers
    # (identical on CPU; 1e-6 leaves room for another device's reduction order).
    for name in ("eval/loss", "eval/accuracy", "eval/perplexity"):
        assert full[name] == pytest.approx(summary[name], rel=1e-6), name
    texts = generate_text(workdir, "ROMEO:", max_new_tokens=20, num_samples=2, temperature=0)
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0].startswith("ROMEO:")
    assert len(texts[0]) == len("ROMEO:") + 20


def test_eval_metrics_match_a_numpy_reference(trained):
    """The summary's eval metrics against float64 NumPy over the checkpoint's logits.

    Eval reads non-overlapping windows of seq_len + 1 tokens from the start of the split, in
    whole batches (3,480 windows of 32 here). Measured: loss and perplexity within 1e-8
    relative, accuracy exact. Dropping the last of the 435 batches moves the loss by 2e-5
    relative, windows one token too close by 5e-4, the first 4 batches only by 2e-3.
    """
    from llm_jax.tasks import build_task
    from llm_jax.training.commands import load

    c, workdir, summary = trained
    model, _, config = load(workdir)
    ids = np.asarray(build_task(config, workdir).eval_tokens)
    T, B = c.data.seq_len, c.train.batch_size
    n = (len(ids) - 1) // T // B * B
    windows = ids[np.arange(n)[:, None] * T + np.arange(T + 1)]
    forward = jax.jit(model)
    logits = np.concatenate([np.asarray(forward(jnp.asarray(windows[i:i + 580, :-1])))
                             for i in range(0, n, 580)]).astype(np.float64)
    m = logits.max(-1)
    lse = m + np.log(np.exp(logits - m[..., None]).sum(-1))
    nll = lse - np.take_along_axis(logits, windows[:, 1:, None], -1)[..., 0]
    assert n == 3480 and nll.shape == (n, T)
    assert summary["eval/loss"] == pytest.approx(nll.mean(), rel=1e-6)
    assert summary["eval/perplexity"] == pytest.approx(np.exp(nll.mean()), rel=1e-6)
    assert summary["eval/accuracy"] == pytest.approx(
        np.mean(logits.argmax(-1) == windows[:, 1:]), abs=1e-9)


def test_unfinished_checkpoint_is_ignored(trained, tmp_path):
    c, workdir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    # What a save killed half-way leaves behind: Orbax's temporary directory.
    junk = copy / "checkpoints" / "60.orbax-checkpoint-tmp-1234"
    junk.mkdir()
    (junk / "state").write_text("half written")
    assert evaluate_workdir(str(copy))["step"] == 40


def _damage(checkpoint_dir, how="garbage"):
    for root, _, files in os.walk(checkpoint_dir / "state"):
        for name in files:
            path = os.path.join(root, name)
            if how == "garbage":
                with open(path, "wb") as f:
                    f.write(b"garbage")
            else:  # truncated: what a full disk or a killed copy leaves
                os.truncate(path, os.path.getsize(path) // 2)


def test_damaged_checkpoint_is_named_and_the_previous_one_used(trained, tmp_path, capfd):
    _, workdir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    _damage(copy / "checkpoints" / "40")
    assert evaluate_workdir(str(copy))["step"] == 20
    err = capfd.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and str(copy / "checkpoints" / "40") in warning[0]
    assert len(warning[0]) < 400  # one readable line, not a TensorStore dump
    assert (copy / "checkpoints" / "40").is_dir()  # eval changes nothing
    _damage(copy / "checkpoints" / "20")
    with pytest.raises(CheckpointError, match="no checkpoint .* can be restored"):
        evaluate_workdir(str(copy))


def test_training_resumes_from_the_last_good_checkpoint(trained, tmp_path):
    c, workdir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    os.remove(copy / "summary.json")
    _damage(copy / "checkpoints" / "40", how="truncate")
    train(c, str(copy))  # resumes at 20, steps 21-40 again
    assert (copy / "checkpoints_damaged" / "40").is_dir()  # kept, out of the way
    a = {r["step"]: r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))}
    b = {r["step"]: r for r in read_metrics(copy / "metrics.jsonl")}
    assert a[40]["train/loss"] == b[40]["train/loss"] and a[40]["eval/loss"] == b[40]["eval/loss"]


def test_mismatched_checkpoint_names_the_parameter(trained, tmp_path):
    c, workdir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    wider = c.copy_and_resolve_references()
    wider.model.embed_dim = 48
    with pytest.raises(CheckpointError, match="embed/table"):
        train(wider, str(copy))
    # the finished checkpoints are untouched
    assert sorted(os.listdir(copy / "checkpoints")) == ["20", "40"]


def test_missing_data_file_is_named(tiny_config, tmp_data_dir, tmp_path):
    with pytest.raises(MissingDataError, match=str(tmp_data_dir / "tinyshakespeare")):
        train(tiny_config, str(tmp_path / "run"))


def test_unknown_config_field_is_named(tiny_config, tmp_path):
    with tiny_config.unlocked():
        tiny_config.train.stepz = 3
    with pytest.raises(ValueError, match=r"train\.stepz \(did you mean train\.steps\?\)"):
        train(tiny_config, str(tmp_path / "run"))


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "llm_jax", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_cli_rejects_unknown_override(real_data_dir, tmp_path):
    out, _ = _cli("train", "--config=configs/gpt_shakespeare.py:tiny", f"--workdir={tmp_path}",
                  "--config.train.stepz=3").communicate(timeout=120)
    assert "stepz" in out


def test_killed_run_resumes_exactly(tiny_config, tmp_path):
    """SIGKILL part-way, restart in the same workdir: every later step's loss is identical."""
    steps = ["--config.train.steps=300", "--config.train.log_every=1",
             "--config.train.checkpoint_every=25", "--config.train.eval_every=100",
             "--config.train.progress_bar=False"]
    ref = tmp_path / "ref"
    _cli("train", "--config=configs/gpt_shakespeare.py:tiny", f"--workdir={ref}", *steps
         ).communicate(timeout=300)
    run = tmp_path / "run"
    proc = _cli("train", "--config=configs/gpt_shakespeare.py:tiny", f"--workdir={run}", *steps)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        rows = read_metrics(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else []
        if rows and rows[-1]["step"] >= 60:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_metrics(run / "metrics.jsonl")[-1]["step"]
    assert killed_at < 300, "the run finished before it could be killed"
    out, _ = _cli("train", "--config=configs/gpt_shakespeare.py:tiny", f"--workdir={run}",
                  *steps).communicate(timeout=300)
    assert "resumed from" in out
    a = {r["step"]: r for r in read_metrics(ref / "metrics.jsonl")}
    b = {r["step"]: r for r in read_metrics(run / "metrics.jsonl")}
    assert sorted(a) == sorted(b)  # the resumed run dropped and recomputed its lost lines
    for step in range(killed_at - 10, 301):
        assert b[step]["train/loss"] == a[step]["train/loss"], step
    assert b[300]["eval/loss"] == a[300]["eval/loss"]


def test_early_stop_after_patience_evals_without_a_new_best_and_resume_counts_on(tmp_path):
    """Every parameter frozen, so eval/glue_score cannot improve after the first eval: with
    patience 2 the run stops at the third eval (step 30 of 50), saves a checkpoint there,
    writes its summary, and a resumed run goes on counting from the saved state."""
    from llm_jax.training.optimizer import param_group
    from llm_jax.training.trainer import BEST_DIR
    from tests.tasks.test_glue import tiny as glue_tiny

    c = glue_tiny(tmp_path, n_train=64, n_dev=16)
    c.optimizer.param_groups = (param_group("^", frozen=True),)
    c.train.update(steps=50, eval_every=10, log_every=10, checkpoint_every=10, eval_batches=1,
                   early_stop_patience=2)
    workdir = tmp_path / "run"
    summary = train(c, str(workdir))
    assert summary["step"] == 30 and summary["stopped_early"] is True
    assert summary["stopped_early_at_step"] == 30
    evals = [r for r in read_metrics(workdir / "metrics.jsonl") if "eval/loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert json.loads((workdir / "summary.json").read_text())["step"] == 30
    steps = lambda d: sorted(int(n) for n in os.listdir(d) if n.isdigit())  # noqa: E731
    assert steps(workdir / "checkpoints") == [10, 20, 30] and steps(workdir / BEST_DIR) == [10]
    # a finished (stopped) run is not redone
    assert train(c, str(workdir))["step"] == 30
    # resumed from step 20 (one eval without a new best): stops at the next eval, 30, not 40
    shutil.rmtree(workdir / "checkpoints" / "30")
    os.remove(workdir / "summary.json")
    again = train(c, str(workdir))
    assert again["step"] == 30 and again["stopped_early"] is True
