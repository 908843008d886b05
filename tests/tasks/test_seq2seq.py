"""The seq2seq task end to end on a slice of Multi30k: train, eval (BLEU), translate."""

import io
import json
import re

import numpy as np
import pytest
import sacrebleu

from llm_jax.training import commands
from tests.conftest import load_config, require_real_data

N = {"train": 400, "valid": 40, "test": 40}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import gzip

    names = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
    data = require_real_data(*(f"multi30k/{stem}.{lang}.gz" for stem in names.values()
                               for lang in ("de", "en"))) / "multi30k"
    root = tmp_path_factory.mktemp("m30k")
    for split, stem in names.items():
        for lang in ("de", "en"):
            with gzip.open(data / f"{stem}.{lang}.gz", "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(N[split])]
            (root / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
    config = load_config("transformer_multi30k", "tiny")
    config.data.corpus = str(root)
    workdir = tmp_path_factory.mktemp("run") / "w"
    summary = commands.train(config, str(workdir))
    return str(workdir), root, summary


def test_training_reports_loss_and_bleu_on_valid_and_test(run):
    workdir, _, summary = run
    for prefix in ("eval", "test"):
        for name in ("loss", "perplexity", "accuracy", "bleu", "bleu_lc"):
            assert np.isfinite(summary[f"{prefix}/{name}"]), (prefix, name)
    rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    # greedy BLEU at the periodic eval (step 10), beam search at the final one (step 20)
    assert [r["step"] for r in rows if "eval/bleu" in r] == [10, 20]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]


def test_eval_bleu_is_sacrebleu_of_the_translations(run):
    workdir, root, _ = run
    metrics = commands.evaluate_workdir(workdir, "test")
    src = (root / "test.de").read_text(encoding="utf-8").splitlines()
    refs = (root / "test.en").read_text(encoding="utf-8").splitlines()
    hyps = commands.translate_lines(workdir, src)  # the config's beam, as eval uses
    want = sacrebleu.corpus_bleu(hyps, [refs])
    assert metrics["split"] == "test"
    assert metrics["eval/bleu"] == pytest.approx(want.score, abs=1e-9)
    lower = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True)
    assert metrics["eval/bleu_lc"] == pytest.approx(lower.score, abs=1e-9)
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_translate_keeps_lines_in_order_and_handles_odd_input(run, capsys):
    workdir, root, _ = run
    src = (root / "valid.de").read_text(encoding="utf-8").splitlines()[:6]
    alone = [commands.translate_lines(workdir, [line], beam_size=2)[0] for line in src]
    long = " ".join(["Hund"] * 200)
    lines = [src[0], "", "Zwei Männer 日本語 ✓ spielen.", long] + src[1:]
    out = commands.translate_lines(workdir, lines, beam_size=2)
    assert len(out) == len(lines) and out[1] == ""
    # batching and sorting by length change nothing: each line as if translated alone
    assert [out[0]] + out[4:] == alone
    assert re.search(r"warning: \d+ input line\(s\) longer than model.max_len=64 tokens were "
                     r"truncated \(first: line 4\)", capsys.readouterr().err)


def test_translate_command_reads_stdin(run, monkeypatch, capsys):
    from llm_jax import cli

    workdir, _, _ = run
    monkeypatch.setattr("sys.stdin", io.StringIO("Ein Hund.\n\nZwei Katzen.\n"))
    monkeypatch.setattr("sys.argv", ["llm_jax", "translate", f"--workdir={workdir}",
                                     "--beam_size=1", "--max_len=5"])
    with pytest.raises(SystemExit) as e:
        cli.run()
    assert e.value.code in (None, 0)
    out = capsys.readouterr().out.split("\n")
    assert len(out) == 4 and out[1] == "" and out[3] == ""


def test_translate_refuses_a_language_model_workdir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"task": {"name": "causal_lm"},
                                                      "model": {"name": "gpt"}}))
    with pytest.raises(ValueError, match="translate needs a seq2seq workdir"):
        commands.translate_lines(str(tmp_path), ["x"])


def test_schedule_is_the_papers():
    from llm_jax.training.optimizer import make_schedule

    c = load_config("transformer_multi30k", "base")
    schedule = make_schedule(c.optimizer, c.train.steps)
    d, warmup = 512, 4000
    for step in (1, 100, 3999, 4000, 4001, 20000, 100000):
        paper = d ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        # optax's linear warm-up is end - end * (1 - step / warmup) in float32: that cancels
        # to ~1e-4 relative at step 1; a wrong exponent or peak is off by far more
        assert float(schedule(step)) == pytest.approx(paper, rel=5e-4), step
