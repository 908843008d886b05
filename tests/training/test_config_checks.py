"""check_config rejects values that would fail late or silently, naming the field and the value."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from llm_jax.training.config_schema import check_config, default_config
from tests.conftest import REPO


def _config(**overrides):
    c = default_config("gpt", "causal_lm")
    for path, value in overrides.items():
        section, _, field = path.rpartition(".")
        (c[section] if section else c)[field] = value
    return c


def test_the_default_config_passes():
    check_config(_config())


@pytest.mark.parametrize("field, value, message", [
    ("optimizer.lr", 0.0, "config.optimizer.lr=0.0 must be > 0"),
    ("optimizer.lr", -1e-3, "config.optimizer.lr=-0.001 must be > 0"),
    ("optimizer.lr", float("nan"), "config.optimizer.lr=nan must be > 0"),
    ("seed", -1, "config.seed=-1 must be >= 0"),
    ("train.keep_checkpoints", 0, "config.train.keep_checkpoints=0 must be >= 1"),
    ("train.best_mode", "maximum", "config.train.best_mode='maximum' must be 'max' or 'min'"),
    ("optimizer.warmup_steps", -5, "config.optimizer.warmup_steps=-5 must be >= 0"),
    ("optimizer.grad_clip", -1.0, "config.optimizer.grad_clip=-1.0 must be >= 0"),
    ("optimizer.weight_decay", -0.1, "config.optimizer.weight_decay=-0.1 must be >= 0"),
    ("data.seq_len", 0, "config.data.seq_len=0 must be >= 1"),
    ("mesh.data", 0, "config.mesh.data=0 must be >= 1, or -1"),
    ("optimizer.warmup_fraction", 0.1, "config.optimizer.warmup_steps=100 and "
     "config.optimizer.warmup_fraction=0.1 are both set: give one (the other 0)"),
    ("optimizer.warmup_fraction", 1.5, "config.optimizer.warmup_fraction=1.5 must be in [0, 1]"),
    ("train.early_stop_patience", -1, "config.train.early_stop_patience=-1 must be >= 0"),
    ("train.early_stop_patience", 3, "config.train.early_stop_patience=3 needs "
     "config.train.best_metric"),
    ("init_from_model", True, "config.init_from_model=True without config.init_from"),
])
def test_bad_value_names_field_and_value(field, value, message):
    with pytest.raises(ValueError) as e:
        check_config(_config(**{field: value}))
    assert message in str(e.value)


def test_edge_values_pass():
    check_config(_config(**{"optimizer.warmup_steps": 0, "optimizer.grad_clip": 0.0,
                            "optimizer.weight_decay": 0.0, "seed": 0, "train.keep_checkpoints": 1,
                            "train.best_mode": "min", "data.seq_len": 1}))


def test_every_error_is_listed_together():
    with pytest.raises(ValueError) as e:
        check_config(_config(**{"optimizer.lr": 0.0, "seed": -3, "train.keep_checkpoints": 0}))
    lines = str(e.value).splitlines()
    assert lines[0] == "bad config:"
    assert [line.split("=")[0].strip() for line in lines[1:]] == [
        "config.train.keep_checkpoints", "config.seed", "config.optimizer.lr"]


def test_two_automatic_mesh_axes_are_named():
    with pytest.raises(ValueError, match=r"config.mesh: at most one of data/fsdp/tensor may be -1"):
        check_config(_config(**{"mesh.data": -1, "mesh.fsdp": -1}))


def test_ngram_configs_skip_the_device_check(monkeypatch):
    # Counting n-grams never touches a device: checking them must not start a JAX backend.
    import jax
    monkeypatch.setattr(jax, "device_count", lambda: pytest.fail("device_count was called"))
    c = default_config("ngram", "ngram_lm")
    c.train.batch_size = 7
    check_config(c)


# On 8 simulated CPU devices (as tests/training/test_sharding.py), in a subprocess because the
# device count is fixed when JAX starts.
EIGHT_DEVICES = textwrap.dedent("""
    import json
    import jax
    from llm_jax.training.config_schema import check_config, default_config

    def error(batch_size, **mesh):
        c = default_config("gpt", "causal_lm")
        c.train.batch_size = batch_size
        c.mesh.update(mesh)
        try:
            check_config(c)
        except ValueError as e:
            return str(e)
        return None

    print(json.dumps({"devices": jax.device_count(), "cases": [
        error(64),                                  # data=-1 -> 8
        error(12),                                  # 12 % 8
        error(12, data=2, fsdp=2, tensor=2),        # 12 % 4 == 0: tensor does not split batches
        error(6, data=2, fsdp=2, tensor=2),         # 6 % 4
        error(6, data=-1, fsdp=1, tensor=4),        # data -> 2: 6 % 2 == 0
        error(6, data=1, fsdp=-1, tensor=2),        # fsdp -> 4
        error(8, data=-1, fsdp=3, tensor=1),        # 8 devices not divisible by 3
    ]}))
""")


def test_batch_must_divide_the_data_parallel_size_on_eight_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    ok64, bad12, ok12, bad6, ok6, bad6_fsdp, bad_mesh = result["cases"]
    assert ok64 is None and ok12 is None and ok6 is None
    assert "config.train.batch_size=12 is not divisible by the data-parallel size " \
           "config.mesh.data*fsdp = 8*1 = 8" in bad12
    assert "config.mesh.data*fsdp = 2*2 = 4" in bad6
    assert "config.train.batch_size=6" in bad6_fsdp and "= 1*4 = 4" in bad6_fsdp
    assert "8 devices are not divisible by 3" in bad_mesh
