import json
import os
import time

import jax
import ml_collections
import numpy as np
import pytest

from llm_jax.training import trainer
from llm_jax.training.commands import sweep
from llm_jax.training.experiment import Experiment, save_config
from llm_jax.training.optimizer import decay_mask, make_schedule, warmup_steps
from llm_jax.training.steps import make_train_step
from llm_jax.training.sweeps import (
    MAX_NAME_LEN,
    apply_overrides,
    grid,
    random_search,
    run_name,
    run_sweep,
    unfinished_reason,
    zip_,
)
from tests.conftest import load_config, require_real_data


def test_sweep_builders():
    assert grid(a=[1, 2], b=["x", "y"]) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                            {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert zip_(a=[1, 2], b=[3, 4]) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ValueError, match="one length"):
        zip_(a=[1], b=[1, 2])
    draws = random_search(5, seed=1, lr=lambda r: 10 ** r.uniform(-4, -2), layers=[2, 4])
    assert draws == random_search(5, seed=1, lr=lambda r: 10 ** r.uniform(-4, -2),
                                  layers=[2, 4])
    assert all(1e-4 <= d["lr"] <= 1e-2 and d["layers"] in (2, 4) for d in draws)


def test_override_of_unknown_field_is_named(tiny_config):
    with pytest.raises(KeyError, match="model.widht"):
        apply_overrides(tiny_config, {"model.widht": 3})
    assert apply_overrides(tiny_config, {"model.embed_dim": 16}).model.embed_dim == 16


def test_sweep_runs_and_tabulates(tiny_config, tmp_path):
    sweep_file = tmp_path / "sweep.py"
    sweep_file.write_text(
        "def get_sweep():\n"
        "    return [{'optimizer.lr': lr, 'train.steps': 6, 'train.eval_every': 3}\n"
        "            for lr in (1e-3, 1e-2)]\n")
    out = tmp_path / "sweep"
    rows = sweep(tiny_config, str(sweep_file), str(out))
    assert [r["run"] for r in rows] == ["optimizer.lr=0.001,train.steps=6,train.eval_every=3",
                                        "optimizer.lr=0.01,train.steps=6,train.eval_every=3"]
    assert all(np.isfinite(r["eval/loss"]) for r in rows)
    for name in ("results.csv", "results.md", "results.png"):
        assert (out / name).stat().st_size > 0
    assert "eval/loss" in (out / "results.md").read_text()
    mtime = os.path.getmtime(out / rows[0]["run"] / "summary.json")
    sweep(tiny_config, str(sweep_file), str(out))  # finished runs are not trained again
    assert os.path.getmtime(out / rows[0]["run"] / "summary.json") == mtime


def test_run_names_keep_full_keys_and_stay_short():
    assert run_name({"model.vocab_size": 8}) == "model.vocab_size=8"
    assert run_name({"model.vocab_size": 8}) != run_name({"data.vocab_size": 8})
    assert run_name({}) == "base"
    # characters a path should not hold are replaced, and a hash keeps such names apart
    slash, under = run_name({"data.corpus": "a/b"}), run_name({"data.corpus": "a_b"})
    assert "/" not in slash and slash != under and slash.startswith("data.corpus=a_b-")
    long = {f"model.layer_{i}.width": 1000 + i for i in range(20)}
    name = run_name(long)
    assert len(name) <= MAX_NAME_LEN and name.startswith("model.layer_0.width=1000,")
    assert name != run_name({**long, "model.layer_19.width": 0})


def _write_sweep(tmp_path, runs) -> str:
    path = tmp_path / "sweep.py"
    path.write_text(f"def get_sweep():\n    return {runs!r}\n")
    return str(path)


