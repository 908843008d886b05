"""`python -m llm_jax reproduce NAME [--runs_dir=DIR] [--only=ROW,...] [--dry_run]` and `--list`.

Runs what the study NAME still needs (finished runs are reused, interrupted ones resumed), then
prints the table and writes DIR/NAME/report.md and report.json. Exit status: 0 every row passed;
1 a row failed or could not be checked; 2 the command line is wrong (unknown study or row),
nothing ran; 3 nothing failed but rows that need a GPU were skipped on this machine.
"""

import argparse
import difflib
import os
import sys
import time

from llm_jax.reproduce import report
from llm_jax.reproduce.registry import load_studies
from llm_jax.reproduce.runner import accelerator, execute, run_dirs
from llm_jax.reproduce.study import Published
from llm_jax.training.guards import TrainingInterrupted

USAGE_EXIT, FAILURE_EXIT, INTERRUPTED_EXIT = 2, 1, 130
DEFAULT_RUNS_DIR = "runs/reproduce"  # not runs/: a study's folder must not land in a training run's


def _minutes(m) -> str:
    if m is None:
        return "n/a"
    return f"~{m / 60:.1g} h" if m >= 90 else f"~{m:.2g} min"


def _hardware(rows) -> str:
    gpu = [r.gpu for r in rows]
    return "GPU" if all(gpu) else "CPU" if not any(gpu) else "CPU; GPU for " + ", ".join(
        r.name for r in rows if r.gpu)


def _reference(row) -> str:
    ref = row.reference
    if isinstance(ref, Published):
        return f"{ref.value:g} published ({ref.source})"
    return f"measured in the study ({ref.label or ref.describe()})"


def list_studies(studies, out=print):
    out(f"{len(studies)} studies (python -m llm_jax reproduce NAME; declared in experiments/*/study.py)")
    for s in studies.values():
        out(f"\n{s.name}: {s.title}")
        out(f"  {s.path}; needs: {_hardware(s.rows)}; expected time: {_minutes(s.minutes(s.rows, 'cpu'))} "
            f"on the 2-core CPU, {_minutes(s.minutes(s.rows, 'gpu'))} on one GPU")
        if s.time_note:
            out(f"  ({s.time_note})")
        width = max(len(r.name) for r in s.rows)
        for r in s.rows:
            out(f"    {r.name:<{width}}  {r.measured.key} of {r.measured.run} vs {_reference(r)}, "
                f"{r.tolerance.describe()}{'  [GPU]' if r.gpu else ''}")


def _parser():
    p = argparse.ArgumentParser(prog="python -m llm_jax reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="the study to reproduce (see --list)")
    p.add_argument("--list", action="store_true", help="list every study, its rows, time and hardware")
    p.add_argument("--runs_dir", default=DEFAULT_RUNS_DIR, help="runs and reports go to DIR/NAME/")
    p.add_argument("--only", default="", help="comma-separated rows to check (and the runs they need)")
    p.add_argument("--dry_run", action="store_true", help="print the commands; run nothing")
    return p


def _error(message) -> None:
    print(f"error: {message}", file=sys.stderr)


def main(args: list[str], *, experiments_dir=None) -> int:
    """The `reproduce` command; returns the exit status. `experiments_dir`: where study.py files
    are looked for (default: the repository's experiments/)."""
    try:
        ns = _parser().parse_args(args)
    except SystemExit as e:  # argparse has printed the usage error (or --help)
        return e.code if isinstance(e.code, int) else USAGE_EXIT
    try:
        studies = load_studies(experiments_dir)
    except ValueError as e:
        _error(e)
        return FAILURE_EXIT
    known = ", ".join(studies) or "none"
    if ns.list:
        list_studies({ns.name: studies[ns.name]} if ns.name in studies else studies)
        return 0
    if ns.name is None:
        _error(f"give a study name or --list; known studies: {known}")
        return USAGE_EXIT
    if ns.name not in studies:
        close = difflib.get_close_matches(ns.name, list(studies), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        _error(f"unknown study {ns.name!r}{hint}; known studies: {known}")
        return USAGE_EXIT
    study = studies[ns.name]
    only = [o for o in ns.only.split(",") if o]
    names = [r.name for r in study.rows]
    unknown = [o for o in only if o not in names]
    if unknown:
        _error(f"--only: study {study.name} has no row {unknown[0]!r}; its rows: {', '.join(names)}")
        return USAGE_EXIT
    rows = [r for r in study.rows if not only or r.name in only]
    try:
        return _reproduce(study, rows, ns.runs_dir, only, ns.dry_run)
    except KeyboardInterrupt:
        _error(f"interrupted; the same command resumes {study.name} (finished runs are kept)")
        return INTERRUPTED_EXIT
    except TrainingInterrupted as e:  # SIGTERM or a first Ctrl-C, at a step boundary
        _error(f"{e}; the same reproduce command resumes {study.name} from there (finished "
               "runs are kept, no later run was started)")
        return e.exit_code


def _reproduce(study, rows, runs_dir, only, dry_run) -> int:
    t0 = time.perf_counter()
    found = accelerator()
    devices = found or "CPU only: jax.devices() has no GPU or TPU"
    why = "needs a GPU; this machine has none (jax.devices() lists no gpu or tpu)"
    skip_rows = {r.name: why for r in rows if r.gpu and not found}
    runnable = study.needed_runs([r for r in rows if r.name not in skip_rows])
    needed = study.needed_runs(rows)
    skip_runs = {r.name: why for r in needed if r not in runnable}
    dirs = run_dirs(study, runs_dir)
    results = execute(study, needed, dirs, skip=skip_runs, dry_run=dry_run)
    if dry_run:
        print(f"{study.name}: {len(needed)} run(s) for {len(rows)} row(s), on this machine ({devices}):")
        for r in results:
            print(f"  [{r.status}{f': {r.reason}' if r.reason else ''}] {r.name}\n    {r.command}")
        return FAILURE_EXIT if any(r.status == "failed" for r in results) else 0
    by_name = {r.name: r for r in results}
    checked = [report.check_row(r, dirs, by_name, skip_rows.get(r.name)) for r in rows]
    rep = report.build(study, checked, results, runs_dir=runs_dir, only=only, devices=devices,
                       wall_time_sec=time.perf_counter() - t0)
    json_path, md_path = report.write(rep, os.path.join(os.path.abspath(runs_dir), study.name))
    print("\n" + report.markdown(rep))
    print(f"written: {md_path}, {json_path}")
    return rep["exit_status"]
