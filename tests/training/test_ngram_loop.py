"""The n-gram loop end to end on Penn Treebank: train, files, reload and rescore, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from llm_jax.training.commands import evaluate_workdir, train
from llm_jax.training.metrics import read_metrics
from tests.conftest import REPO, load_config


@pytest.mark.real_data("ptb")
def test_bigram_run_writes_and_reloads(real_data_dir, tmp_path):
    c = load_config("ngram", "modified_kn2")
    c.task.update(write_arpa=True, num_samples=3)
    workdir = str(tmp_path / "run")
    summary = train(c, workdir)  # the generic entry point hands ngram_lm to its own loop
    assert summary["test/tokens"] == 78669 + 3761  # PTB test words + sentence ends
    assert summary["eval/tokens"] == 70390 + 3370
    # Deterministic (float64 counts and sums): pinned at 1e-6. Plain KN2 gives 186.80 (test)
    # and 201.48 (valid), 0.6% off; D1 1% too large gives 185.699 (3e-5 off), D3+ 0.01 too
    # small 185.696 (5e-5 off).
    assert summary["test/perplexity"] == pytest.approx(185.70469423947733, rel=1e-6)
    assert summary["eval/perplexity"] == pytest.approx(199.0188614086833, rel=1e-6)
    for name in ("config.json", "model.npz", "model.arpa", "samples.txt", "summary.json"):
        assert os.path.exists(os.path.join(workdir, name)), name
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    assert rows[-1]["test/perplexity"] == pytest.approx(summary["test/perplexity"])
    with open(os.path.join(workdir, "model.arpa")) as f:
        head = [next(f) for _ in range(3)]
    assert head[1] == "ngram 1=10001\n"  # the vocabulary and <s>
    assert head[2] == f"ngram 2={summary['ngrams']['2']}\n"
    with open(os.path.join(workdir, "samples.txt")) as f:
        assert len(f.read().splitlines()) == 3
    back = evaluate_workdir(workdir, "test")
    assert back["eval/perplexity"] == pytest.approx(summary["test/perplexity"], rel=1e-12)


@pytest.mark.parametrize("field, value, message", [
    ("task.order", 0, "config.task.order=0"),
    ("task.smoothing", "good_turing", "config.task.smoothing='good_turing'"),
    ("task.cutoffs", (1, 2, 2), "config.task.cutoffs"),
    ("data.tokenizer", "char", "config.data.tokenizer='char'"),
])
def test_bad_config_names_the_field(real_data_dir, tmp_path, field, value, message):
    c = load_config("ngram", "kn2")
    section, name = field.split(".")
    setattr(c[section], name, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        train(c, str(tmp_path / "run"))


def test_text_without_sentence_ends_is_rejected(tmp_data_dir, tmp_path):
    (tmp_data_dir / "ptb").mkdir()
    for split in ("train", "valid", "test"):  # one line with no final newline: no sentence end
        (tmp_data_dir / "ptb" / f"ptb.{split}.txt").write_text(" the cat sat on the mat")
    with pytest.raises(ValueError, match="split 'train' of config.data.corpus='ptb'"):
        train(load_config("ngram", "kn2"), str(tmp_path / "run"))


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="configs/ngram.py:kn"):
        load_config("ngram", "kn")


@pytest.mark.real_data("ptb")
def test_modified_kn5_reproduces_mikolov_on_ptb_test(real_data_dir, tmp_path):
    """Mikolov (2012): SRILM KN5 141.2 on PTB test; measured 141.186 with no count cutoffs.

    Pinned at 1e-6 (float64, deterministic): plain KN5 gives 143.51 and modified KN4 142.72,
    both inside the 2% that this test used to allow; D1 1% too large 141.097, D3+ 0.01 too
    small 141.1878. Not marked slow: it takes about 5 s.
    """
    workdir = tmp_path / "kn5"
    subprocess.run([sys.executable, "-m", "llm_jax", "train",
                    "--config=configs/ngram.py:modified_kn5", f"--workdir={workdir}"],
                   cwd=REPO, check=True, env={**os.environ, "LLM_JAX_DATA_DIR": str(real_data_dir)})
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["test/perplexity"] == pytest.approx(141.18605226072748, rel=1e-6)
    assert summary["eval/perplexity"] == pytest.approx(148.00799641884984, rel=1e-6)
    assert summary["build_seconds"] + summary["eval/seconds"] + summary["test/seconds"] < 60


@pytest.mark.real_data("ptb")
def test_generate_continues_the_prompt(real_data_dir, tmp_path):
    from llm_jax.data import load_tokenizer
    from llm_jax.models.ngram import NGramLM
    from llm_jax.training.ngram_loop import generate as generate_text

    workdir = str(tmp_path / "run")
    summary = train(load_config("ngram", "kn3"), workdir)
    # plain interpolated KN3, pinned (deterministic): the default suite's check of order 3
    assert summary["test/perplexity"] == pytest.approx(150.60226156663774, rel=1e-6)
    greedy = generate_text(workdir, "the company said", max_new_tokens=5, temperature=0)[0]
    lm = NGramLM.load(os.path.join(workdir, "model.npz"))
    tok = load_tokenizer(os.path.join(workdir, "tokenizer"))
    ids = [int(t) for t in tok.encode("the company said")]
    for _ in range(5):  # greedy decoding is the argmax of the model, sentence ends included
        since_eos = ids[len(ids) - ids[::-1].index(tok.eos_id):] if tok.eos_id in ids else ids
        ids.append(int(np.argmax(lm.next_token_logprobs(since_eos))))
    assert greedy == tok.decode(ids) and greedy.startswith("the company said")
    a, b = (generate_text(workdir, "the", max_new_tokens=30, top_k=50, num_samples=2, seed=1)
            for _ in range(2))
    assert a == b and a[0] != a[1]
