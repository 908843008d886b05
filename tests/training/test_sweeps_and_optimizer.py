import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from llm_jax.training.commands import sweep
from llm_jax.training.experiment import Experiment
from llm_jax.training.optimizer import decay_mask, make_schedule
from llm_jax.training.steps import make_train_step
from llm_jax.training.sweeps import apply_overrides, grid, random_search, zip_


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
    assert [r["run"] for r in rows] == ["lr=0.001,steps=6,eval_every=3",
                                        "lr=0.01,steps=6,eval_every=3"]
    assert all(np.isfinite(r["eval/loss"]) for r in rows)
    for name in ("results.csv", "results.md", "results.png"):
        assert (out / name).stat().st_size > 0
    assert "eval/loss" in (out / "results.md").read_text()
    mtime = os.path.getmtime(out / rows[0]["run"] / "summary.json")
    sweep(tiny_config, str(sweep_file), str(out))  # finished runs are not trained again
    assert os.path.getmtime(out / rows[0]["run"] / "summary.json") == mtime


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


def test_weight_decay_mask():
    params = {"attn": {"qkv": 1, "qkv_bias": 2}, "ln1": {"scale": 3, "bias": 4}, "embed": 5}
    assert decay_mask(params) == {"attn": {"qkv": True, "qkv_bias": False},
                                  "ln1": {"scale": False, "bias": False}, "embed": True}


def test_gradient_accumulation_matches_one_big_batch(tiny_config, tmp_path):
    def one_step(accum):
        exp = Experiment(tiny_config, str(tmp_path / "run"))
        step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh,
                               grad_accum=accum)
        batch = next(iter(exp.task.train_batches(8, 0)))
        state, metrics = step(exp.spec.init(), exp.put_batch(batch))
        return state["params"], metrics

    p1, m1 = one_step(1)
    p2, m2 = one_step(4)
    assert float(m2["loss"]) == pytest.approx(float(m1["loss"]), rel=1e-5)
    assert float(m2["grad_norm"]) == pytest.approx(float(m1["grad_norm"]), rel=1e-4)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert jnp.all(jnp.isfinite(jax.tree.leaves(p2)[0]))
