"""experiments/atis_snips/report.py on a tiny intent+slots run with a test split: its test
scores from summary.json, the best dev evaluation, the published rows, table and plot."""

import json

import pytest

from llm_jax.training.commands import train
from tests.conftest import load_script
from tests.tasks.test_intent_slots import tiny


def _report():
    return load_script("experiments/atis_snips/report.py")


def test_report_reads_test_and_best_dev(tmp_path, capsys):
    c = tiny(tmp_path)
    c.task.test_dir = c.task.eval_dir
    c.data.test_split = "test"
    summary = train(c, str(tmp_path / "run"))
    report = _report()
    report.main([f"--workdirs={tmp_path / 'run'}", f"--out={tmp_path / 'out'}"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    (run,) = results["runs"]
    assert run["corpus"] == "atis" and run["backbone"] == "scratch"
    assert run["test"] == {m: summary[f"test/{m}"] for m in report.METRICS}
    assert run["dev_best"]["sentence_accuracy"] == summary["best/eval/sentence_accuracy"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| atis | scratch (here, lr 1e-2, 80 steps) |" in md  # the tiny config's
    assert "| atis | slot-gated (Goo et al. 2018, Table 2) | 93.60 | 94.80 | 82.20 |" in md
    assert "snips" not in md and capsys.readouterr().out.endswith(md)
    assert (tmp_path / "out" / "scores.png").stat().st_size > 10_000


def test_a_run_without_test_scores_is_named(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(
        json.dumps({"task": {"name": "intent_slots", "corpus": "atis"}}))
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"eval/slot_f1": 50.0}))
    with pytest.raises(SystemExit, match=r"run/summary.json has no test/intent_accuracy"):
        _report().main([f"--workdirs={tmp_path / 'run'}", f"--out={tmp_path / 'out'}"])
