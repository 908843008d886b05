"""The generic trainer with a carried state (configs/rnn_lm.py:tiny): epochs, per-epoch decay,
test-split scoring, eval over a whole split with the state carried, exact resume."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from llm_jax.training.commands import evaluate_workdir
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import Experiment, load_config
from llm_jax.training.metrics import read_metrics
from llm_jax.training.optimizer import epoch_decay_schedule
from llm_jax.training.trainer import evaluate, train
from tests.conftest import load_config as load_config_file


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import require_real_data
    path, before = require_real_data("ptb"), os.environ.get("LLM_JAX_DATA_DIR")
    os.environ["LLM_JAX_DATA_DIR"] = str(path)
    c = load_config_file("rnn_lm", "tiny")
    c.train.update(checkpoint_every=20, keep_checkpoints=10)
    workdir = str(tmp_path_factory.mktemp("rnn_tiny"))
    summary = train(c, workdir)
    yield c, workdir, summary
    if before is None:
        os.environ.pop("LLM_JAX_DATA_DIR", None)
    else:
        os.environ["LLM_JAX_DATA_DIR"] = before


def test_epochs_set_the_steps_and_the_lr_decays_per_epoch(trained):
    _, workdir, summary = trained
    # tiny trains on PTB's valid split: 73,760 tokens in 64 streams of 1,152 -> 57 windows of 20
    assert summary["step"] == 2 * 57
    rows = {r["step"]: r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))}
    assert rows[50]["train/lr"] == 1.0 and rows[60]["train/lr"] == 0.5  # x0.5 from epoch 2
    epoch_rows = [r for r in rows.values() if "epoch" in r]
    assert [(r["step"], r["epoch"]) for r in epoch_rows] == [(57, 1), (114, 2)]
    assert epoch_rows[1]["eval/perplexity"] < epoch_rows[0]["eval/perplexity"]
    # the test split scored as the last epoch's valid was: near it, not equal to it
    assert 0.7 < summary["test/perplexity"] / epoch_rows[1]["eval/perplexity"] < 1.3


def test_eval_command_scores_the_test_split_like_the_summary(trained):
    _, workdir, summary = trained
    out = evaluate_workdir(workdir, split="test")
    assert out["split"] == "test" and out["step"] == summary["step"]
    np.testing.assert_allclose(out["eval/loss"], summary["test/loss"], rtol=1e-6)


def test_eval_carries_the_state_across_batches(trained):
    """Windows of 10 or of 50 steps score the same tokens identically only if the state flows
    from each window into the next."""
    _, workdir, _ = trained
    exp = Experiment(load_config(workdir), workdir)
    state, _ = exp.checkpointer.restore(exp.spec.abstract)
    tokens = exp.task.split_tokens("test")[:8 * 501]  # 8 streams of 501: 50 x 10 or 10 x 50
    losses = []
    exp.task.cfg.eval_batch_size = 8
    for seq_len in (10, 50):
        exp.task.cfg.eval_seq_len = seq_len
        losses.append(evaluate(exp, state["params"], tokens=tokens)["eval/loss"])
    exp.checkpointer.close()
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_stopped_run_resumes_exactly(trained, tmp_path):
    """A run that stopped after its step-40 checkpoint (mid-epoch, with a non-zero carry) and is
    restarted in its workdir logs the same losses and ends with the same perplexities."""
    c, workdir, summary = trained
    run = tmp_path / "run"
    shutil.copytree(workdir, run)
    for step in os.listdir(run / "checkpoints"):
        if step.isdigit() and int(step) > 40:
            shutil.rmtree(run / "checkpoints" / step)
    os.remove(run / "summary.json")
    exp = Experiment(c, str(run))
    carry = exp.checkpointer.restore(exp.spec.abstract)[0]["carry"]
    exp.checkpointer.close()
    assert any(np.any(np.asarray(x)) for x in jax.tree.leaves(carry))
    resumed = train(c, str(run))
    a = {r["step"]: r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))}
    b = {r["step"]: r for r in read_metrics(run / "metrics.jsonl")}
    assert sorted(a) == sorted(b)
    for step in sorted(s for s in a if s > 40):
        for key in a[step].keys() - {"train/tokens_per_sec"}:
            assert b[step][key] == a[step][key], (step, key)
    for key in ("eval/loss", "test/loss", "test/perplexity"):
        assert resumed[key] == summary[key], key
    assert json.loads((run / "summary.json").read_text())["test/loss"] == summary["test/loss"]


def test_epoch_decay_schedule_is_the_papers():
    """ptb_word_lm.py: lr * decay ** max(i + 1 - max_epoch, 0) for 0-based epoch i."""
    sched = epoch_decay_schedule(1.0, 0.5, 4, steps_per_epoch=10)
    for step, want in [(0, 1.0), (39, 1.0), (40, 0.5), (49, 0.5), (50, 0.25), (129, 0.5 ** 9)]:
        assert float(sched(step)) == pytest.approx(want), step


@pytest.mark.parametrize("variant", ["zaremba_small", "zaremba_medium", "zaremba_large",
                                     "gru", "rnn", "tiny"])
def test_variants_are_valid_configs(variant):
    c = load_config_file("rnn_lm", variant)
    check_config(c)
    assert c.task.name == "stream_lm" and c.model.name == "rnn_lm"


def test_unknown_variant_and_bad_epochs():
    with pytest.raises(ValueError, match="zaremba_tiny.*unknown variant"):
        load_config_file("rnn_lm", "zaremba_tiny")
    c = load_config_file("rnn_lm", "tiny")
    c.train.epochs = -1
    with pytest.raises(ValueError, match=r"config\.train\.epochs=-1"):
        check_config(c)
