"""Running what a study needs: finished runs are reused, interrupted ones resumed.

Each run has its own directory, RUNS_DIR/STUDY/RUN. A config run is finished when the sweeps'
check says its workdir holds a finished run of exactly this config; calling train() again on an
unfinished one resumes from its last checkpoint. A script run is finished when it exited 0 and
every declared output exists: the marker written after a clean exit records the command, so a
half-written output of a killed script, or the outputs of a since-edited command, do not count.
Rerunning a script is its own resume (compare.py keeps each finished worker's result).
"""

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
import traceback

from llm_jax.reproduce.registry import REPO, display_path, repo_path
from llm_jax.reproduce.study import ConfigRun
from llm_jax.training.guards import TrainingInterrupted
from llm_jax.training.sweeps import unfinished_reason

MARKER = "reproduce_run.json"
LOG = "log.txt"
DONE = ("ran", "resumed", "reused")


@dataclasses.dataclass
class RunResult:
    name: str
    kind: str
    command: str
    workdir: str
    status: str  # ran, resumed, reused, failed, skipped, not run; would run / would resume (dry run)
    reason: str = ""
    wall_time_sec: float | None = None


def accelerator() -> str | None:
    """"gpu" or "tpu" when jax.devices() has one, else None (a CPU-only machine)."""
    import jax
    kinds = sorted({d.platform for d in jax.devices()} & {"gpu", "tpu"})
    return kinds[0] if kinds else None


def run_dirs(study, runs_dir) -> dict[str, str]:
    root = os.path.join(os.path.abspath(runs_dir), study.name)
    return {r.name: os.path.join(root, r.name) for r in study.runs}


def _expand(text, run, dirs, show):
    paths = {n: (display_path(d) if show else d) for n, d in dirs.items()}
    return text.format(out=paths[run.name], **paths)


def _overrides(run, dirs, show) -> dict:
    return {k: _expand(v, run, dirs, show) if isinstance(v, str) else v for k, v in run.overrides.items()}


def command(run, dirs) -> str:
    """The command line a user would type, from the repository root, for the same run."""
    if isinstance(run, ConfigRun):
        argv = ["python", "-m", "llm_jax", "train", f"--config={run.config}",
                f"--workdir={display_path(dirs[run.name])}"]
        argv += [f"--config.{k}={v}" for k, v in _overrides(run, dirs, True).items()]
    else:
        argv = ["python", *(_expand(a, run, dirs, True) for a in run.argv)]
    return shlex.join(argv)


def load_config(run, dirs):
    """The run's ConfigDict: the config file's get_config(variant), then its overrides."""
    from llm_jax.training.config_schema import config_from_file
    from llm_jax.training.sweeps import apply_overrides
    path, _, variant = run.config.partition(":")
    full = repo_path(path)
    if not os.path.isfile(full):
        raise FileNotFoundError(f"run {run.name}: config file {full} not found")
    return apply_overrides(config_from_file(full, variant or None), _overrides(run, dirs, False))


def _finished_at(run, dirs) -> float | None:
    """When `run` last finished: the mtime of its summary.json (config) or marker (script)."""
    path = os.path.join(dirs[run.name], "summary.json" if isinstance(run, ConfigRun) else MARKER)
    return os.stat(path).st_mtime if os.path.exists(path) else None


def _holds_finished_run(workdir) -> bool:
    """summary.json newer than config.json: a run ended there (a rerun that died has not)."""
    paths = [os.path.join(workdir, n) for n in ("summary.json", "config.json")]
    return all(map(os.path.exists, paths)) and os.stat(paths[0]).st_mtime_ns >= os.stat(paths[1]).st_mtime_ns


def _unfinished_reason(study, run, dirs, config) -> str | None:
    workdir = dirs[run.name]
    if isinstance(run, ConfigRun):
        return unfinished_reason(config, workdir)
    marker = _read_json(os.path.join(workdir, MARKER))
    if marker is None:
        return f"no {MARKER} (it has not exited cleanly yet)"
    if marker.get("command") != command(run, dirs):
        return f"{MARKER} is of another command: {marker.get('command')}"
    missing = [o for o in run.outputs if not os.path.exists(os.path.join(workdir, o))]
    if missing:
        return f"missing {', '.join(missing)}"
    for need in run.needs:  # its outputs were made from an older version of that run's
        upstream = _finished_at(study.run(need), dirs)
        if upstream is not None and upstream > _finished_at(run, dirs):
            return f"run {need} finished after it"
    return None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _recorded_wall(run, workdir) -> float | None:
    data = _read_json(os.path.join(workdir, "summary.json" if isinstance(run, ConfigRun) else MARKER))
    wall = data.get("wall_time_sec") if isinstance(data, dict) else None
    return float(wall) if isinstance(wall, (int, float)) else None


