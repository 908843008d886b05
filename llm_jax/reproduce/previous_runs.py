"""Runs of an earlier report for an experiment's report.py (`--previous=results.json,...`).

A table often outlives its workdirs: a sweep run half on one machine and half on another, or
a workdir deleted to free the disk once its numbers were in. A report's results.json keeps one
record per run ("runs"), so a later report can take those records back and table them beside
the workdirs it reads now. A workdir given anew replaces its old record (matched by path), so
rerunning one run and reporting again updates just that run.
"""

from __future__ import annotations

import json
import os


def previous_runs(paths: str, fresh_workdirs, required=("workdir",), flag="--previous") -> list[dict]:
    """The "runs" records of each results.json in the comma-separated `paths`, less those of
    `fresh_workdirs` (and of a record repeated by a later file), each with "previous": its file.
    A file that is not a report's results.json is a one-line error naming it and the flag."""
    fresh = {os.path.normpath(w) for w in fresh_workdirs}
    out: dict[str, dict] = {}
    for path in (p for p in paths.split(",") if p):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise SystemExit(f"{flag}: cannot read {path}: {e}") from None
        runs = data.get("runs") if isinstance(data, dict) else None
        if not isinstance(runs, list):
            raise SystemExit(f"{flag}: {path} has no \"runs\" list (not a report's results.json)")
        for i, run in enumerate(runs):
            missing = [k for k in required if not isinstance(run, dict) or k not in run]
            if missing:
                raise SystemExit(f"{flag}: {path}: runs[{i}] has no field {missing[0]!r}")
            key = os.path.normpath(run["workdir"])
            if key not in fresh:
                out[key] = {**run, "previous": path}
    return list(out.values())