class FakeTrain:
    """A train_fn that writes what every loop writes (config.json first, summary.json last)."""

    def __init__(self, summary, steps_per_epoch=7, curve=((0, 4.0),)):
        self.summary, self.steps_per_epoch, self.curve, self.calls = summary, steps_per_epoch, curve, []

    def __call__(self, config, workdir):
        self.calls.append(workdir)
        os.makedirs(workdir, exist_ok=True)
        config = ml_collections.ConfigDict(config.to_dict())
        if config.train.epochs > 0:  # what Experiment derives at run time
            config.train.steps = config.train.epochs * self.steps_per_epoch
        save_config(config, workdir)
        with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps({"step": s, "eval/loss": v}) + "\n" for s, v in self.curve)
        summary = {"step": config.train.steps, **self.summary} if config.train.epochs else self.summary
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f)
        return summary


def _config():
    return load_config("gpt_shakespeare", "tiny")


def test_finished_epoch_run_is_skipped_and_changed_one_reruns(tmp_path):
    runs = [{"train.epochs": 2, "model.vocab_size": 80}, {"train.epochs": 2, "data.vocab_size": 80}]
    fake = FakeTrain({"train/loss": 1.5, "eval/loss": 1.7, "test/loss": 1.8, "test/perplexity": 6.0,
                      "params": 1234, "ngrams": {"2": 10}, "corpus": "x"})
    out = tmp_path / "sweep"
    rows = run_sweep(_config(), _write_sweep(tmp_path, runs), str(out), fake)
    assert len(set(fake.calls)) == 2  # model.vocab_size and data.vocab_size: two workdirs
    assert rows[0]["step"] == 14 and rows[0]["test/perplexity"] == 6.0 and rows[0]["params"] == 1234
    assert "ngrams" not in rows[0] and "corpus" not in rows[0]  # only numeric scalars
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["run", "train.epochs", "model.vocab_size", "data.vocab_size"]
    assert {"test/loss", "test/perplexity", "train/loss", "eval/loss", "params"} <= set(header)
    assert not (out / "results.png").exists()  # one eval/loss point per run is no curve
    run_dir = out / rows[0]["run"]
    assert unfinished_reason(apply_overrides(_config(), runs[0]), str(run_dir)) is None
    run_sweep(_config(), _write_sweep(tmp_path, runs), str(out), fake)
    assert len(fake.calls) == 2  # both finished: nothing trained again

    # the same workdir, but its config.json was made with another value of an override
    stored = json.loads((run_dir / "config.json").read_text())
    stored["model"]["vocab_size"] = 99
    (run_dir / "config.json").write_text(json.dumps(stored))
    os.utime(run_dir / "summary.json")
    run_sweep(_config(), _write_sweep(tmp_path, runs), str(out), fake)
    assert fake.calls[2:] == [str(run_dir)]

    # the base config changed under the sweep: every run is another run now
    base = _config()
    base.optimizer.lr = 0.5
    run_sweep(base, _write_sweep(tmp_path, runs), str(out), fake)
    assert len(fake.calls) == 5


def test_rerun_that_died_after_rewriting_its_config_is_unfinished(tmp_path):
    fake = FakeTrain({"eval/loss": 2.0})
    cfg = apply_overrides(_config(), {"train.steps": 5})
    fake(cfg, str(tmp_path))
    assert unfinished_reason(cfg, str(tmp_path)) is None
    longer = apply_overrides(_config(), {"train.steps": 9})
    time.sleep(0.01)
    save_config(longer, str(tmp_path))  # what a longer rerun writes before it is killed
    assert "rewritten" in unfinished_reason(longer, str(tmp_path))