def _run_script(run, dirs) -> float:
    workdir, cmd = dirs[run.name], command(run, dirs)
    argv = [sys.executable, *(_expand(a, run, dirs, True) for a in run.argv)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # so the log and the terminal follow it live
    t0 = time.perf_counter()
    with open(os.path.join(workdir, LOG), "a") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {cmd}\n")
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    log_path = display_path(os.path.join(workdir, LOG))
    if rc != 0:
        raise RuntimeError(f"exited with status {rc} (its output: {log_path})")
    missing = [o for o in run.outputs if not os.path.exists(os.path.join(workdir, o))]
    if missing:
        raise RuntimeError(f"exited 0 but wrote no {', '.join(missing)} in {display_path(workdir)}")
    with open(os.path.join(workdir, MARKER), "w") as f:
        json.dump({"command": cmd, "wall_time_sec": wall, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")},
                  f, indent=2)
    return wall


def _run_config(config, workdir) -> float:
    from llm_jax.training.commands import train
    t0 = time.perf_counter()
    summary = train(config, workdir)
    wall = summary.get("wall_time_sec") if isinstance(summary, dict) else None
    return float(wall) if isinstance(wall, (int, float)) else time.perf_counter() - t0


def one_line(e: BaseException) -> str:
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def execute(study, runs, dirs, *, skip: dict[str, str], dry_run=False, log=print) -> list[RunResult]:
    """Runs `runs` in order; `skip` maps a run to why it is not run here (it needs a GPU)."""
    results: dict[str, RunResult] = {}
    for i, run in enumerate(runs, 1):
        kind = "config" if isinstance(run, ConfigRun) else "script"
        res = RunResult(run.name, kind, command(run, dirs), display_path(dirs[run.name]), "")
        results[run.name] = res
        blocked = [n for n in run.needs if results[n].status not in DONE + ("would run", "would resume")]
        if run.name in skip:
            res.status, res.reason = "skipped", skip[run.name]
            continue
        if blocked:
            res.status = "not run"
            res.reason = f"needs run {blocked[0]}, which is {results[blocked[0]].status}"
            continue
        try:
            config = load_config(run, dirs) if kind == "config" else None
            reason = _unfinished_reason(study, run, dirs, config)
        except Exception as e:  # noqa: BLE001  a bad config or override fails this run alone
            res.status, res.reason = "failed", one_line(e)
            continue
        workdir = dirs[run.name]
        pending = [n for n in run.needs if results[n].status.startswith("would")]
        if reason is None and pending:  # a dry run: it will be stale once that run has run
            res.status, res.reason = "would resume", f"run {pending[0]} would run first"
            continue
        if reason is None:
            res.status, res.wall_time_sec = "reused", _recorded_wall(run, workdir)
            if not dry_run:
                log(f"[{study.name} {i}/{len(runs)}] {run.name}: finished, reused ({res.workdir})")
            continue
        if kind == "config" and _holds_finished_run(workdir):
            # a finished run of another config (the study was edited): train() would resume it
            # with the new config, so one workdir would hold two runs
            res.status = "failed"
            res.reason = (f"{res.workdir} holds a finished run of another config ({reason}); move it "
                          "away, or use another --runs_dir")
            continue
        started = os.path.isdir(workdir) and bool(os.listdir(workdir))
        res.reason = reason if started else ""
        if dry_run:
            res.status = "would resume" if started else "would run"
            continue
        log(f"[{study.name} {i}/{len(runs)}] {run.name}: {'resuming' if started else 'running'}"
            f"{f' ({reason})' if started else ''}\n  {res.command}")
        os.makedirs(workdir, exist_ok=True)
        try:
            res.wall_time_sec = _run_config(config, workdir) if kind == "config" else _run_script(run, dirs)
            res.status = "resumed" if started else "ran"
        except TrainingInterrupted:
            # SIGTERM or Ctrl-C asked the whole study to stop (the run saved a checkpoint): the
            # next runs must not start in its place
            raise
        except Exception as e:  # noqa: BLE001  recorded in the report; the other runs go on
            traceback.print_exc()
            res.status, res.reason = "failed", one_line(e)
    return list(results.values())
