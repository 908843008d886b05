"""Training on 8 CPU devices, data-parallel or sharded over (data, fsdp, tensor), equals 1 device.

The steps run at a constant, nonzero learning rate (no warm-up), so every compared step changes
the parameters: a wrong gradient reduction or a misplaced optimizer state shows up in the
per-step losses, the gradient norms and the final parameters, not only in the first loss.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import REPO

STEPS = 6
LR = 1e-3
MESHES = {"data8": (8, 1, 1), "mixed222": (2, 2, 2)}  # pure data-parallel; data x fsdp x tensor

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    import numpy as np
    from tests.conftest import load_config
    from llm_jax.training.experiment import Experiment
    from llm_jax.training.optimizer import path_str
    from llm_jax.training.steps import make_train_step

    out_dir, steps, lr, meshes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])

    def flat(tree):
        return {path_str(p): np.asarray(jax.device_get(x))
                for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}

    def run(name, devices, mesh):
        c = load_config("gpt_shakespeare", "tiny")
        c.model.dropout_rate = 0.1  # dropout masks must not depend on the layout either
        c.optimizer.update(lr=lr, warmup_steps=0, schedule="constant")
        c.mesh.update(data=mesh[0], fsdp=mesh[1], tensor=mesh[2])
        exp = Experiment(c, f"{out_dir}/{name}", devices=devices)
        step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh)
        state, it = exp.spec.init(), iter(exp.task.train_batches(c.train.batch_size, c.seed))
        init = flat(state["params"])
        rows = []
        for _ in range(steps):
            state, m = step(state, exp.put_batch(next(it)))
            rows.append({k: float(m[k]) for k in ("loss", "grad_norm", "lr")})
        np.savez(f"{out_dir}/{name}_params.npz", **flat(state["params"]))
        np.savez(f"{out_dir}/{name}_init.npz", **init)
        np.savez(f"{out_dir}/{name}_opt.npz", **flat(state["opt_state"]))
        fc = state["params"]["stack"]["blocks"]["mlp"]["fc"]
        mu = state["opt_state"][1][0].mu["stack"]["blocks"]["mlp"]["fc"]
        return {"metrics": rows, "fc_shards": len(fc.addressable_shards),
                "fc_shard_shape": list(fc.addressable_shards[0].data.shape),
                "mu_shard_shape": list(mu.addressable_shards[0].data.shape)}

    result = {"devices": len(jax.devices()), "one": run("one", jax.devices()[:1], (1, 1, 1))}
    for name, mesh in meshes.items():
        result[name] = run(name, jax.devices(), mesh)
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tests.conftest import require_real_data

    data = require_real_data()
    out = tmp_path_factory.mktemp("sharding")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "PYTHONPATH": str(REPO), "LLM_JAX_DATA_DIR": str(data)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(STEPS), str(LR),
                           json.dumps(MESHES)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    return out, result


def _load(out, name, what):
    with np.load(out / f"{name}_{what}.npz") as f:
        return dict(f)


def test_reference_run_trains(runs):
    """The premise of the comparisons below: every step runs at LR and moves the parameters."""
    out, result = runs
    rows = result["one"]["metrics"]
    assert [r["lr"] for r in rows] == pytest.approx([LR] * STEPS, rel=1e-6)
    init, final = _load(out, "one", "init"), _load(out, "one", "params")
    moved = max(float(np.abs(final[k] - init[k]).max()) for k in init)
    # Adam moves a parameter by about LR per step; 1e-5 tolerances below are ~1/500 of this.
    assert moved > 0.5 * LR * STEPS
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.05


@pytest.mark.parametrize("name", list(MESHES))
def test_sharded_training_matches_one_device(runs, name):
    out, result = runs
    one, many = result["one"], result[name]
    # Measured: both layouts agree with 1 device to ~1e-6 in loss and grad norm, 5e-7 in
    # parameters and 1e-6 (of each leaf's largest) in Adam's moments. Gradients summed instead
    # of averaged over the batch shards: 4-8x the grad norm, parameters 6e-4 off even through
    # clipping and Adam; the gradient of one shard's examples only: 2x the grad norm, 1e-2 off.
    for step, (a, b) in enumerate(zip(one["metrics"], many["metrics"])):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-5), step
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5, abs=1e-6), step
    p1, p8 = _load(out, "one", "params"), _load(out, name, "params")
    assert sorted(p1) == sorted(p8)
    for k in p1:
        np.testing.assert_allclose(p8[k], p1[k], rtol=0, atol=1e-5, err_msg=k)
    o1, o8 = _load(out, "one", "opt"), _load(out, name, "opt")
    assert sorted(o1) == sorted(o8)
    for k in o1:  # Adam's moments (and count): measured equal to <1e-6 of each leaf's largest
        scale = float(np.abs(o1[k]).max())
        np.testing.assert_allclose(o8[k], o1[k], rtol=0, atol=1e-5 * scale, err_msg=k)


def test_layouts_are_really_sharded(runs):
    _, result = runs
    assert result["one"]["fc_shards"] == 1
    # stack/blocks/mlp/fc is [layers=2, embed=32, mlp=128]: embed over fsdp, mlp over tensor
    assert result["one"]["fc_shard_shape"] == [2, 32, 128]
    assert result["data8"]["fc_shard_shape"] == [2, 32, 128]  # replicated
    assert result["mixed222"]["fc_shard_shape"] == [2, 16, 64]
    for name in MESHES:  # Adam's moments live where their parameter does
        assert result[name]["fc_shards"] == 8, name
        assert result[name]["mu_shard_shape"] == result[name]["fc_shard_shape"], name
