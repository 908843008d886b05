"""experiments/conll2003_ner/report.py and squad/report.py (llm_jax/reproduce/backbone_table.py):
two seeds of a tiny NER run with a test split, averaged per backbone with the gap to BERT-base;
the SQuAD columns read at the best evaluation's step; errors that name the workdir."""

import json

import pytest

from llm_jax.training.commands import train
from tests.conftest import load_script
from tests.tasks.test_tagging import tiny


@pytest.fixture(scope="module")
def ner_workdirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner_table")
    out = []
    for seed in (0, 1):
        c = tiny(tmp)
        c.seed = seed
        c.task.test_file = c.task.eval_file
        c.data.test_split = "test"
        train(c, str(tmp / f"seed{seed}"))
        out.append(tmp / f"seed{seed}")
    return out


def test_ner_table_averages_seeds_and_states_the_gap_to_bert_base(ner_workdirs, tmp_path, capsys):
    report = load_script("experiments/conll2003_ner/report.py")
    report.main(["--workdirs=" + ",".join(map(str, ner_workdirs)), f"--out={tmp_path}"])
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["rows"]
    summaries = [json.loads((w / "summary.json").read_text()) for w in ner_workdirs]
    f1 = [s["test/ner_f1"] for s in summaries]
    assert row["backbone"] == "scratch" and row["seeds"] == [0, 1]
    assert row["columns"]["test_f1"]["per_seed"] == f1
    assert row["test_f1"] == pytest.approx(sum(f1) / 2)
    assert row["columns"]["test_f1"]["gap_to_reference"] == pytest.approx(row["test_f1"] - 92.4)
    assert row["columns"]["test_precision"]["gap_to_reference"] is None
    # the best dev F1 is the value at the best evaluation, which summary.json also records
    assert row["columns"]["dev_f1_best"]["per_seed"] == [s["best/eval/ner_f1"] for s in summaries]
    md = (tmp_path / "results.md").read_text()
    assert md.splitlines()[0] == ("| backbone | seeds | test_precision | test_recall | test_f1 | "
                                  "dev_f1_best | minutes |")
    assert f"| {row['test_f1']:.2f} ({min(f1):.2f}-{max(f1):.2f}) " \
           f"[{row['test_f1'] - 92.4:+.2f}] |" in md
    assert "| BERT-base (Devlin et al. 2019, Table 7) | - | - | - | 92.40 | - | - |" in md
    assert capsys.readouterr().out.endswith(md)
    assert (tmp_path / "scores.png").stat().st_size > 10_000


def _fake_squad_run(path, evals, summary):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({
        "task": {"name": "span_qa"}, "init_from": "runs/reproduce/squad/bert_mini", "seed": 0,
        "optimizer": {"lr": 1e-4}, "train": {"best_metric": "eval/squad_f1", "best_mode": "max"}}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    (path / "summary.json").write_text(json.dumps(summary))


def test_squad_columns_are_read_at_the_best_evaluation(tmp_path):
    evals = [{"step": 100, "eval/squad_exact_match": 20.0, "eval/squad_f1": 30.0},
             {"step": 200, "eval/squad_exact_match": 24.0, "eval/squad_f1": 35.0},
             {"step": 300, "eval/squad_exact_match": 26.0, "eval/squad_f1": 35.0},  # a tie: not kept
             {"step": 400, "eval/squad_exact_match": 25.0, "eval/squad_f1": 33.0}]
    _fake_squad_run(tmp_path / "run", evals, {"step": 400, "wall_time_sec": 60.0})
    report = load_script("experiments/squad/report.py")
    (row,) = report.main([f"--workdirs={tmp_path / 'run'}", f"--out={tmp_path / 'out'}"])
    assert row["backbone"] == "bert_mini" and (row["exact_match"], row["f1"]) == (24.0, 35.0)
    assert row["columns"]["f1"]["gap_to_reference"] == pytest.approx(35.0 - 88.52)
    run = json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]
    assert run["best_step"] == 200 and run["wall_minutes"] == 1.0


def test_a_run_of_another_task_or_unfinished_is_named(tmp_path):
    report = load_script("experiments/squad/report.py")
    _fake_squad_run(tmp_path / "run", [{"step": 1, "eval/squad_f1": 1.0}], {"step": 1})
    with pytest.raises(SystemExit, match=r"run: the best evaluation has no eval/squad_exact_match"):
        report.main([f"--workdirs={tmp_path / 'run'}", f"--out={tmp_path / 'out'}"])
    ner = load_script("experiments/conll2003_ner/report.py")
    with pytest.raises(SystemExit, match=r"run is not a token_tagging run .*'span_qa'"):
        ner.main([f"--workdirs={tmp_path / 'run'}", f"--out={tmp_path / 'out'}"])
    with pytest.raises(SystemExit, match="no workdir given"):
        ner.main([f"--out={tmp_path / 'out'}"])
