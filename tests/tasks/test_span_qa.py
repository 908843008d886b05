"""The span_qa task (SQuAD v1.1): a tiny run on the real dev file's default split whose evals
report EM/F1 and whose best checkpoint is chosen by F1, the loss against NumPy, gold logits
through the task's own decoding, and which file and articles each split reads."""

import json

import numpy as np
import pytest

import llm_jax
from llm_jax.data.corpora import UnknownSplitError
from llm_jax.data.example_batches import padded_batches
from llm_jax.data.squad_data import read_squad
from llm_jax.tasks.span_qa import SpanQA
from llm_jax.training.commands import evaluate_workdir, train
from llm_jax.training.metrics import read_metrics
from llm_jax.training.trainer import BEST_DIR
from tests.conftest import load_config, require_real_data

DEV = "squad/dev-v1.1.json"
VOCAB = "tokenizers/bert-base-uncased/vocab.txt"


@pytest.fixture(scope="module")
def data_dir():
    return require_real_data(DEV, VOCAB)


@pytest.fixture(scope="module")
def squad_run(data_dir, tmp_path_factory):
    """configs/squad.py:tiny on the default protocol (the dev file's first 38 articles train,
    the last 10 evaluate), cut to 200 training and 40 eval questions."""
    workdir = tmp_path_factory.mktemp("squad") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_JAX_DATA_DIR", str(data_dir))
        summary = train(load_config("squad", "tiny"), str(workdir))
    return workdir, summary


@pytest.fixture
def run_task(squad_run, data_dir, monkeypatch):
    """(the task rebuilt from the run's workdir, its trained model)."""
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(data_dir))
    workdir, _ = squad_run
    model, _, config = llm_jax.load(str(workdir))
    return SpanQA(config, str(workdir)), model


def test_tiny_run_reports_em_f1_and_keeps_the_best_checkpoint_by_f1(squad_run):
    workdir, summary = squad_run
    rows = list(read_metrics(workdir / "metrics.jsonl"))
    evals = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30, 40]
    for r in evals:
        assert {"eval/squad_exact_match", "eval/squad_f1", "eval/start_accuracy",
                "eval/end_accuracy", "eval/start_loss", "eval/end_loss"} <= r.keys()
        assert 0 <= r["eval/squad_exact_match"] <= r["eval/squad_f1"] <= 100
    train_rows = [r for r in rows if "train/loss" in r]
    assert train_rows[-1]["train/loss"] < train_rows[0]["train/loss"]
    f1 = [r["eval/squad_f1"] for r in evals]
    assert summary["best/eval/squad_f1"] == max(f1)
    best_step = evals[int(np.argmax(f1))]["step"]
    assert [p.name for p in (workdir / BEST_DIR).iterdir() if p.name.isdigit()] == [str(best_step)]
    record = json.loads((workdir / "data_files.json").read_text())["splits"]
    assert record["squad.train"]["path"] == record["squad.valid"]["path"]
    assert record["squad.train"]["path"].endswith(DEV)


def test_eval_of_the_workdir_gives_the_final_metrics_of_training(squad_run, data_dir, monkeypatch):
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(data_dir))
    workdir, summary = squad_run
    out = evaluate_workdir(str(workdir))
    assert out["step"] == 40 and out["split"] == "valid"
    for key in ("eval/loss", "eval/squad_exact_match", "eval/squad_f1"):
        assert out[key] == pytest.approx(summary[key], rel=1e-5, abs=1e-6)


def test_default_protocol_trains_on_the_first_38_articles_and_evaluates_on_the_rest(run_task):
    task, _ = run_task
    train_q, eval_q = task.train.examples, task.valid.examples
    assert len(train_q) == 200 and len(eval_q) == 40  # tiny's train_examples, eval_examples
    assert max(e.article for e in train_q) < 38 <= min(e.article for e in eval_q)
    assert eval_q[0].title == "Intergovernmental_Panel_on_Climate_Change"
    with pytest.raises(UnknownSplitError, match="'test'.*'train'.*'valid'"):
        task.split_tokens("test")


