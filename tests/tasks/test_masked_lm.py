"""The masked-LM task on slices of WikiText-2 with the real BERT vocabulary: a tiny BERT run
whose loss falls and which resumes mid-epoch to exactly the same losses, RoBERTa's and
ALBERT's recipes, whole-word masking with WordPiece, llm_jax.load, and bad configs."""

import json
import math
import shutil

import jax
import numpy as np
import pytest

import llm_jax
from llm_jax.tasks.masked_lm import MaskedLM
from llm_jax.training.commands import train
from llm_jax.training.init_from import read_source_params
from llm_jax.training.metrics import read_metrics
from tests.conftest import load_config, require_real_data

VOCAB = "tokenizers/bert-base-uncased/vocab.txt"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two documents of WikiText-2's train and valid splits each (about 120 and 90 pairs of
    32 tokens), in a corpus directory."""
    root = require_real_data("wikitext-2", VOCAB)
    out = tmp_path_factory.mktemp("wikitext2_slice")
    for split, n in (("train", 60), ("valid", 78)):
        with open(root / "wikitext-2" / f"wiki.{split}.tokens", encoding="utf-8") as f:
            lines = f.read().split("\n")[:n]
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture
def data_dir(monkeypatch):
    root = require_real_data("wikitext-2", VOCAB)
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
    return root


def tiny(corpus, variant="tiny"):
    """A variant's recipe at the tiny variant's size and budget."""
    c, small = load_config("bert_wikitext2", variant), load_config("bert_wikitext2", "tiny")
    for field in ("num_layers", "embed_dim", "num_heads", "mlp_dim"):
        c.model[field] = small.model[field]
    c.model.max_len = small.model.max_len
    c.data.update(corpus=str(corpus), seq_len=32, test_split="")
    c.optimizer.update(lr=small.optimizer.lr, warmup_steps=3)
    c.train.update(small.train)
    c.task.dupe_factor = small.task.dupe_factor if c.task.masking == "static" else 1
    return c


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """The tiny config trained for 30 steps (checkpoints at 15 and 30)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_JAX_DATA_DIR", str(require_real_data("wikitext-2", VOCAB)))
        c = tiny(corpus)
        workdir = tmp_path_factory.mktemp("mlm") / "ref"
        summary = train(c, str(workdir))
    return c, workdir, summary


def test_tiny_run_metrics_and_falling_loss(reference):
    _, workdir, summary = reference
    for key in ("loss", "mlm_loss", "mlm_accuracy", "sentence_loss", "sentence_accuracy",
                "perplexity"):
        assert np.isfinite(summary[f"eval/{key}"]), key
    assert summary["eval/perplexity"] == pytest.approx(math.exp(summary["eval/mlm_loss"]))
    rows = [r for r in read_metrics(workdir / "metrics.jsonl") if "train/loss" in r]
    assert {"train/mlm_loss", "train/mlm_accuracy", "train/sentence_loss",
            "train/sentence_accuracy", "train/tokens_per_sec"} <= rows[-1].keys()
    first, last = rows[0], rows[-1]
    assert last["train/mlm_loss"] < first["train/mlm_loss"] - 1.0
    assert last["train/loss"] < first["train/loss"]
    assert 0 <= summary["eval/sentence_accuracy"] <= 1 and summary["step"] == 30


def test_killed_and_resumed_mid_epoch_gives_the_same_losses(reference, data_dir, tmp_path,
                                                            capsys):
    c, ref, _ = reference
    with open(ref / "checkpoints" / "15" / "data" / "metadata") as f:
        data_state = json.load(f)
    assert 0 < (15 * 8) % data_state["num_instances"]  # the checkpoint is inside an epoch
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    shutil.rmtree(run / "checkpoints" / "30")  # as if killed after the checkpoint at 15
    capsys.readouterr()
    train(c, str(run))
    assert "resumed from" in capsys.readouterr().out
    a = {r["step"]: r for r in read_metrics(ref / "metrics.jsonl")}
    b = {r["step"]: r for r in read_metrics(run / "metrics.jsonl")}
    for step in (20, 25, 30):
        for key in ("train/loss", "train/mlm_loss", "train/sentence_loss"):
            assert a[step][key] == b[step][key], (step, key)
    assert a[30]["eval/loss"] == b[30]["eval/loss"]
    pa, pb = read_source_params(str(ref)), read_source_params(str(run))
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_array_equal(x, y)


