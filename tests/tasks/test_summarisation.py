"""Summarisation is the seq2seq task on SAMSum, scored with ROUGE; Lead-3 is its baseline."""

import importlib.util
import json

import pytest
from rouge_score import rouge_scorer

from llm_jax.evaluation.text_metrics import rouge, split_sentences
from llm_jax.training import commands
from tests.conftest import REPO, load_config, require_real_data


def test_rouge_is_rouge_score_with_stemming():
    hyps = ["Jerry will bring cookies. Amanda baked them.", "Nothing here"]
    refs = ["Amanda baked cookies. Jerry will bring some tomorrow.", "Paul will call Anna."]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
                                      use_stemmer=True)
    want = [scorer.score(split_sentences(r), split_sentences(h)) for h, r in zip(hyps, refs)]
    got = rouge(hyps, refs)
    for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert got[k] == pytest.approx(50 * (want[0][k].fmeasure + want[1][k].fmeasure))
    # Lsum scores sentence by sentence: the split is what makes it differ from L here
    assert got["rougeLsum"] != got["rougeL"]
    assert split_sentences("Hi! How are you? Fine.") == "Hi!\nHow are you?\nFine."
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        rouge(hyps, refs[:1])


@pytest.mark.real_data("samsum/test.json")
def test_lead3_matches_the_paper(real_data_dir, tmp_path):
    """Gliwa et al. (2019), Table 3: Lead-3 on SAMSum test, ROUGE-1 31.40, ROUGE-2 8.68."""
    spec = importlib.util.spec_from_file_location(
        "lead3", REPO / "experiments" / "samsum_summarisation" / "lead3.py")
    lead3 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lead3)
    out = tmp_path / "lead3.json"
    lead3.main(["--out", str(out)])
    result = json.loads(out.read_text())
    assert result["examples"] == 819
    assert result["rouge1"] == pytest.approx(31.4, abs=0.2)
    assert result["rouge2"] == pytest.approx(8.68, abs=0.1)
    committed = json.loads((REPO / "experiments/samsum_summarisation/results_lead3.json").read_text())
    assert committed == result  # the README's numbers are what the script writes


def test_summariser_trains_and_reports_rouge(tmp_path, monkeypatch):
    src = require_real_data("samsum/train.json", "samsum/val.json", "samsum/test.json")
    data = tmp_path / "data" / "samsum"
    data.mkdir(parents=True)
    for name, n in (("train", 300), ("val", 16), ("test", 16)):  # a slice, canonical layout
        rows = json.loads((src / "samsum" / f"{name}.json").read_text(encoding="utf-8"))[:n]
        (data / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    config = load_config("transformer_samsum", "tiny")
    summary = commands.train(config, str(tmp_path / "run"))
    for prefix in ("eval", "test"):
        for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
            assert 0 <= summary[f"{prefix}/{k}"] <= 100
    out = commands.translate_lines(str(tmp_path / "run"), ["Anna: hi\nBen: hello"], beam_size=2)
    assert len(out) == 1
    # the decoding table: Lead-3 and the model on the same split, in one run
    spec = importlib.util.spec_from_file_location(
        "rouge_table", REPO / "experiments" / "samsum_summarisation" / "rouge_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    out = tmp_path / "table" / "test.json"
    table.main(["--workdirs", str(tmp_path / "run"), "--split", "test", "--beams", "2",
                "--no_repeat", "0,2", "--out", str(out)])
    rows = json.loads(out.read_text())
    assert [(r["system"], r.get("no_repeat_ngram")) for r in rows] == [
        ("lead-3", None), (str(tmp_path / "run"), 0), (str(tmp_path / "run"), 2)]
    assert all(r["split"] == "test" and 0 <= r["rouge1"] <= 100 for r in rows)
    assert rows[1]["examples"] == 16 and "| lead-3 |" in out.with_suffix(".md").read_text()
