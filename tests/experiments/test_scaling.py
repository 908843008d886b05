"""experiments/scaling: the power-law fit, the parameter count it fits, and the sweep command
followed by fit.py on two tiny sizes (the real sweep, 0.1M to 10M parameters, is for an idle
machine: its README)."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import ml_collections
import pytest
from flax import nnx

from llm_jax.models import build_model
from tests.conftest import REPO, load_config

SCALING = REPO / "experiments" / "scaling"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"scaling_{name}", SCALING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fit = _module("fit")
sweep = _module("sweep")


def test_fit_recovers_an_exact_power_law():
    alpha, n_c = 0.076, 8.8e13
    n = [1e5, 3e5, 1e6, 3e6, 1e7]
    result = fit.fit_power_law(n, [(n_c / x) ** alpha for x in n])
    assert result["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert result["x_c"] == pytest.approx(n_c, rel=1e-6)
    assert result["r2"] == pytest.approx(1.0) and result["points"] == 5
    assert result["log_a"] == pytest.approx(alpha * math.log(n_c))


def test_fit_of_too_few_points_is_none():
    assert fit.fit_power_law([1e5], [2.0])["alpha"] is None
    assert fit.fit_power_law([1e5, 1e5], [2.0, 1.9])["alpha"] is None


def test_frontier_keeps_points_no_cheaper_point_beats():
    rows = [{"curve": [{"C": 1, "eval_loss": 3.0}, {"C": 4, "eval_loss": 2.0}]},
            {"curve": [{"C": 2, "eval_loss": 3.5}, {"C": 8, "eval_loss": 1.5}, {"C": 3, "eval_loss": 2.5}]}]
    assert fit.compute_frontier(rows) == [(1, 3.0), (3, 2.5), (4, 2.0), (8, 1.5)]


@pytest.mark.parametrize("overrides", [
    {},  # the sweep's base: GPT-2 block, no biases, tied embeddings
    {"use_bias": True, "tie_embeddings": False, "num_heads": 4, "head_dim": 8, "mlp_dim": 40},
    {"variant": "gpt1", "use_bias": True},  # no final norm
])
def test_non_embedding_count_matches_a_built_model(overrides):
    cfg = load_config("gpt_shakespeare", "cpu").model
    cfg.update({"num_layers": 2, "num_heads": 2, "embed_dim": 24, "max_len": 16, "vocab_size": 37,
                **overrides})
    model = build_model(cfg, rngs=nnx.Rngs(params=0))
    params = nnx.state(model, nnx.Param)
    leaves = jax.tree_util.tree_leaves_with_path(params)
    embedding_paths = ("embed", "positions", "head")
    total = sum(x.size for _, x in leaves)
    emb = sum(x.size for path, x in leaves if str(getattr(path[0], "key", path[0])) in embedding_paths)
    model_dict = cfg.to_dict()
    assert emb > 0 and fit.non_embedding_params(model_dict) == total - emb
    assert fit.embedding_params(model_dict) == emb


def test_sweep_settings():
    runs = sweep.get_sweep()
    n = [sweep.approx_params(r["model.num_layers"], r["model.embed_dim"]) for r in runs]
    assert 0.08e6 < n[0] < 0.15e6 and 8e6 < n[-1] < 12e6 and n == sorted(n)
    tokens = {r["train.steps"] * r["train.batch_size"] * r["data.seq_len"] for r in runs}
    assert tokens == {sweep.TOKENS}
    lrs = [r["optimizer.lr"] for r in runs]
    assert lrs == sorted(lrs, reverse=True)  # eq. D.1: smaller for larger models
    assert lrs[0] == pytest.approx(0.003239 - 0.0001395 * math.log(n[0]), rel=1e-3)
    base = load_config("gpt_shakespeare", "cpu")
    from llm_jax.training.sweeps import apply_overrides, load_sweep
    assert load_sweep(str(SCALING / "sweep.py")) == runs  # names are distinct
    for r in runs:
        cfg = apply_overrides(base, r)
        assert cfg.model.embed_dim % cfg.model.num_heads == 0
    with pytest.raises(ValueError, match="not a multiple"):
        sweep.scaling_sweep(tokens=1000)


def _fit(sweep_dir, out):
    return subprocess.run([sys.executable, str(SCALING / "fit.py"), f"--sweep_dir={sweep_dir}",
                           f"--out={out}"], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_no_finished_runs_is_one_line_naming_the_directory(tmp_path):
    proc = _fit(tmp_path, tmp_path / "out")
    message = (f"--sweep_dir={tmp_path}: no finished runs (a run is a directory holding "
               "config.json and a summary.json of its last step)")
    assert proc.returncode == 1 and proc.stderr.strip() == message
    (tmp_path / "run1").mkdir()  # started, not finished
    (tmp_path / "run1" / "config.json").write_text(json.dumps({"train": {"steps": 8}}))
    proc = _fit(tmp_path, tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.strip() == message + "; left out run1: no summary.json (not finished)"
    assert not (tmp_path / "out").exists()


def test_sweep_then_fit_end_to_end(tmp_path, real_data_dir):
    """The real `sweep` command on two tiny sizes (8 steps each), then fit.py on its workdir."""
    text = (real_data_dir / "tinyshakespeare" / "input.txt").read_text()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text(text[:20000])
    (corpus / "valid.txt").write_text(text[-2000:])
    sweep_file = tmp_path / "sweep.py"
    sweep_file.write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('s', {str(SCALING / 'sweep.py')!r})\n"
        "s = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(s)\n\n\n"
        "def get_sweep():\n"
        f"    return s.scaling_sweep(((1, 16), (2, 32)), tokens=4 * 16 * 8, seq_len=16, "
        f"batch_size=4, head_dim=8, evals=4, corpus={str(corpus)!r})\n")
    workdir, out = tmp_path / "runs", tmp_path / "fit"
    env = {**os.environ, "LLM_JAX_DATA_DIR": str(real_data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "llm_jax", "sweep", "--config=configs/gpt_shakespeare.py:cpu",
         f"--sweep={sweep_file}", f"--workdir={workdir}", "--config.train.progress_bar=False",
         "--config.train.eval_batches=2", "--config.train.log_every=2"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _fit(workdir, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "scaling.json").read_text())
    rows = report["rows"]
    assert [(r["layers"], r["width"], r["heads"]) for r in rows] == [(1, 16, 2), (2, 32, 4)]
    for r in rows:
        run = workdir / r["run"]
        summary = json.loads((run / "summary.json").read_text())
        config = ml_collections.ConfigDict(json.loads((run / "config.json").read_text()))
        assert r["eval_loss"] == summary["eval/loss"] and r["D"] == 8 * 4 * 16
        assert r["N"] + r["embedding_params"] == summary["params"]
        assert r["N"] == fit.non_embedding_params(config.model.to_dict())
        assert r["C"] == pytest.approx(6 * r["N"] * r["D"])
        assert r["C_pf_days"] == pytest.approx(r["C"] / 8.64e19)
        assert [p["step"] for p in r["curve"]] == [2, 4, 6]  # periodic evals, not the final one
        assert r["wall_time_sec"] > 0
    f = report["fit"]
    assert math.isfinite(f["alpha_N"]) and math.isfinite(f["N_c"]) and f["runs"] == 2
    assert f["r2_N"] == pytest.approx(1.0)  # a line through two points
    assert f["frontier"] and (f["alpha_C"] is None or math.isfinite(f["alpha_C"]))
    assert report["reference"]["alpha_N"] == 0.076
    table = (out / "scaling.md").read_text()
    assert "| 1 | 16 | 2 |" in table and "| 2 | 32 | 4 |" in table and "alpha_N =" in table
    assert (out / "scaling.png").stat().st_size > 0
    assert (workdir / "results.csv").exists()  # the sweep's own table
