"""The command line: one-line errors with exit status 2 (usage) or 1 (failure); the allocator."""

import json
import os
import subprocess
import sys

import pytest

from llm_jax import allocator
from tests.conftest import REPO, real_data_path, require_real_data


def _cli(*args, env=None, timeout=120):
    env = {**os.environ, "LLM_JAX_DATA_DIR": str(real_data_path()), **(env or {})}
    return subprocess.run([sys.executable, "-m", "llm_jax", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def bad_configs(tmp_path_factory):
    d = tmp_path_factory.mktemp("configs")
    (d / "syntax.py").write_text("def get_config(arg=None:\n    return None\n")
    (d / "no_get_config.py").write_text("CONFIG = {}\n")
    (d / "raises.py").write_text("def get_config(arg=None):\n    raise RuntimeError('boom')\n")
    return d


TINY = "--config=configs/gpt_shakespeare.py:tiny"


@pytest.mark.parametrize("args, expected", [
    ((TINY, "--config.train.stepz=5"),
     ["--config.train.stepz", "no field train.stepz", "did you mean config.train.steps?"]),
    ((TINY, "--config.trian.steps=5"), ["--config.trian.steps", "did you mean config.train?"]),
    ((TINY, "--config.train.steps=abc"), ["--config.train.steps=abc"]),
    (("--config=configs/no_such.py",), ["--config=configs/no_such.py", "not found"]),
    (("--config=configs/no_such.py", "--config.train.steps=3"), ["configs/no_such.py", "not found"]),
    (("--config=configs/gpt_shakespeare.py:bogus",), ["configs/gpt_shakespeare.py:bogus",
                                                      "unknown variant"]),
    (("--config={d}/syntax.py",), ["--config={d}/syntax.py", "syntax error", "line 1"]),
    (("--config={d}/no_get_config.py",), ["{d}/no_get_config.py", "no get_config"]),
    (("--config={d}/raises.py",), ["{d}/raises.py", "RuntimeError: boom"]),
    ((TINY, "--wokdir=x"), ["wokdir"]),
])
def test_bad_command_line_is_one_error_line_and_exit_2(args, expected, bad_configs, tmp_path):
    args = [a.format(d=bad_configs) for a in args]
    proc = _cli("train", f"--workdir={tmp_path / 'run'}", *args)
    line = _one_error_line(proc)
    for text in expected:
        assert text.format(d=bad_configs) in line, line
    assert proc.returncode == 2
    assert not (tmp_path / "run").exists()  # nothing ran


def test_missing_command_or_flag_is_a_usage_error(tmp_path):
    for args, text in [((), "expected a command"), (("train", TINY), "--workdir is required"),
                       (("train", f"--workdir={tmp_path}"), "--config is required")]:
        proc = _cli(*args)
        assert text in _one_error_line(proc) and proc.returncode == 2


def test_failure_while_running_is_one_line_and_exit_1(tmp_path):
    proc = _cli("eval", f"--workdir={tmp_path / 'nothing'}")
    assert "config.json" in _one_error_line(proc) and proc.returncode == 1


def test_traceback_only_with_verbosity(tmp_path):
    args = ("train", f"--workdir={tmp_path}", "--config=configs/gpt_shakespeare.py:bogus")
    quiet = _cli(*args, "--verbosity=0")
    assert "Traceback" not in quiet.stderr and quiet.returncode == 2
    loud = _cli(*args, "--verbosity=1")
    assert "Traceback" in loud.stderr and loud.returncode == 2
    assert loud.stderr.strip().splitlines()[-1].startswith("error: configs/gpt_shakespeare.py:bogus")


def test_bad_allocator_setting_is_named(tmp_path):
    proc = _cli("train", env={allocator.ENV_VAR: "jemalloc"})
    assert "LLM_JAX_MALLOC='jemalloc'" in _one_error_line(proc) and proc.returncode == 2


# ---------------------------------------------------------------- allocator


class FakeLibc:
    def __init__(self, accept=True):
        self.calls, self.accept = [], accept

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1 if self.accept else 0


@pytest.fixture
def fresh_allocator(monkeypatch):
    """A process in which tune_malloc has not run yet, and glibc is a recording fake."""
    monkeypatch.setattr(allocator, "_applied", None)
    for k in (allocator.ENV_VAR, "GLIBC_TUNABLES", allocator._REEXEC_MARK, *allocator.TUNED_ENV):
        monkeypatch.delenv(k, raising=False)
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    return libc


def test_tune_malloc_is_idempotent(fresh_allocator):
    assert allocator.tune_malloc() == "mallopt"
    assert fresh_allocator.calls == [(-8, 1), (-3, 1 << 30), (-1, 1 << 30)]
    assert allocator.tune_malloc() == "mallopt" and allocator.tune_malloc("env") == "mallopt"
    assert len(fresh_allocator.calls) == 3  # the first call's settings stay, unrepeated


def test_tune_malloc_does_nothing_when_opted_out(fresh_allocator, monkeypatch):
    monkeypatch.setenv(allocator.ENV_VAR, "default")
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("re-executed"))
    assert allocator.tune_malloc() == "default" and allocator.tune_malloc("mallopt") == "default"
    assert fresh_allocator.calls == []


def test_tune_malloc_keeps_the_users_settings_and_reports_refusals(fresh_allocator, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    fresh_allocator.accept = False
    assert allocator.tune_malloc() == "mallopt-partial"
    assert fresh_allocator.calls == [(-3, 1 << 30)]


def test_env_mode_reexecutes_once(fresh_allocator, monkeypatch):
    seen = {}

    def execve(path, argv, env):
        seen.update(path=path, argv=argv, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.x86_ibt=off")
    with pytest.raises(SystemExit):
        allocator.tune_malloc("env")
    assert seen["argv"] == [sys.executable, *sys.orig_argv[1:]]
    assert seen["env"]["GLIBC_TUNABLES"] == "glibc.cpu.x86_ibt=off:glibc.malloc.hugetlb=1"
    assert seen["env"]["MALLOC_ARENA_MAX"] == "1" and seen["env"][allocator._REEXEC_MARK] == "1"
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv(allocator._REEXEC_MARK, "1")  # the re-executed process
    assert allocator.tune_malloc("env") == "env"
    assert fresh_allocator.calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_real_glibc_takes_the_settings_and_the_reexec_works():
    code = ("import os; from llm_jax import allocator as a; "
            "print(a.tune_malloc(), a.tune_malloc(), os.environ.get('GLIBC_TUNABLES'))")
    env = {k: v for k, v in os.environ.items() if k != allocator.ENV_VAR}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[:2] == ["mallopt", "mallopt"]
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**env, allocator.ENV_VAR: "env"}, check=True).stdout.split()
    assert out == ["env", "env", "glibc.malloc.hugetlb=1"]


def test_training_does_not_depend_on_the_allocator(tmp_path):
    """Same losses, step for step, with and without the settings (the speed is the bench's).

    On the first 10,000 characters of Tiny Shakespeare, so the final eval is short; the two
    runs go side by side.
    """
    text = (require_real_data() / "tinyshakespeare" / "input.txt").read_text()[:10_000]
    (tmp_path / "data" / "tinyshakespeare").mkdir(parents=True)
    (tmp_path / "data" / "tinyshakespeare" / "input.txt").write_text(text)
    args = [TINY, "--config.train.steps=6", "--config.train.log_every=2",
            "--config.train.eval_every=3", "--config.train.progress_bar=False"]
    procs = {mode: subprocess.Popen(
        [sys.executable, "-m", "llm_jax", "train", f"--workdir={tmp_path / mode}", *args], cwd=REPO,
        env={**os.environ, "LLM_JAX_DATA_DIR": str(tmp_path / "data"), allocator.ENV_VAR: mode},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for mode in ("default", "mallopt")}
    logs = []
    for mode, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        rows = [json.loads(line) for line in (tmp_path / mode / "metrics.jsonl").read_text().splitlines()]
        logs.append([{k: v for k, v in r.items() if k != "train/tokens_per_sec"} for r in rows])
    assert logs[0] == logs[1] and any("eval/loss" in r for r in logs[0])
