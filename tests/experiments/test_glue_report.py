"""experiments/glue/report.py on two seeds of a tiny SST-2-like run: the best evaluation's
numbers, mean and range over seeds, the majority class and the bert-base gap, table and plot."""

import json

import pytest

from llm_jax.training.commands import train
from tests.conftest import load_script
from tests.tasks.test_glue import tiny


def _report():
    return load_script("experiments/glue/report.py")


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glue_report")
    out = []
    for seed in (0, 1):
        c = tiny(tmp)
        c.seed = seed
        train(c, str(tmp / f"seed{seed}"))
        out.append(tmp / f"seed{seed}")
    return out


def test_report_reads_the_best_eval_and_averages_seeds(workdirs, tmp_path, capsys):
    report = _report()
    report.main(["--workdirs=" + ",".join(map(str, workdirs)), f"--out={tmp_path}"])
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["rows"]
    assert row["task"] == "sst2" and row["backbone"] == "scratch" and row["seeds"] == [0, 1]
    best = []
    for w in workdirs:
        evals = [json.loads(line) for line in open(w / "metrics.jsonl")]
        best.append(max(r["eval/glue_score"] for r in evals if "eval/glue_score" in r))
        assert json.loads((w / "summary.json").read_text())["best/eval/glue_score"] == best[-1]
    assert row["per_seed"] == best
    assert row["dev_score"] == pytest.approx(sum(best) / 2)
    assert (row["dev_score_min"], row["dev_score_max"]) == (min(best), max(best))
    assert row["metrics"]["accuracy"] == pytest.approx(row["dev_score"])
    assert row["gap_to_bert_base"] == pytest.approx(row["dev_score"] - 92.32)
    assert results["best_sst2_dev_accuracy"] == pytest.approx(row["dev_score"])
    # the majority class of the tiny training file, scored on its dev file by glue_metrics
    labels = [line.rsplit("\t", 1)[1] for line in open(workdirs[0].parent / "dev.tsv")][1:]
    train_labels = [line.rsplit("\t", 1)[1] for line in open(workdirs[0].parent / "train.tsv")][1:]
    top = max(set(train_labels), key=train_labels.count)
    assert results["majority_class"]["sst2"]["accuracy"] == pytest.approx(
        100 * labels.count(top) / len(labels))
    # every dev sentence (4 pieces at most + [CLS] [SEP]) fits the tiny config's 16 tokens
    assert [r["over_seq_len"] for r in results["runs"]] == [0, 0]
    md = (tmp_path / "results.md").read_text()
    assert "| sst2 | accuracy | scratch | 2 |" in md and md == capsys.readouterr().out
    assert (tmp_path / "scores.png").stat().st_size > 10_000


def test_a_workdir_that_is_not_glue_is_named(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"task": {"name": "masked_lm"}}))
    with pytest.raises(SystemExit, match=r"--workdirs: .*run is not a GLUE run"):
        _report().main([f"--workdirs={tmp_path / 'run'}", f"--out={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists()


def test_previous_results_join_the_table_and_a_fresh_workdir_replaces_its_record(workdirs,
                                                                                 tmp_path):
    """--previous: seed 0's record comes back from an earlier results.json (its workdir may be
    gone), seed 1 is read anew and replaces the old record of the same workdir."""
    report = _report()
    report.main(["--workdirs=" + ",".join(map(str, workdirs)), f"--out={tmp_path / 'first'}"])
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    old = tmp_path / "old.json"
    stale = {**first, "runs": [first["runs"][0], {**first["runs"][1], "dev_score": -1.0}]}
    old.write_text(json.dumps(stale))
    report.main([f"--workdirs={workdirs[1]}", f"--previous={old}", f"--out={tmp_path / 'second'}"])
    second = json.loads((tmp_path / "second" / "results.json").read_text())
    assert second["rows"][0]["per_seed"] == first["rows"][0]["per_seed"]  # not the stale -1
    runs = {r["seed"]: r for r in second["runs"]}
    assert runs[0]["previous"] == str(old) and "previous" not in runs[1]
    report.main([f"--previous={old}", f"--out={tmp_path / 'third'}"])  # no workdir at all
    assert json.loads((tmp_path / "third" / "results.json").read_text())["rows"][0]["seeds"] == [0, 1]
    (tmp_path / "bad.json").write_text(json.dumps({"runs": [{"workdir": "x"}]}))
    with pytest.raises(SystemExit, match=r"--previous: .*bad.json: runs\[0\] has no field 'task'"):
        report.main([f"--previous={tmp_path / 'bad.json'}", f"--out={tmp_path / 'fourth'}"])