def test_loss_is_the_mean_of_the_start_and_end_cross_entropies(run_task):
    task, model = run_task
    windows = task.windows(task.valid.examples[:2], "two", "dev")
    batch = next(padded_batches(windows, len(windows) + 3))  # real rows, then 3 of weight 0
    w = batch["weights"]
    assert w.sum() == len(windows) and (batch["start_positions"][w > 0] > 0).any()
    loss, metrics = task.loss(model, batch)
    out = model(batch["input_ids"], batch["segment_ids"], batch["mask"])

    def ce(logits, gold):  # per row, over all max_len positions (HF's)
        logits = np.asarray(logits, np.float64)
        top = logits.max(-1)
        lse = top + np.log(np.exp(logits - top[:, None]).sum(-1))
        return lse - logits[np.arange(len(gold)), gold]

    start = (ce(out["start_logits"], batch["start_positions"]) * w).sum() / w.sum()
    end = (ce(out["end_logits"], batch["end_positions"]) * w).sum() / w.sum()
    assert float(loss) == pytest.approx(0.5 * (start + end), rel=1e-5)
    total, n = metrics["loss"]
    assert float(n) == w.sum() and float(total) / float(n) == pytest.approx(float(loss), rel=1e-6)
    acc_sum, acc_n = metrics["start_accuracy"]
    right = np.argmax(np.asarray(out["start_logits"]), -1) == batch["start_positions"]
    assert float(acc_sum) == (right * w).sum() and float(acc_n) == w.sum()


def test_gold_logits_through_the_eval_decoding_score_100_where_the_answer_fits(run_task):
    task, _ = run_task
    windows = task.valid  # 128-token windows sharing 32: many questions span several
    f = windows.features
    assert len(windows) > len(windows.examples)

    def gold_logits(f):
        rng = np.random.default_rng(0)
        start = rng.normal(size=f.input_ids.shape).astype(np.float32)
        end = rng.normal(size=f.input_ids.shape).astype(np.float32)
        rows = np.arange(len(f))
        start[rows, f.start_positions] += 20
        end[rows, f.end_positions] += 20
        return start, end

    fits = []  # a window holds the answer, within max_answer_len tokens, on token boundaries
    for i, e in enumerate(windows.examples):
        a = e.answers[0]
        chars = (a["answer_start"], a["answer_start"] + len(a["text"]))
        for w in np.flatnonzero((f.example_index == i) & (f.start_positions > 0)):
            s, t = f.start_positions[w], f.end_positions[w]
            if t - s < task.cfg.max_answer_len and (f.offsets[w, s, 0], f.offsets[w, t, 1]) == chars:
                fits.append(e)
                break
    assert len(fits) >= 0.8 * len(windows.examples)
    fitted = task.windows(fits, "fits", "dev")
    scores = task.span_scores(fitted, *gold_logits(fitted.features))
    assert scores == {"squad_exact_match": 100.0, "squad_f1": 100.0}


def squad_file(path, articles):
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return str(path)


def test_given_train_file_trains_on_all_of_it_and_evaluates_on_all_of_eval_file(
        data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(data_dir))
    articles = json.loads((data_dir / DEV).read_text(encoding="utf-8"))["data"]
    train_file = squad_file(tmp_path / "train-v1.1.json", articles[:2])
    eval_file = squad_file(tmp_path / "dev-v1.1.json", articles[2:3])
    n_questions = [len(read_squad(p)) for p in (train_file, eval_file)]
    c = load_config("squad", "tiny")
    c.task.update(train_file=train_file, eval_file=eval_file, train_examples=0, eval_examples=0)
    task = SpanQA(c, str(tmp_path / "run"))
    assert [len(task.train.examples), len(task.valid.examples)] == n_questions
    # one file for both splits: split by article at first_eval_article
    c.task.update(eval_file=train_file, first_eval_article=1)
    task = SpanQA(c, str(tmp_path / "run2"))
    assert {e.article for e in task.train.examples} == {0}
    assert {e.article for e in task.valid.examples} == {1}
    c.task.update(first_eval_article=2)
    with pytest.raises(ValueError, match="first_eval_article=2: .* has 2 articles"):
        SpanQA(c, str(tmp_path / "run3"))
    # given train_file and no eval_file: all of the data directory's dev set evaluates, from
    # its first article on
    c.task.update(eval_file="", first_eval_article=38, eval_examples=5)
    task = SpanQA(c, str(tmp_path / "run4"))
    assert len(task.train.examples) == n_questions[0]
    assert {e.article for e in task.valid.examples} == {0}
    assert task.valid.path == str(data_dir / DEV)