def test_a_path_spelt_another_way_is_the_same_run(tmp_path, monkeypatch):
    """init_from given relative, absolute or through a symlink names one directory: the same
    run; another directory, or one that does not exist, is another run."""
    (tmp_path / "pre").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "pre")
    monkeypatch.chdir(tmp_path)
    fake = FakeTrain({"eval/loss": 2.0})
    cfg = apply_overrides(_config(), {"train.steps": 5, "init_from": "pre"})
    fake(cfg, str(tmp_path / "run"))
    for same in (str(tmp_path / "pre"), "link", "./pre/"):
        assert unfinished_reason(apply_overrides(_config(), {"train.steps": 5, "init_from": same}),
                                 str(tmp_path / "run")) is None
    for other in ("other", "missing"):
        reason = unfinished_reason(apply_overrides(_config(), {"train.steps": 5, "init_from": other}),
                                   str(tmp_path / "run"))
        assert reason == f"config.json has init_from='pre', this sweep wants {other!r}"


def test_custom_loop_sweep_tabulates_without_a_plot(tmp_path, capsys):
    """An n-gram-like run: no step, one scored row at step 0, test/* in its summary."""
    fake = FakeTrain({"eval/perplexity": 150.0, "test/perplexity": 141.2, "train/tokens": 10})
    out = tmp_path / "sweep"
    rows = run_sweep(_config(), _write_sweep(tmp_path, [{"seed": 1}, {"seed": 2}]), str(out), fake)
    assert [r["test/perplexity"] for r in rows] == [141.2, 141.2]
    assert "not written" in capsys.readouterr().out
    run_sweep(_config(), _write_sweep(tmp_path, [{"seed": 1}, {"seed": 2}]), str(out), fake)
    assert len(fake.calls) == 2  # finished without a step count: still skipped
    md = (out / "results.md").read_text()
    assert "test/perplexity" in md and "141.2" in md


def test_real_epoch_run_is_skipped_the_second_time(tmp_path, monkeypatch):
    """trainer.train on a 10,000-character corpus: one epoch is a few dozen tiny steps."""
    text = (require_real_data() / "tinyshakespeare" / "input.txt").read_text()[:10_000]
    (tmp_path / "data" / "tinyshakespeare").mkdir(parents=True)
    (tmp_path / "data" / "tinyshakespeare" / "input.txt").write_text(text)
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    cfg = _config()
    cfg.train.update(progress_bar=False, eval_every=1000, checkpoint_every=1000)
    cfg.data.test_split = "valid"
    runs = [{"train.epochs": 1, "optimizer.lr": 1e-3}]
    calls = []

    def counted_train(config, workdir):
        calls.append(workdir)
        return trainer.train(config, workdir)

    out = tmp_path / "sweep"
    rows = run_sweep(cfg, _write_sweep(tmp_path, runs), str(out), counted_train)
    assert rows[0]["step"] > 1 and np.isfinite(rows[0]["test/loss"]) and "train/loss" in rows[0]
    rows2 = run_sweep(cfg, _write_sweep(tmp_path, runs), str(out), counted_train)
    assert len(calls) == 1 and rows2 == rows


def opt_cfg(**kw):
    base = dict(lr=1.0, min_lr=0.1, warmup_steps=10, decay_steps=0, schedule="cosine")
    return ml_collections.ConfigDict({**base, **kw})


def test_schedules():
    cos = make_schedule(opt_cfg(), 110)
    assert float(cos(0)) == 0.0 and float(cos(5)) == pytest.approx(0.5)
    assert float(cos(10)) == pytest.approx(1.0) and float(cos(110)) == pytest.approx(0.1)
    lin = make_schedule(opt_cfg(schedule="linear"), 110)
    assert float(lin(60)) == pytest.approx(0.55)
    inv = make_schedule(opt_cfg(schedule="inverse_sqrt"), 110)
    assert float(inv(10 + 30)) == pytest.approx(1.0 / 2.0)  # lr * sqrt(10 / 40)
    with pytest.raises(ValueError, match="optimizer.schedule"):
        make_schedule(opt_cfg(schedule="cosin"), 10)


