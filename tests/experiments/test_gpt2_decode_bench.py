"""The GPT-2 generation benchmark runs end to end at the tiny shape and writes its report.

Batches 1 and 3, a 6-token prompt, 5 new tokens, one timed call, one repeat (seconds): this
checks that the script works, that both sides generated the same ids, and what its JSON holds,
not how fast anything is.
"""

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCRIPT = REPO / "experiments" / "gpt2_zeroshot" / "bench" / "bench_decode.py"
BATCHES, PROMPT, NEW = (1, 3), 6, 5
SIDES = ("llm_jax", "hf_generate")


def run(tmp_path, *flags):
    out = tmp_path / "decode.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--shape", "tiny", "--steps", "1", "--repeats", "1",
         *flags, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    return proc, out


def test_bench_decode_reports_parity_prefill_and_per_token_figures(tmp_path):
    proc, out = run(tmp_path, "--batches", ",".join(map(str, BATCHES)), "--prompt-len",
                    str(PROMPT), "--new-tokens", str(NEW), "--vocab", "1000")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert (report["shape"], report["dtype"]) == ("tiny", "float32")
    assert (report["prompt_len"], report["new_tokens"]) == (PROMPT, NEW)
    m = report["model"]
    assert (m["num_layers"], m["embed_dim"], m["vocab_size"], m["dtype"]) == (2, 64, 1000, "float32")
    assert report["params"] > 0 and report["environment"]["transformers"]
    assert report["environment"]["other_processes_cores_at_start"] >= 0
    assert report["prompt_logits_max_abs_diff"] < 1e-4  # float32 parity of the two models
    assert [row["batch"] for row in report["rows"]] == list(BATCHES)
    for row in report["rows"]:
        assert row["ids_equal"] is True
        for key in ("llm_jax", "llm_jax_first_token", "hf_generate", "hf_generate_first_token"):
            r = row["results"][key]
            assert r["steps"] == 1 and len(r["runs_s"]) == 1 and r["sec_per_step"] > 0
            assert r["compile_s"] >= 0 and r["other_processes_cores"] >= 0
        for side in SIDES:
            s = row[side]
            assert s["generate_s"] == row["results"][side]["sec_per_step"]
            assert s["prefill_s"] == row["results"][f"{side}_first_token"]["sec_per_step"]
            assert s["tokens_s"] == pytest.approx(row["batch"] * NEW / s["generate_s"])
            assert s["prefill_tokens_s"] == pytest.approx(row["batch"] * PROMPT / s["prefill_s"])
            # None only when timing noise makes full - first call <= 0 (possible at this size)
            if s["per_token_s"] is not None:
                assert s["per_token_s"] == pytest.approx(
                    (s["generate_s"] - s["prefill_s"]) / (NEW - 1))
                assert s["decode_tokens_s"] == pytest.approx(row["batch"] / s["per_token_s"])
        assert row["ratio"]["tokens_s"] == pytest.approx(
            row["llm_jax"]["tokens_s"] / row["hf_generate"]["tokens_s"])
    assert "| batch | llm_jax tokens/s | HF tokens/s |" in proc.stdout


@pytest.mark.parametrize("flags, message", [
    (["--new-tokens", "1"], "--new-tokens=1 must be >= 2"),
    (["--prompt-len", "200", "--new-tokens", "100"], "exceeds the context of shape tiny (256)"),
    (["--batches", "1,x"], "--batches='1,x'"),
])
def test_bad_flags_are_named(flags, message, tmp_path, monkeypatch, capsys):
    """In this process (the flags are checked before anything is built): no subprocess."""
    spec = importlib.util.spec_from_file_location("gpt2_bench_decode", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "decode.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--shape", "tiny", *flags, "--out", str(out)])
    with pytest.raises(SystemExit) as e:
        module.main()
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_decode_floor_splits_a_step_and_reports_its_bound(tmp_path):
    out = tmp_path / "floor.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "decode_floor.py"), "--shape", "tiny",
         "--repeats", "2", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["shape"] == "tiny" and r["read_GBps"] > 0 and r["weight_bytes"] > 0
    assert r["floor_ms"] == pytest.approx(r["weight_bytes"] / r["read_GBps"] / 1e6)
    for k in ("step_ms", "sliced_step_ms", "sliced_loop_step_ms", "head_ms"):
        assert r[k] > 0
    assert r["blocks_ms"] == pytest.approx(r["step_ms"] - r["head_ms"])
