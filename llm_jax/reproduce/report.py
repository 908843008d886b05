"""Checking rows against their references, and the report: report.json, report.md, exit status.

Exit status: 0 every row checked passed; 1 a row failed, or could not be checked (a run failed,
a metric is missing); 3 nothing failed, but some rows were skipped (they need a GPU). 3 is kept
apart from 0 (a skipped row has not passed) and from 1 (nothing was found wrong).
"""

import difflib
import fnmatch
import json
import math
import os
import platform
import sys
import time

from llm_jax.reproduce.runner import DONE
from llm_jax.reproduce.study import Metric, Published


class MetricError(ValueError):
    """A declared metric that cannot be read: names the run, the file and the key."""


def _number(v, what) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MetricError(f"{what} is {v!r}, not a number")
    return float(v)


def _matches(value, wanted) -> bool:
    # a string is a shell-style pattern: record names often carry sizes ("(256-d, trained)")
    if isinstance(wanted, str):
        return isinstance(value, str) and fnmatch.fnmatchcase(value, wanted)
    return value == wanted


def read_metric(metric: Metric, dirs) -> float:
    """The number `metric` declares, from the files its run wrote (mean over matching records)."""
    name = metric.file or "summary.json"
    path = os.path.join(dirs[metric.run], name)
    if not os.path.exists(path):
        raise MetricError(f"run {metric.run} wrote no {name} ({path})")
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as e:
        raise MetricError(f"run {metric.run}: {path} is not JSON ({e})") from None
    if metric.records:
        if not isinstance(data, dict) or metric.records not in data:
            raise MetricError(f"run {metric.run}: {path} has no key {metric.records!r} (the records)")
        data = data[metric.records]
    if isinstance(data, list):
        records = [r for r in data if isinstance(r, dict)
                   and all(_matches(r.get(k), v) for k, v in metric.where.items())]
        if not records:
            seen = {k: sorted({str(r.get(k)) for r in data if isinstance(r, dict)}) for k in metric.where}
            raise MetricError(f"run {metric.run}: no record of {path} has {metric.where} "
                              f"(values there: {seen})")
    elif isinstance(data, dict) and not metric.where:
        records = [data]
    else:
        raise MetricError(f"run {metric.run}: {path} is not a list of records to pick "
                          f"{metric.where} from")
    values = []
    for r in records:
        if metric.key not in r:
            close = difflib.get_close_matches(metric.key, [str(k) for k in r], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it has {sorted(map(str, r))[:12]}"
            raise MetricError(f"run {metric.run} has no metric {metric.key!r} in {path}{hint}")
        values.append(_number(r[metric.key], f"run {metric.run}: {metric.key!r} in {path}"))
    return sum(values) / len(values) * metric.scale


def _fmt(v) -> str:
    return "" if v is None else f"{v:.5g}"


def check_row(row, dirs, runs: dict, skip_reason: str | None) -> dict:
    ref = row.reference
    out = {"name": row.name, "measured": None, "metric": row.measured.describe(), "gpu": row.gpu,
           "reference": ({"kind": "published", "value": ref.value, "source": ref.source}
                         if isinstance(ref, Published) else
                         {"kind": "measured", "value": None, "label": ref.label or ref.describe(),
                          "metric": ref.describe()}),
           "tolerance": row.tolerance.describe(), "result": "", "reason": "", "note": row.note,
           "runs": list(row.runs)}
    if skip_reason:
        out.update(result="skipped", reason=skip_reason)
        return out
    bad = [runs[n] for n in row.runs if runs[n].status not in DONE]
    if bad:
        r = bad[0]
        out.update(result="error", reason=f"run {r.name} {r.status}: {r.reason}")
        return out
    try:
        measured = read_metric(row.measured, dirs)
        reference = ref.value if isinstance(ref, Published) else read_metric(ref, dirs)
    except MetricError as e:
        out.update(result="error", reason=str(e))
        return out
    out["measured"], out["reference"]["value"] = measured, reference
    out["tolerance"] = row.tolerance.describe(reference)
    ok = row.tolerance.passes(measured, reference)
    out["result"] = "pass" if ok else "fail"
    if not math.isfinite(measured):
        out["reason"] = f"measured value is {measured}"
    return out


def exit_status(rows) -> int:
    results = {r["result"] for r in rows}
    if results & {"fail", "error"}:
        return 1
    return 3 if "skipped" in results else 0


def build(study, rows, runs, *, runs_dir, only, devices, wall_time_sec) -> dict:
    counts = {k: sum(r["result"] == k for r in rows) for k in ("pass", "fail", "error", "skipped")}
    return {"study": study.name, "title": study.title, "study_file": study.path, "readme": study.readme,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "only": only, "runs_dir": runs_dir,
            "machine": {"devices": devices, "cpus": os.cpu_count(), "host": platform.node(),
                        "python": sys.executable},
            "rows": rows, "runs": [r.__dict__ for r in runs], "counts": counts,
            "exit_status": exit_status(rows), "wall_time_sec": wall_time_sec}


def _reference_cell(r) -> str:
    ref = r["reference"]
    if ref["kind"] == "published":
        return f"{_fmt(ref['value'])} (published: {ref['source']})".strip()
    return f"{_fmt(ref['value'])} (measured in this study: {ref['label']})".strip()


def _result_cell(r) -> str:
    return r["result"].upper() if r["result"] in ("fail", "error") else r["result"]


def markdown(report) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    machine, only = report["machine"], ", ".join(report["only"] or [])
    lines = [f"# Reproduction: {report['study']}", "", f"{report['title']} (`{report['study_file']}`"
             + (f", see `{report['readme']}`" if report["readme"] else "") + ").",
             f"Made {report['created']} on {machine['host']} ({machine['devices']}, {machine['cpus']} CPUs)"
             + (f", rows {only} only" if only else "") + ".",
             "", "| row | reference | measured | tolerance | result |", "|---|---|---|---|---|"]
    notes = []
    for r in report["rows"]:
        lines.append(f"| {r['name']} | {esc(_reference_cell(r))} | {_fmt(r['measured'])} | "
                     f"{esc(r['tolerance'])} | {_result_cell(r)} |")
        if r["reason"]:
            notes.append(f"- {r['name']}: {r['reason']}")
        elif r["note"]:
            notes.append(f"- {r['name']}: {r['note']}")
    lines += ["", *notes, "" if notes else None, "| run | command | status | wall time |",
              "|---|---|---|---|"]
    for run in report["runs"]:
        wall = "" if run["wall_time_sec"] is None else f"{run['wall_time_sec']:.1f} s"
        status = run["status"] + (f": {run['reason']}" if run["reason"] else "")
        lines.append(f"| {run['name']} | `{esc(run['command'])}` | {esc(status)} | {wall} |")
    c = report["counts"]
    lines += ["", f"Rows: {c['pass']} pass, {c['fail']} fail, {c['error']} could not be checked, "
              f"{c['skipped']} skipped. Exit status {report['exit_status']}. "
              f"Whole reproduction: {report['wall_time_sec']:.1f} s wall."]
    return "\n".join(line for line in lines if line is not None) + "\n"


def write(report, directory) -> tuple[str, str]:
    """report.json and report.md in `directory`, each replaced whole (never half-written)."""
    os.makedirs(directory, exist_ok=True)
    paths = (os.path.join(directory, "report.json"), os.path.join(directory, "report.md"))
    for path, text in zip(paths, (json.dumps(report, indent=2) + "\n", markdown(report))):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    return paths
