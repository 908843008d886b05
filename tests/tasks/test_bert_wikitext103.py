"""configs/bert_wikitext103.py: the published shapes, the built-in corpus name read from the
data directory (a WikiText-2 slice laid out as WikiText-103 here), and the message when the
files are not there."""

import os

import pytest

from llm_jax.training.commands import train
from tests.conftest import load_config, require_real_data
from tests.models.test_bert import count
from tests.tasks.test_masked_lm import VOCAB

WIKITEXT103 = "wikitext-103"


@pytest.mark.parametrize("variant,millions,tol", [("mini", 11.3, 0.1), ("base", 110, 1.2),
                                                   ("roberta_base", 125, 1.3)])
def test_variants_have_the_published_sizes(variant, millions, tol):
    c = load_config("bert_wikitext103", variant)
    assert c.data.corpus == WIKITEXT103
    vocab = {"wordpiece": 30522, "roberta_bpe": 50265}[c.data.tokenizer]
    c.model.vocab_size = vocab  # the tokenizer's, as the task sets it
    assert count(c.model) / 1e6 == pytest.approx(millions, abs=tol)


def test_recipes_follow_bert_and_roberta():
    base, roberta = load_config("bert_wikitext103", "base"), load_config("bert_wikitext103", "roberta_base")
    assert (base.task.sentence_task, base.task.masking, base.task.dupe_factor) == ("nsp", "static", 10)
    assert (roberta.task.sentence_task, roberta.task.masking, roberta.task.packing) == (
        "", "dynamic", "full_sentences")
    assert roberta.model.position_ids == "cumsum_mask" and roberta.optimizer.b2 == 0.98
    for c in (base, roberta):
        assert (c.train.batch_size, c.optimizer.lr, c.optimizer.warmup_steps) == (256, 1e-4, 10_000)
    with pytest.raises(ValueError, match="bert_wikitext103.py:large: unknown variant"):
        load_config("bert_wikitext103", "large")


def _shrunk(c):
    c.model.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, max_len=64,
                   dropout_rate=0.0, attention_dropout=0.0)
    c.data.update(seq_len=32)
    c.task.dupe_factor = 2
    c.optimizer.update(lr=3e-3, warmup_steps=2)
    c.train.update(steps=6, batch_size=8, log_every=3, eval_every=6, eval_batches=2,
                   checkpoint_every=6, progress_bar=False)
    return c


def test_trains_from_the_data_directory(tmp_path, monkeypatch):
    real = require_real_data("wikitext-2", VOCAB)
    corpus = tmp_path / "data" / WIKITEXT103
    corpus.mkdir(parents=True)
    for split, n in (("train", 60), ("valid", 78), ("test", 60)):
        with open(real / "wikitext-2" / f"wiki.{split}.tokens", encoding="utf-8") as f:
            lines = f.read().split("\n")[:n]
        (corpus / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.symlink(real / "tokenizers", tmp_path / "data" / "tokenizers")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    summary = train(_shrunk(load_config("bert_wikitext103", "mini")), str(tmp_path / "run"))
    assert summary["step"] == 6 and 0 <= summary["test/mlm_accuracy"] <= 1


def test_missing_files_say_where_to_get_them(tmp_path, monkeypatch):
    (tmp_path / "tokenizers").symlink_to(require_real_data(VOCAB) / "tokenizers")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path))
    with pytest.raises(Exception, match=r"wikitext-103.*wikitext-103-v1\.zip"):
        train(_shrunk(load_config("bert_wikitext103", "mini")), str(tmp_path / "run"))
