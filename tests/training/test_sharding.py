"""A training step on a 2x2x2 (data, fsdp, tensor) mesh of 8 CPU devices equals one device."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from tests.conftest import load_config
    from llm_jax.training.experiment import Experiment
    from llm_jax.training.steps import make_train_step

    def losses(devices, mesh, workdir):
        c = load_config("gpt_shakespeare", "tiny")
        c.model.dropout_rate = 0.1  # dropout masks must not depend on the layout either
        c.mesh.update(data=mesh[0], fsdp=mesh[1], tensor=mesh[2])
        exp = Experiment(c, workdir, devices=devices)
        step = make_train_step(exp.task, exp.spec, exp.optimizer, exp.schedule, exp.mesh)
        state, it = exp.spec.init(), iter(exp.task.train_batches(c.train.batch_size, c.seed))
        out = []
        for _ in range(2):
            state, m = step(state, exp.put_batch(next(it)))
            out.append(float(m["loss"]))
        fc = state["params"]["stack"]["blocks"]["mlp"]["fc"]
        return out, str(fc.sharding.spec), len(fc.addressable_shards)

    one = losses(jax.devices()[:1], (1, 1, 1), sys.argv[1])
    eight = losses(jax.devices(), (2, 2, 2), sys.argv[1])
    print(json.dumps({"devices": len(jax.devices()), "one": one, "eight": eight}))
""")


def test_eight_devices_match_one(real_data_dir, tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    (loss1, _, _), (loss8, spec8, shards8) = result["one"], result["eight"]
    assert loss8 == pytest.approx(loss1, rel=1e-5, abs=1e-5)
    assert "fsdp" in spec8 and "tensor" in spec8 and shards8 == 8
