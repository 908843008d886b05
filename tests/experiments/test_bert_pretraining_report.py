"""experiments/bert_pretraining/report.py on a tiny BERT run: whole-split metrics of both
splits, a unigram baseline on the same masked tokens, the table and the plot."""

import json
import math

import numpy as np
import pytest

from llm_jax.training.commands import train
from tests.conftest import load_script, require_real_data
from tests.tasks.test_masked_lm import VOCAB, tiny


def _report():
    return load_script("experiments/bert_pretraining/report.py")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = require_real_data("wikitext-2", VOCAB)
    corpus = tmp_path_factory.mktemp("wikitext2_three_splits")
    for split, n in (("train", 60), ("valid", 78), ("test", 60)):
        with open(root / "wikitext-2" / f"wiki.{split}.tokens", encoding="utf-8") as f:
            lines = f.read().split("\n")[:n]
        (corpus / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_JAX_DATA_DIR", str(root))
        out = tmp_path_factory.mktemp("bert_report") / "run"
        train(tiny(corpus), str(out))
    return out


def test_report_table_plot_and_baseline(workdir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(require_real_data("wikitext-2", VOCAB)))
    report = _report()
    report.main([f"--workdirs={workdir}", "--labels=tiny BERT", f"--out={tmp_path}"])
    (rec,) = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert rec["name"] == "tiny BERT" and rec["steps"] == 30 and rec["params"] > 0
    assert rec["recipe"] == {"packing": "pairs", "masking": "static", "sentence_task": "nsp",
                             "tokenizer": "wordpiece"}
    for split in ("valid", "test"):
        m = {k[len(split) + 1:]: v for k, v in rec.items() if k.startswith(split + "_")}
        assert 0 <= m["mlm_accuracy"] <= 1 and 0 <= m["sentence_accuracy"] <= 1
        assert math.isclose(m["perplexity"], math.exp(m["mlm_loss"]), rel_tol=1e-6)
        assert m["masked_tokens"] > 0 and 0 < m["unigram_mlm_accuracy"] < 1
    # the two splits are different text, so their baselines differ
    assert rec["valid_masked_tokens"] != rec["test_masked_tokens"]
    assert sorted(rec["evals"], key=int) == ["15", "30"]  # tiny's eval_every 15
    assert rec["evals"]["30"]["mlm_accuracy"] == pytest.approx(rec["valid_mlm_accuracy"])
    table = (tmp_path / "results.md").read_text().splitlines()
    assert table[2].startswith("| tiny BERT | pairs, static masks, nsp")
    assert table[4:] == ["| step | tiny BERT |", "|---:|---|",
                         f"| 15 | {100 * rec['evals']['15']['mlm_accuracy']:.2f}% / "
                         f"{rec['evals']['15']['perplexity']:.1f}, NSP "
                         f"{100 * rec['evals']['15']['sentence_accuracy']:.1f}% |",
                         table[7]]
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_unigram_cross_entropy_is_at_least_the_labels_entropy(workdir):
    """The baseline's perplexity is a cross-entropy of the training unigram against the masked
    labels, so it can't be below the labels' own entropy; its accuracy is the share of the
    training split's most frequent token among them."""
    from llm_jax.training.experiment import Experiment, load_config

    report = _report()
    exp = Experiment(load_config(workdir), str(workdir))
    base = report.unigram_baseline(exp.task, 8, "valid")
    labels = np.concatenate([np.asarray(b["mlm_ids"])[np.asarray(b["mlm_weights"]) > 0]
                             for b in exp.task.eval_batches(8, tokens=exp.task.split_tokens("valid"))])
    assert len(labels) == base["masked_tokens"]
    p = np.bincount(labels) / len(labels)
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    assert math.log(base["unigram_perplexity"]) >= entropy - 1e-9
    assert math.isclose(base["unigram_mlm_accuracy"],
                        float(np.mean(labels == base["most_frequent_id"])))


def test_bad_workdir_names_the_flag(tmp_path):
    with pytest.raises(SystemExit, match="--workdirs: .*metrics.jsonl not found"):
        _report().main([f"--workdirs={tmp_path}", f"--out={tmp_path / 'out'}"])
