"""The Multi30k Transformer benchmarks run end to end at the tiny shape and write their reports.

Two timed steps, one repeat, no torch.compile (minutes on a CPU): this checks that the scripts
work and what their JSON holds, not how fast anything is.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("torch")
pytest.importorskip("transformers")

BENCH = REPO / "experiments" / "multi30k_transformer" / "bench"


def run(script, tmp_path, *flags):
    out = tmp_path / f"{script}.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--shape", "tiny", "--steps", "2",
         "--repeats", "1", *flags, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text())


def check_timing(r):
    assert r["steps"] == 2 and len(r["runs_s"]) == 1
    assert r["sec_per_step"] > 0 and r["compile_s"] >= 0 and r["other_processes_cores"] >= 0


def test_bench_train_reports_parity_and_throughputs(tmp_path):
    report = run("bench_train", tmp_path, "--batch", "8", "--len", "16", "--compile", "off")
    assert report["shape"] == "tiny" and report["batch_shape"] == [8, 16]
    assert report["environment"]["other_processes_cores_at_start"] >= 0
    assert report["params"] == report["params_torch"] > 0
    # real target tokens only: fewer than the padded positions, at least 8 per sentence
    assert 8 * 8 < report["tokens_per_step"] < report["padded_tokens_per_step"] == 8 * 16
    jax_p, torch_p = report["parity"]["jax"], report["parity"]["torch"]
    assert jax_p["loss"] == pytest.approx(torch_p["loss"], abs=1e-4)
    assert jax_p["grad_norm"] == pytest.approx(torch_p["grad_norm"], rel=1e-3)
    results = report["results"]
    for key in ("llm_jax", "torch_eager"):
        check_timing(results[key])
        assert results[key]["tok_s"] > 0
    assert results["torch_compile"] == {"skipped": "--compile off"}
    assert report["ratio_vs_best_torch"] == pytest.approx(
        results["llm_jax"]["tok_s"] / results["torch_eager"]["tok_s"])


def test_bench_decode_reports_equal_ids_and_sentences_per_second(tmp_path):
    report = run("bench_decode", tmp_path, "--batch", "8", "--max-length", "24")
    assert report["ids_equal"] is True and report["rows_differing"] == 0
    assert report["beams"] == 5 and report["max_length"] == 24 and report["params"] > 0
    lengths = report["output_lengths"]
    assert len(lengths) == 8 and all(1 <= n <= 23 for n in lengths)
    assert report["mean_output_length"] == pytest.approx(sum(lengths) / 8)
    assert all(8 <= n <= 30 for n in report["src_lengths"])
    for key in ("llm_jax", "hf_generate"):
        check_timing(report["results"][key])
        assert report["results"][key]["sentences_s"] > 0
    assert report["ratio"] > 0
