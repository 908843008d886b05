"""`reproduce`: a tiny fake study end to end (rows, report, exit status, resuming), bad input,
and the real studies' declarations (listed, and their commands built without running them)."""

import json
import math
import os

import pytest

from llm_jax.reproduce import cli, main
from llm_jax.reproduce.registry import load_studies
from llm_jax.reproduce.report import check_row
from llm_jax.reproduce.runner import RunResult
from llm_jax.reproduce.study import Published, at_least, at_most, within
from tests.conftest import REPO

REAL_STUDIES = ("ptb_ngram", "zaremba_small", "shakespeare_char_cpu", "word2vec_gensim", "elmo_sst2",
                "bert_pretraining", "glue", "atis_snips", "squad", "conll2003_ner")

# A script run that is "killed" on its first try when FAKE_INTERRUPT is set (it leaves a partial
# file and exits 3) and on its next try carries on from that file, as a resumable script does.
SCRIPT = """
import argparse, json, os, sys
p = argparse.ArgumentParser()
p.add_argument("--out")
p.add_argument("--bigram")
a = p.parse_args()
partial = os.path.join(a.out, "partial.txt")
if os.environ.get("FAKE_INTERRUPT") and not os.path.exists(partial):
    open(partial, "w").write("half done")
    sys.exit(3)
with open(os.path.join(a.bigram, "summary.json")) as f:
    ppl = json.load(f)["test/perplexity"]
with open(os.path.join(a.out, "result.json"), "w") as f:
    json.dump([{"who": "peer", "score": ppl, "resumed": os.path.exists(partial)},
               {"who": "other", "score": -1.0}], f)
"""

STUDY = """
from llm_jax.reproduce import (ConfigRun, Metric, Published, Row, ScriptRun, Study, at_least,
                               at_most, within)

bigram = ConfigRun("bigram", {config!r}, {{"task.num_samples": 0}}, cpu_minutes=0.1)
script = ScriptRun("script", ({script!r}, "--out={{out}}", "--bigram={{bigram}}"),
                   outputs=("result.json",), cpu_minutes=0.1, gpu_minutes=0.1)
ppl = Metric("bigram", "test/perplexity")
fake = Study(
    name="fake", title="a fake study", time_note="seconds",
    runs=(bigram, script),
    rows=(
        Row("passes", ppl, Published(1e6, "A Paper", "Table 1", "row 2"), at_most(abs=0.0)),
        Row("fails", ppl, Published(1.0, "A Paper", "Table 1", "row 3"), within(rel=0.01)),
        Row("peer", Metric("script", "score", file="result.json", where={{"who": "peer"}}),
            Metric("bigram", "test/perplexity", label="the bigram itself"), within(abs=1e-9)),
    ))
typo = Study(name="fake_typo", title="a typo in a key", runs=(bigram,),
             rows=(Row("typo", Metric("bigram", "test/perplexty"), Published(1.0, "P"), at_least(rel=0.1)),))
on_gpu = Study(name="fake_gpu", title="a GPU row", runs=(bigram, script),
               rows=(Row("gpu_row", Metric("script", "score", file="result.json", where={{"who": "other"}}),
                         Published(-1.0, "P"), within(abs=0.0), gpu=True),))
STUDIES = [fake, typo, on_gpu]
"""


