"""The glue task: pair encoding with segment ids, fixed-shape batches, a resumable training
order, a tiny SST-2-like run whose loss falls and whose best checkpoint is chosen by the GLUE
metric, the STS-B regression path, and users' files with bad labels."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest

import llm_jax
from llm_jax.data.example_batches import ExampleBatches
from llm_jax.data.glue_data import FOLDERS, read_glue
from llm_jax.tasks.glue import Glue
from llm_jax.training.commands import train
from llm_jax.training.metrics import read_metrics
from llm_jax.training.trainer import BEST_DIR
from tests.conftest import REPO, load_config, require_real_data

VOCAB = "tokenizers/bert-base-uncased/vocab.txt"
POSITIVE, NEGATIVE = ["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]
FILLER = "the a film movie was is it this plot story acting and very quite".split()
WORDS = POSITIVE + NEGATIVE + FILLER


def write_sst2(path, n, seed=0):
    """SST-2's layout: two filler words and one word that gives the label away."""
    rng = np.random.default_rng(seed)
    lines = ["sentence\tlabel"]
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(FILLER, 2)) + [str(rng.choice(POSITIVE if y else NEGATIVE))]
        rng.shuffle(words)
        lines.append(" ".join(words) + f"\t{y}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_stsb(path, n, seed=0):
    """STS-B's layout; the score is 5 for a sentence paired with itself, else 0 to 2."""
    rng = np.random.default_rng(seed)
    lines = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for i in range(n):
        a = " ".join(rng.choice(WORDS, 4))
        same = bool(rng.integers(2))
        b = a if same else " ".join(rng.choice(WORDS, 4))
        score = 5.0 if same else float(rng.uniform(0, 2))
        lines.append(f"{i}\tmain-news\tx\t2017\t{i}\tnone\tnone\t{a}\t{b}\t{score:.3f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tiny(tmp_path, task="sst2", n_train=200, n_dev=40):
    """configs/glue.py:tiny on TSVs written in tmp_path, with a WordPiece vocabulary fitted
    on the training sentences (no data directory needed)."""
    write = write_stsb if task == "stsb" else write_sst2
    write(tmp_path / "train.tsv", n_train, seed=1)
    write(tmp_path / "dev.tsv", n_dev, seed=2)
    c = load_config("glue", f"tiny,{task}")
    c.task.update(train_file=str(tmp_path / "train.tsv"), eval_file=str(tmp_path / "dev.tsv"))
    c.data.update(vocab_file="fit", vocab_size=200)
    return c


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glue_sst2")
    c = tiny(tmp)
    summary = train(c, str(tmp / "run"))
    return c, tmp / "run", summary


def test_tiny_sst2_run_learns_and_keeps_the_best_checkpoint_by_the_glue_metric(sst2_run):
    c, workdir, summary = sst2_run
    rows = list(read_metrics(workdir / "metrics.jsonl"))
    evals = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30, 40, 50]
    assert {"eval/loss", "eval/accuracy", "eval/glue_accuracy", "eval/glue_score"} <= evals[0].keys()
    assert evals[-1]["eval/loss"] < evals[0]["eval/loss"] - 0.2
    train_rows = [r for r in rows if "train/loss" in r]
    assert np.mean([r["train/loss"] for r in train_rows[-2:]]) < train_rows[0]["train/loss"]
    assert summary["eval/glue_accuracy"] >= 90.0
    # GLUE's accuracy is over the whole split (0-100); the batch metric agrees with it there
    assert summary["eval/glue_accuracy"] == pytest.approx(100 * summary["eval/accuracy"])
    assert summary["eval/glue_score"] == summary["eval/glue_accuracy"]
    best = max(r["eval/glue_score"] for r in evals)
    assert c.train.best_metric == "eval/glue_score" and summary["best/eval/glue_score"] == best
    first_best = next(r["step"] for r in evals if r["eval/glue_score"] == best)
    assert os.listdir(workdir / BEST_DIR) == [str(first_best)]
    model, tokenizer, _ = llm_jax.load(str(workdir))
    assert tokenizer.vocab_size == model.backbone.embed.table.shape[0]


def test_pair_segment_ids_with_the_bert_vocabulary(tmp_path):
    root = require_real_data(VOCAB)
    (tmp_path / "train.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n0\tA cat sat.\tIt sat\tentailment\n"
        "1\tDogs bark very loudly at the moon every night\tcats\tnot_entailment\n", encoding="utf-8")
    c = load_config("glue", "tiny,rte")
    c.task.update(train_file=str(tmp_path / "train.tsv"), eval_file=str(tmp_path / "train.tsv"))
    c.data.update(vocab_file=str(root / VOCAB), seq_len=10)  # truncates row 1: 9 + 1 + 3 > 10
    task = Glue(c, str(tmp_path / "w"))
    batch = next(iter(task.eval_batches(8)))
    cls_, sep = task.tokenizer.special_ids["cls"], task.tokenizer.special_ids["sep"]
    row = batch["input_ids"][0]
    pieces = [task.tokenizer.id_to_token(i) for i in row[:batch["mask"][0].sum()]]
    assert pieces == ["[CLS]", "a", "cat", "sat", ".", "[SEP]", "it", "sat", "[SEP]"]
    np.testing.assert_array_equal(batch["segment_ids"][0], [0, 0, 0, 0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(batch["mask"][0], [True] * 9 + [False])
    assert row[0] == cls_ and row[5] == sep and row[9] == task.tokenizer.special_ids["pad"]
    # longest-first truncation keeps both texts and both [SEP]s at exactly seq_len tokens
    assert batch["mask"][1].all() and batch["input_ids"][1][-1] == sep
    assert batch["segment_ids"][1][-2:].tolist() == [1, 1]
    # fixed shapes: the batch of 8 holds 2 real rows and 6 of weight 0
    assert batch["input_ids"].shape == (8, 10) and batch["weights"].tolist() == [1, 1] + [0] * 6
    assert batch["labels"].tolist()[:2] == [0, 1]  # entailment, not_entailment
    assert len(task.train) == 2  # read when first needed
    record = json.loads((tmp_path / "w" / "data_files.json").read_text())
    assert "glue.train" in record["splits"] and "glue.dev" in record["splits"]


def test_training_order_is_seeded_and_resumable(sst2_run):
    c, workdir, _ = sst2_run
    task = Glue(c, str(workdir))  # the saved tokenizer, the recorded files
    a = ExampleBatches(task.train, batch_size=64, seed=3)
    first = [next(a)["input_ids"] for _ in range(5)]
    state = a.get_state()
    after = [next(a)["input_ids"] for _ in range(3)]
    b = ExampleBatches(task.train, batch_size=64, seed=3)
    b.set_state(state)
    for x, y in zip(after, [next(b)["input_ids"] for _ in range(3)]):
        np.testing.assert_array_equal(x, y)
    # an epoch (200 examples: 3.125 batches) sees every example once, each in its own order
    assert sorted(a.order(0).tolist()) == list(range(200)) and a.steps_per_epoch == 200 / 64
    assert not np.array_equal(a.order(0), a.order(1))
    np.testing.assert_array_equal(ExampleBatches(task.train, batch_size=64, seed=3).batch(4)["input_ids"],
                                  first[4])  # a function of (seed, step)
    assert not np.array_equal(ExampleBatches(task.train, batch_size=64, seed=4).batch(0)["input_ids"],
                              first[0])
    with pytest.raises(ValueError, match="`batch_size` is 64"):
        ExampleBatches(task.train, batch_size=32, seed=3).set_state(state)


def test_stsb_regression(tmp_path):
    c = tiny(tmp_path, "stsb", n_train=64, n_dev=24)
    assert c.model.num_labels == 1
    c.train.update(steps=10, eval_every=5)
    summary = train(c, str(tmp_path / "run"))
    for key in ("glue_pearson", "glue_spearmanr", "glue_combined_score", "glue_score", "loss"):
        assert math.isfinite(summary[f"eval/{key}"]), key
    assert "eval/accuracy" not in summary
    assert summary["eval/glue_score"] == pytest.approx(
        (summary["eval/glue_pearson"] + summary["eval/glue_spearmanr"]) / 2)
    c.model.num_labels = 2
    with pytest.raises(ValueError, match="glue_task='stsb' is a regression: one score: set "
                                         "config.model.num_labels=1"):
        Glue(c, str(tmp_path / "other"))


def test_bad_label_in_a_users_tsv_is_the_readers_one_line_error(tmp_path):
    c = tiny(tmp_path)
    lines = (tmp_path / "train.tsv").read_text().split("\n")
    lines[2] = "a fine film\tpositive"
    (tmp_path / "train.tsv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError) as e:
        Glue(c, str(tmp_path / "w"))
    assert str(e.value) == (f"{tmp_path / 'train.tsv'}:3: field 'label': expected one of '0', "
                            "'1', got 'positive'")


def test_bad_configs_name_the_field(tmp_path):
    c = tiny(tmp_path)
    c.data.tokenizer = "char"
    with pytest.raises(ValueError, match="config.data.tokenizer='char': the glue task"):
        Glue(c, str(tmp_path / "w"))
    c = tiny(tmp_path)
    c.data.seq_len = 100
    with pytest.raises(ValueError, match=r"raise config.model.backbone.max_len=64"):
        Glue(c, str(tmp_path / "w"))
    c = tiny(tmp_path)
    c.task.glue_task = "mnli"
    with pytest.raises(ValueError, match="GLUE task 'mnli'"):
        Glue(c, str(tmp_path / "w"))


def test_unlabelled_test_split_can_be_predicted_not_scored(sst2_run, tmp_path):
    c, workdir, _ = sst2_run
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\ta good film\n1\ta bad film\n")
    c = c.copy_and_resolve_references()
    c.task.test_file = str(tmp_path / "test.tsv")
    c.data.test_split = "test"
    task = Glue(c, str(workdir))
    test = task.split_tokens("test")
    model, _, _ = llm_jax.load(str(workdir))
    assert task.predict(model, test).tolist() == [1, 0]
    with pytest.raises(ValueError, match="has no labels"):
        next(iter(task.eval_batches(8, tokens=test)))


@pytest.mark.real_data("glue/SST-2", VOCAB)
def test_real_sst2_subset_and_config_sizes(tmp_path, real_data_dir):
    spec = importlib.util.spec_from_file_location("glue_config", REPO / "configs" / "glue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = load_config("glue", "tiny")
    c.task.update(train_examples=50, eval_examples=20)
    task = Glue(c, str(tmp_path / "w"))
    assert len(task.train) == 50 and len(task.valid) == 20
    assert task.vocab_size == 30522
    # every example of GLUE's train.tsv files is read (QNLI's train.tsv is not shared)
    sizes = {"cola": 8551, "sst2": 67349, "mrpc": 3668, "stsb": 5749, "rte": 2490, "wnli": 635}
    for name, size in sizes.items():
        if (real_data_dir / "glue" / FOLDERS[name] / "train.tsv").is_file():
            assert size == len(read_glue(name, "train")), name
    mini = module.get_config("bert_mini,cola")
    # BERT's warm-up over 10% of the steps, whatever the training file's size
    assert (mini.optimizer.warmup_steps, mini.optimizer.warmup_fraction) == (0, 0.1)
    assert mini.model.num_labels == 2