def test_load_needs_only_the_workdir(reference, tmp_path, monkeypatch):
    _, ref, _ = reference
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "nothing"))
    model, tokenizer, config = llm_jax.load(str(ref))
    assert tokenizer.kind == "wordpiece" and config.task.name == "masked_lm"
    ids = tokenizer.encode_batch(["the cat sat on the [MASK] ."])
    h = model.encode(ids["input_ids"], ids["segment_ids"], ids["mask"])
    assert model.mlm_logits(h).shape == (1, ids["input_ids"].shape[1], tokenizer.vocab_size)


@pytest.mark.parametrize("variant", ["roberta_mini", "albert_mini"])
def test_roberta_and_albert_recipes_train(variant, corpus, data_dir, tmp_path):
    c = tiny(corpus, variant)
    c.train.update(steps=4, eval_every=4, checkpoint_every=4, log_every=2)
    if variant == "albert_mini":
        c.data.update(vocab_file="fit", vocab_size=600)  # a WordPiece vocabulary learnt here
    summary = train(c, str(tmp_path / variant))
    assert np.isfinite(summary["eval/mlm_loss"])
    assert ("eval/sentence_accuracy" in summary) == (variant == "albert_mini")
    task = MaskedLM(c, str(tmp_path / variant))
    assert task.tokenizer.kind == ("roberta_bpe" if variant == "roberta_mini" else "wordpiece")
    if variant == "albert_mini":
        assert task.vocab_size <= 600
    else:  # full sentences: one segment, <s> ... </s>, packed full
        batch = next(iter(task.train_batches(8, 0)))
        assert not batch["segment_ids"].any() and "sentence_label" not in batch
        assert batch["mask"].sum(1).mean() > 0.6 * 32
        assert np.all(batch["input_ids"][:, 0] == task.ids["cls"])


def test_whole_word_masking_with_wordpiece(corpus, data_dir, tmp_path):
    c = tiny(corpus)
    c.task.update(whole_word=True, mask_prob=0.3)
    task = MaskedLM(c, str(tmp_path / "wwm"))
    batch = task.train_batches(64, 0).batch(0)
    tok = task.tokenizer
    chosen = np.zeros_like(batch["mask"])
    w = batch["mlm_weights"] > 0
    chosen[np.repeat(np.arange(64), w.sum(1)), batch["mlm_positions"][w]] = True
    original = batch["input_ids"].copy()
    original[chosen] = batch["mlm_ids"][w]
    pieces = np.vectorize(lambda i: tok.id_to_token(int(i)).startswith("##"))(original)
    cont = pieces[:, 1:] & batch["mask"][:, 1:]
    assert cont.sum() > 50
    np.testing.assert_array_equal(chosen[:, 1:][cont], chosen[:, :-1][cont])


@pytest.mark.parametrize("field, value, message", [
    ("task.masking", "sometimes", "config.task.masking='sometimes'"),
    ("task.packing", "docs", "config.task.packing='docs'"),
    ("data.vocab_file", "/no/such/vocab.txt", "config.data.vocab_file='/no/such/vocab.txt'"),
    ("data.tokenizer", "char", "config.data.tokenizer='char'"),
    ("task.sentence_task", "nsp", "needs sentence pairs"),  # with full_sentences below
])
def test_bad_config_values_fail_with_one_line(field, value, message, corpus, data_dir,
                                              tmp_path):
    c = tiny(corpus, "roberta_mini" if field == "task.sentence_task" else "tiny")
    if field == "task.sentence_task":
        c.model.update(sentence_head="nsp", pooler=True)
    section, name = field.split(".")
    c[section][name] = value
    with pytest.raises(ValueError, match="^[^\n]*$") as e:
        MaskedLM(c, str(tmp_path / "bad"))
    assert message in str(e.value)
