"""`average`: the mean of a run's last N real Orbax checkpoints, as a workdir eval/load read."""

import json
import os
import shutil
import subprocess
import sys

import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
import pytest

import llm_jax
from llm_jax.training.average import average_checkpoints, default_out, mean_params
from llm_jax.training.checkpoints import CheckpointError, CheckpointMismatch
from llm_jax.training.commands import train
from tests.conftest import REPO

STEPS, EVERY, KEEP, LAST = 8, 2, 4, 3  # checkpoints 2, 4, 6, 8; the mean of 4, 6 and 8


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "llm_jax", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=300)


def _error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def _snapshot(root) -> dict:
    """{relative path: (size, mtime_ns)} of every file and directory under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            out[os.path.relpath(path, root)] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return out


def _state(workdir, step):
    """A checkpoint's train state, read by Orbax alone (not by the code under test)."""
    with ocp.StandardCheckpointer() as reader:
        return reader.restore(os.path.join(workdir, "checkpoints", str(step), "state"))


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flat(v, f"{prefix}{k}/")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _flat(v, f"{prefix}{i}/")
    elif tree is not None:
        yield prefix.rstrip("/"), np.asarray(tree)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run with four checkpoints, and `average --last=3` of it through the CLI."""
    from tests.conftest import load_config, require_real_data
    data = require_real_data()
    before = os.environ.get("LLM_JAX_DATA_DIR")
    os.environ["LLM_JAX_DATA_DIR"] = str(data)
    c = load_config("gpt_shakespeare", "tiny")
    c.train.update(progress_bar=False, steps=STEPS, checkpoint_every=EVERY, keep_checkpoints=KEEP,
                   eval_every=STEPS, eval_batches=1)
    root = tmp_path_factory.mktemp("avg")
    workdir, out = str(root / "run"), str(root / "averaged")
    train(c, workdir)
    snapshot = _snapshot(workdir)
    proc = _cli("average", f"--workdir={workdir}", f"--last={LAST}", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    yield workdir, out, snapshot, json.loads(proc.stdout)
    if before is None:
        os.environ.pop("LLM_JAX_DATA_DIR", None)
    else:
        os.environ["LLM_JAX_DATA_DIR"] = before


def test_params_are_the_mean_of_the_last_n_checkpoints(run):
    workdir, out, _, printed = run
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6", "8"]
    assert os.listdir(os.path.join(out, "checkpoints")) == ["8"]
    got = _state(out, 8)
    sources = [dict(_flat(_state(workdir, s)["params"])) for s in (4, 6, 8)]
    flat = dict(_flat(got["params"]))
    assert flat.keys() == sources[0].keys() and len(flat) > 5
    for key, value in flat.items():
        want = np.mean([s[key].astype(np.float64) for s in sources], axis=0)
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-7, err_msg=key)
    # the rest of the state is the newest checkpoint's, as a resume would expect it
    latest = _state(workdir, 8)
    rest = {k: dict(_flat(v)) for k, v in latest.items() if k != "params"}
    for k, leaves in rest.items():
        assert dict(_flat(got[k])).keys() == leaves.keys()
        for key, value in leaves.items():
            np.testing.assert_array_equal(dict(_flat(got[k]))[key], value, err_msg=f"{k}/{key}")
    with open(os.path.join(out, "averaged.json")) as f:
        record = json.load(f)
    assert record["source"] == os.path.abspath(workdir) and record["steps"] == [4, 6, 8]
    assert printed["out"] == os.path.abspath(out) and printed["steps"] == [4, 6, 8]


def test_out_is_a_workdir_that_eval_and_load_use(run):
    workdir, out, _, _ = run
    assert {"config.json", "data_files.json", "tokenizer"} <= set(os.listdir(out))
    assert not {"metrics.jsonl", "summary.json", "tensorboard", ".lock"} & set(os.listdir(out))
    proc = _cli("eval", f"--workdir={out}")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["step"] == 8 and np.isfinite(metrics["eval/loss"])
    model, tokenizer, config = llm_jax.load(out)
    assert config.model.vocab_size == 65 and tokenizer.decode(tokenizer.encode("ROMEO")) == "ROMEO"
    table = np.asarray(model.embed.table[...])
    np.testing.assert_array_equal(table, _state(out, 8)["params"]["embed"]["table"])


def test_one_checkpoint_to_the_default_out_beside_the_run(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run[0], copy)
    result = average_checkpoints(str(copy), last=1)
    assert result["out"] == default_out(str(copy), 1) == str(tmp_path / "run_avg1")
    for key, value in _flat(_state(result["out"], 8)["params"]):
        np.testing.assert_array_equal(value, dict(_flat(_state(str(copy), 8)["params"]))[key])


def test_bfloat16_params_are_averaged_in_float32():
    rng = np.random.default_rng(0)
    trees = [{"w": (1 + rng.normal(size=64) * 1e-2).astype(ml_dtypes.bfloat16), "n": np.int32(i)}
             for i in range(20)]
    got = mean_params((str(i), t) for i, t in enumerate(trees))
    want = np.mean([t["w"].astype(np.float32) for t in trees], axis=0).astype(ml_dtypes.bfloat16)
    assert got["w"].dtype == ml_dtypes.bfloat16 and got["n"] == 0  # non-floats: the first tree's
    np.testing.assert_array_equal(got["w"], want)
    with pytest.raises(CheckpointMismatch, match="b: its parameters have another layout"):
        mean_params([("a", {"w": np.zeros(3)}), ("b", {"w": np.zeros(4)})])


def test_bad_input_is_one_line_naming_the_flag(run, tmp_path):
    workdir, out, _, _ = run
    proc = _cli("average", f"--workdir={workdir}", "--last=0")
    assert proc.returncode == 2 and "--last=0" in _error_lines(proc)[0]
    with pytest.raises(ValueError, match="--last=0: must be >= 1"):
        average_checkpoints(workdir, last=0, out=str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"--last=5: .* holds 4 finished .*keep_checkpoints >= 5"):
        average_checkpoints(workdir, last=5, out=str(tmp_path / "b"))
    with pytest.raises(ValueError, match="--out=.*inside --workdir"):
        average_checkpoints(workdir, last=2, out=os.path.join(workdir, "avg"))
    ngram = tmp_path / "ngram"
    ngram.mkdir()
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    config["task"]["name"] = "ngram_lm"
    (ngram / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="--workdir=.*no gradient-trained parameter checkpoints"):
        average_checkpoints(str(ngram), last=1, out=str(tmp_path / "c"))
    assert not any((tmp_path / n).exists() for n in "abc")


def test_existing_out_is_never_overwritten(run):
    workdir, out, _, _ = run
    before = _snapshot(out)
    with pytest.raises(FileExistsError, match=f"^--out={out} already exists and is not empty"):
        average_checkpoints(workdir, last=2, out=out)
    assert _snapshot(out) == before


def test_damaged_checkpoint_is_named_and_nothing_written(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run[0], copy)
    for root, _, files in os.walk(copy / "checkpoints" / "6" / "state"):
        for name in files:
            (copy / root / name).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=f"checkpoint {copy}/checkpoints/6 is damaged"):
        average_checkpoints(str(copy), last=3, out=str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no out, no half-written temporary


def test_the_source_workdir_is_unchanged(run):
    workdir, _, snapshot, _ = run
    assert _snapshot(workdir) == snapshot