@pytest.fixture
def fake(tmp_path, tmp_data_dir):
    """experiments/fake/study.py over a tiny PTB; returns (experiments dir, runs dir)."""
    words = "the cat dog sat on a mat and ran far away".split()
    (tmp_data_dir / "ptb").mkdir()
    for split, n in (("train", 200), ("valid", 20), ("test", 20)):
        lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(3 + i % 5)) for i in range(n)]
        (tmp_data_dir / "ptb" / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    folder = tmp_path / "experiments" / "fake"
    folder.mkdir(parents=True)
    (folder / "script.py").write_text(SCRIPT)
    (folder / "study.py").write_text(STUDY.format(config=f"{REPO}/configs/ngram.py:add_k2",
                                                  script=str(folder / "script.py")))
    return tmp_path / "experiments", tmp_path / "runs"


def _run(fake, *args):
    experiments, runs = fake
    return main([*args, f"--runs_dir={runs}"], experiments_dir=experiments)


def _report(fake, name="fake"):
    with open(fake[1] / name / "report.json") as f:
        return json.load(f)


def test_fake_study_end_to_end_then_reused(fake):
    assert _run(fake, "fake", "--only=passes,fails") == 1  # one row fails
    rep = _report(fake)
    assert [(r["name"], r["result"]) for r in rep["rows"]] == [("passes", "pass"), ("fails", "fail")]
    summary_path = fake[1] / "fake" / "bigram" / "summary.json"
    with open(summary_path) as f:
        ppl = json.load(f)["test/perplexity"]
    assert rep["rows"][0]["measured"] == ppl and math.isfinite(ppl)
    assert rep["rows"][0]["reference"] == {"kind": "published", "value": 1e6,
                                           "source": "A Paper, Table 1, row 2"}
    assert [(r["name"], r["status"]) for r in rep["runs"]] == [("bigram", "ran")]  # script not needed
    assert rep["runs"][0]["command"].startswith("python -m llm_jax train --config=")
    assert rep["runs"][0]["wall_time_sec"] > 0 and rep["exit_status"] == 1
    md = (fake[1] / "fake" / "report.md").read_text()
    assert "| passes | 1e+06 (published: A Paper, Table 1, row 2) |" in md
    assert "| FAIL |" in md and "--config.task.num_samples=0" in md
    mtime = os.stat(summary_path).st_mtime_ns
    assert _run(fake, "fake", "--only=passes") == 0
    assert _report(fake)["runs"][0]["status"] == "reused"
    assert os.stat(summary_path).st_mtime_ns == mtime  # not trained again
    study = fake[0] / "fake" / "study.py"
    study.write_text(study.read_text().replace('"task.num_samples": 0', '"task.num_samples": 1'))
    assert _run(fake, "fake", "--only=passes") == 1  # an edited study never resumes an old run
    run = _report(fake)["runs"][0]
    assert run["status"] == "failed" and "holds a finished run of another config" in run["reason"]
    assert "task.num_samples" in run["reason"] and os.stat(summary_path).st_mtime_ns == mtime


def test_interrupted_study_resumes(fake, monkeypatch):
    monkeypatch.setenv("FAKE_INTERRUPT", "1")
    assert _run(fake, "fake") == 1
    rep = _report(fake)
    runs = {r["name"]: r for r in rep["runs"]}
    assert runs["bigram"]["status"] == "ran"
    assert runs["script"]["status"] == "failed" and "exited with status 3" in runs["script"]["reason"]
    peer = rep["rows"][2]
    assert peer["result"] == "error" and peer["reason"].startswith("run script failed")
    # the config run killed before its end: no summary.json yet
    os.remove(fake[1] / "fake" / "bigram" / "summary.json")
    assert _run(fake, "fake", "--only=passes,peer") == 0
    rep = _report(fake)
    assert {r["name"]: r["status"] for r in rep["runs"]} == {"bigram": "resumed", "script": "resumed"}
    with open(fake[1] / "fake" / "script" / "result.json") as f:
        assert json.load(f)[0]["resumed"]  # carried on from its partial file
    peer = rep["rows"][1]
    assert peer["result"] == "pass" and peer["reference"]["kind"] == "measured"
    assert peer["reference"]["label"] == "the bigram itself"
    assert peer["reference"]["value"] == peer["measured"]
    assert "(measured in this study: the bigram itself)" in (fake[1] / "fake" / "report.md").read_text()
    assert _run(fake, "fake", "--only=peer") == 0  # both finished now: nothing reruns
    assert {r["status"] for r in _report(fake)["runs"]} == {"reused"}
    later = os.stat(fake[1] / "fake" / "script" / "reproduce_run.json").st_mtime + 10
    os.utime(fake[1] / "fake" / "bigram" / "summary.json", (later, later))
    assert _run(fake, "fake", "--only=peer") == 0  # the script's input is newer than its output
    runs = {r["name"]: r for r in _report(fake)["runs"]}
    assert runs["bigram"]["status"] == "reused" and runs["script"]["status"] == "resumed"
    assert runs["script"]["reason"] == "run bigram finished after it"


def test_sigterm_in_a_config_run_stops_the_study_and_starts_no_later_run(fake, monkeypatch,
                                                                         capsys):
    from llm_jax.reproduce import runner
    from llm_jax.training.guards import TrainingInterrupted

    def stopped(config, workdir):
        raise TrainingInterrupted("SIGTERM: stopped at step 1 and saved a checkpoint", 15)

    monkeypatch.setattr(runner, "_run_config", stopped)
    assert _run(fake, "fake") == 143
    assert not (fake[1] / "fake" / "script").exists()  # the script run after it never started
    err = capsys.readouterr().err
    assert "SIGTERM: stopped at step 1" in err and "resumes fake" in err


def test_missing_metric_key_names_run_and_key(fake):
    assert _run(fake, "fake_typo") == 1
    row = _report(fake, "fake_typo")["rows"][0]
    assert row["result"] == "error"
    assert "run bigram has no metric 'test/perplexty'" in row["reason"]
    assert "did you mean 'test/perplexity'" in row["reason"]


def test_gpu_row_skipped_without_gpu_and_run_with_one(fake, monkeypatch):
    monkeypatch.setattr(cli, "accelerator", lambda: None)
    assert _run(fake, "fake_gpu") == 3  # nothing failed, but not everything was checked
    rep = _report(fake, "fake_gpu")
    assert rep["rows"][0]["result"] == "skipped" and "needs a GPU" in rep["rows"][0]["reason"]
    assert {r["status"] for r in rep["runs"]} == {"skipped"}
    assert not (fake[1] / "fake_gpu" / "bigram").exists()
    monkeypatch.setattr(cli, "accelerator", lambda: "gpu")
    assert _run(fake, "fake_gpu") == 0
    assert _report(fake, "fake_gpu")["rows"][0]["result"] == "pass"


def test_dry_run_prints_commands_and_runs_nothing(fake, capsys):
    assert _run(fake, "fake", "--dry_run") == 0
    out = capsys.readouterr().out
    assert "[would run] bigram" in out and "--bigram=" in out
    assert not (fake[1] / "fake").exists()


def test_unknown_study_and_row_list_the_known_ones(fake, capsys):
    assert _run(fake, "fak") == 2
    err = capsys.readouterr().err
    assert "unknown study 'fak'" in err and "did you mean fake" in err and "fake_gpu" in err
    assert _run(fake, "fake", "--only=nope") == 2
    assert "its rows: passes, fails, peer" in capsys.readouterr().err


def test_bad_declaration_names_the_file(fake, capsys):
    path = fake[0] / "fake" / "study.py"
    path.write_text(path.read_text().replace('Metric("bigram", "test/perplexty")',
                                             'Metric("bigramm", "test/perplexty")'))
    assert _run(fake, "--list") == 1
    err = capsys.readouterr().err
    assert "study.py (fake_typo): row typo reads run 'bigramm'" in err


@pytest.mark.parametrize("tol, measured, ok", [
    (at_most(abs=1.5), 116.0, True), (at_most(abs=1.5), 116.01, False),
    (at_least(abs=1.0), 4.0, True), (at_least(abs=1.0), 3.9, False),
    (within(rel=0.02), 97.9, False), (within(rel=0.02), 102.0, True),
    (within(rel=0.02), float("nan"), False), (at_most(abs=1.0), float("inf"), False),
])
def test_tolerance(tol, measured, ok):
    reference = 114.5 if tol.direction == "at_most" else 5.0 if tol.direction == "at_least" else 100.0
    assert tol.passes(measured, reference) is ok


def test_list_shows_every_real_study(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in REAL_STUDIES:
        assert f"\n{name}: " in out
    assert "141.2 published (Mikolov (2012)" in out and "[GPU]" in out


@pytest.mark.parametrize("name", REAL_STUDIES + ("shakespeare_char_gpu",))
def test_real_study_commands_build(name, tmp_path, capsys):
    """Every real study's configs load and overrides apply (a dry run), without training."""
    assert main([name, "--dry_run", f"--runs_dir={tmp_path}"]) == 0
    assert "python " in capsys.readouterr().out


@pytest.mark.real_data("ptb")
def test_ptb_ngram_study_passes(real_data_dir, tmp_path):
    """The real ptb_ngram study (two n-gram runs, seconds): KN5 and KN3 within 2% of Mikolov."""
    assert main(["ptb_ngram", f"--runs_dir={tmp_path}"]) == 0
    with open(tmp_path / "ptb_ngram" / "report.json") as f:
        rows = json.load(f)["rows"]
    assert rows[0]["measured"] == pytest.approx(141.19, abs=0.01)
    assert isinstance(rows[0]["reference"]["value"], float)
    assert Published(141.2, "x").source == "x"


@pytest.mark.parametrize("name, results, committed, first", [
    ("word2vec_gensim", "compare/results.json", "experiments/word2vec/results_3seeds.json",
     ("analogy_sg_neg", 5.14, 4.95)),
    ("bert_pretraining", "table/results.json", "experiments/bert_pretraining/results.json",
     ("bert_mlm_beats_unigram", 14.66, 6.67)),
])
def test_script_study_rows_read_the_committed_results(name, results, committed, first, tmp_path):
    """The rows of the script studies, read from the result files their READMEs were made from."""
    study = load_studies()[name]
    run, file = results.split("/")
    (tmp_path / run).mkdir()
    (tmp_path / run / file).write_text((REPO / committed).read_text())
    dirs = {r.name: str(tmp_path / r.name) for r in study.runs}
    runs = {r.name: RunResult(r.name, "", "", "", "reused") for r in study.runs}
    rows = [check_row(row, dirs, runs, None) for row in study.rows]
    assert [r["result"] for r in rows] == ["pass"] * len(rows)
    row, measured, reference = first
    assert rows[0]["name"] == row
    got = (rows[0]["measured"], rows[0]["reference"]["value"])
    assert got == pytest.approx((measured, reference), abs=0.01)
