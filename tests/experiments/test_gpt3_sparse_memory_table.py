"""experiments/gpt3_sparse/memory_table.py runs at a tiny T and writes the fields its README
reads (the real table, T = 2048..8192, is for an idle machine)."""

import json
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "experiments" / "gpt3_sparse" / "memory_table.py"


def test_memory_table_runs_small(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--lengths", "24,40", "--window", "8", "--heads", "2",
         "--head_dim", "8", "--repeats", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((tmp_path / "memory_table.json").read_text())
    assert report["config"]["lengths"] == [24, 40] and report["config"]["window"] == 8
    assert {"jax", "backend", "device"} <= set(report["environment"])
    rows = report["rows"]
    assert {(r["T"], r["mode"], r["impl"]) for r in rows} == {
        (T, m, i) for T in (24, 40) for m in ("fwd", "fwd_bwd")
        for i in ("dense", "masked_local", "blocked_local")}
    for r in rows:
        assert r["total_bytes"] == r["temp_bytes"] + r["argument_bytes"] + r["output_bytes"] > 0
        assert r["time_ms"] > 0 and r["memory_vs_dense"] > 0 and r["time_vs_dense"] > 0
    assert "| 40 | fwd_bwd | blocked_local |" in (tmp_path / "memory_table.md").read_text()