def test_warmup_fraction_is_a_share_of_the_total_steps(tmp_path):
    cfg = opt_cfg(warmup_steps=0, warmup_fraction=0.1, schedule="linear")
    assert warmup_steps(cfg, 200) == 20 and warmup_steps(cfg, 26) == 3  # round(2.6)
    lin = make_schedule(cfg, 200)
    assert float(lin(10)) == pytest.approx(0.5) and float(lin(20)) == pytest.approx(1.0)
    assert float(lin(200)) == pytest.approx(0.1)
    assert warmup_steps(opt_cfg(warmup_fraction=0.0), 200) == 10  # off: warmup_steps
    with pytest.raises(ValueError, match=r"^config.optimizer.warmup_steps=10 and "
                                         r"config.optimizer.warmup_fraction=0.1 are both set"):
        make_schedule(opt_cfg(warmup_fraction=0.1), 200)
    # an epoch-based run: the share of train.steps as resolved from the epochs and the data
    from tests.tasks.test_glue import tiny as glue_tiny
    c = glue_tiny(tmp_path, n_train=64, n_dev=16)
    c.optimizer.update(warmup_steps=0, warmup_fraction=0.25, schedule="linear")
    c.train.update(epochs=2, batch_size=16)
    exp = Experiment(c, str(tmp_path / "run"))
    exp.checkpointer.close()
    assert exp.config.train.steps == 8  # 2 epochs of 64 / 16
    lr = c.optimizer.lr
    assert float(exp.schedule(1)) == pytest.approx(lr / 2) and float(exp.schedule(2)) == pytest.approx(lr)


def test_weight_decay_mask():
    params = {"attn": {"qkv": np.zeros((4, 3, 2, 2)), "qkv_bias": np.zeros((3, 2, 2))},
              "ln1": {"scale": np.zeros(4), "bias": np.zeros(4)}, "embed": np.zeros((10, 4))}
    assert decay_mask(params) == {"attn": {"qkv": True, "qkv_bias": False},
                                  "ln1": {"scale": False, "bias": False}, "embed": True}


def test_gradient_accumulation_matches_one_big_batch(tiny_config, tmp_path):
    """k=4 accumulated micro-batches of 2 take the same steps as one batch of 8.

    SGD at a constant lr (no warm-up, no clipping), because its update is linear in the
    gradient: Adam divides the gradient's scale out and clipping caps it, so with either a
    gradient divided by the wrong count would leave the parameters nearly unchanged.
    """
    steps, lr = 4, 0.5
    c = tiny_config
    c.optimizer.update(name="sgd", momentum=0.9, lr=lr, warmup_steps=0, schedule="constant",
                       grad_clip=0.0)

    def train_steps(accum):
        exp = Experiment(c, str(tmp_path / "run"))
        step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh,
                               grad_accum=accum)
        state, it = exp.spec.init(), iter(exp.task.train_batches(8, 0))
        init = jax.device_get(state["params"])
        rows = []
        for _ in range(steps):
            state, m = step(state, exp.put_batch(next(it)))
            rows.append({k: float(m[k]) for k in ("loss", "grad_norm", "lr")})
        return init, jax.device_get(state["params"]), rows

    init, p1, m1 = train_steps(1)
    _, p4, m4 = train_steps(4)
    assert [r["lr"] for r in m1] == [lr] * steps
    moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(p1),
                                                            jax.tree.leaves(init)))
    assert moved > 1e-2  # the compared steps really change the parameters
    # Measured: the two agree to ~1e-7 in loss, grad norm and parameters (which move by ~0.4).
    # Dividing the summed gradient by 3 instead of 4 makes the grad norm 33% larger and puts
    # the parameters 0.15 away; keeping only the last micro-batch's gradient (times 4) is 50%
    # off in grad norm and 0.18 in parameters.
    for i, (a, b) in enumerate(zip(m1, m4)):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), i
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5), i
    paths = [k for k, _ in jax.tree_util.tree_flatten_with_path(p1)[0]]
    for path, a, b in zip(paths, jax.tree.leaves(p1), jax.tree.leaves(p4)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-5,
                                   err_msg=jax.tree_util.keystr(path))
