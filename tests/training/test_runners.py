"""Every kind of trained workdir through the one dispatch: llm_jax.load, generate, export.

One tiny run per kind (GPT, rnn_lm, ELMo, n-gram, word2vec) is shared by the tests below; the
command-line checks run with LLM_JAX_DATA_DIR unset, since nothing but training should need
the corpus.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

import llm_jax
from llm_jax.evaluation.word_vectors import WordVectors
from llm_jax.models.elmo import ELMoBiLM
from llm_jax.models.gpt import GPT
from llm_jax.models.ngram import NGramLM
from llm_jax.models.rnn_lm import RNNLM
from llm_jax.training.commands import export_model, generate_text, train
from llm_jax.training.init_from import read_source_params
from tests.conftest import REPO, load_config, require_real_data


def _small_wikitext(root):
    src = require_real_data("wikitext-2") / "wikitext-2"
    (root / "wikitext-2").mkdir(parents=True)
    for name, lines in (("wiki.train.tokens", 600), ("wiki.valid.tokens", 60),
                        ("wiki.test.tokens", 60)):
        with open(src / name, encoding="utf-8") as f:
            (root / "wikitext-2" / name).write_text("".join(next(f) for _ in range(lines)))
    return root


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """{kind: workdir} of one finished tiny run per runner and model family."""
    data = require_real_data("tinyshakespeare", "ptb", "wikitext-2", "word2vec")
    small = _small_wikitext(tmp_path_factory.mktemp("data"))
    before = os.environ.get("LLM_JAX_DATA_DIR")
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    try:
        os.environ["LLM_JAX_DATA_DIR"] = str(data)
        gpt = load_config("gpt_shakespeare", "tiny")
        gpt.train.update(steps=6, eval_every=6, checkpoint_every=6, progress_bar=False)
        rnn = load_config("rnn_lm", "tiny")
        rnn.train.epochs = 1
        word2vec = load_config("word2vec", "tiny")
        word2vec.task.update(epochs=1, max_sentences=300)
        for kind, config in (("gpt", gpt), ("rnn_lm", rnn), ("ngram", load_config("ngram", "kn3")),
                             ("word2vec", word2vec)):
            runs[kind] = str(root / kind)
            train(config, runs[kind])
        os.environ["LLM_JAX_DATA_DIR"] = str(small)
        elmo = load_config("elmo", "tiny")
        elmo.data.min_count = 3
        elmo.train.progress_bar = False
        runs["elmo"] = str(root / "elmo")
        train(elmo, runs["elmo"])
    finally:
        if before is None:
            os.environ.pop("LLM_JAX_DATA_DIR", None)
        else:
            os.environ["LLM_JAX_DATA_DIR"] = before
    return runs


@pytest.fixture
def no_data_dir(monkeypatch, tmp_path):
    """LLM_JAX_DATA_DIR pointing nowhere: any read of a corpus would fail loudly."""
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "no-data-here"))


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "LLM_JAX_DATA_DIR"}
    return subprocess.run([sys.executable, "-m", "llm_jax", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind,model_type", [("gpt", GPT), ("rnn_lm", RNNLM), ("elmo", ELMoBiLM),
                                             ("ngram", NGramLM), ("word2vec", WordVectors)])
def test_load_returns_the_trained_model(workdirs, no_data_dir, kind, model_type):
    model, tokenizer, config = llm_jax.load(workdirs[kind])
    assert isinstance(model, model_type)
    assert config.task.name == load_config_name(workdirs[kind])
    if isinstance(model, nnx.Module):
        # the very parameters of the latest checkpoint
        saved = read_source_params(workdirs[kind])
        loaded = nnx.to_pure_dict(nnx.state(model))
        for a, b in zip(_leaves(saved), _leaves(loaded), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))
    if kind in ("gpt", "rnn_lm"):
        ids = tokenizer.encode("the ")
        assert tokenizer.decode(ids) == "the " if kind == "gpt" else len(ids) == 1


def load_config_name(workdir):
    from llm_jax.training.experiment import load_config as load_run_config
    return load_run_config(workdir).task.name


def _leaves(tree):
    import jax
    return [leaf for _, leaf in sorted(jax.tree_util.tree_flatten_with_path(tree)[0],
                                       key=lambda kv: jax.tree_util.keystr(kv[0]))]


@pytest.mark.parametrize("kind,prompt", [("gpt", "ROMEO:"), ("rnn_lm", "the company"),
                                         ("ngram", "the company")])
def test_generate_prints_text_without_the_data_directory(workdirs, kind, prompt):
    result = _cli("generate", f"--workdir={workdirs[kind]}", f"--prompt={prompt}",
                  "--max_new_tokens=8", "--num_samples=2")
    assert result.returncode == 0, result.stderr
    samples = [s for s in result.stdout.split("-" * 40 + "\n") if s.strip()]
    assert len(samples) == 2 and all(s.startswith(prompt) for s in samples)
    assert all(len(s) > len(prompt) + 1 for s in samples)


@pytest.mark.parametrize("kind", ["word2vec", "elmo"])
def test_generate_on_a_model_that_does_not_generate_is_one_line(workdirs, kind):
    result = _cli("generate", f"--workdir={workdirs[kind]}", "--prompt=the")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not generate text" in lines[0]


def test_batch_generation_matches_the_python_api(workdirs, no_data_dir):
    a = generate_text(workdirs["gpt"], "ROMEO:", max_new_tokens=10, num_samples=3, seed=4)
    b = generate_text(workdirs["gpt"], "ROMEO:", max_new_tokens=10, num_samples=1, seed=4)
    assert a[0] == b[0]  # a row's sample does not depend on what else is in the batch


def test_export_of_each_kind(workdirs, no_data_dir, tmp_path):
    arpa = export_model(workdirs["ngram"], str(tmp_path / "arpa"))
    with open(arpa) as f:
        assert f.readline().strip() == "\\data\\"
    out = export_model(workdirs["word2vec"], str(tmp_path / "w2v"))
    assert sorted(os.listdir(out)) == ["vectors.bin", "vectors.txt"]
    from llm_jax.models.elmo import load_bilm
    bilm = load_bilm(export_model(workdirs["elmo"], str(tmp_path / "elmo")))
    assert bilm.embed([["the", "game"]])[0].shape[1] == 2
    with pytest.raises(ValueError, match="export writes ELMo biLMs"):
        export_model(workdirs["gpt"], str(tmp_path / "gpt"))


def test_readme_notebook_snippet(workdirs, no_data_dir):
    """README.md, "Using a trained model", as written there."""
    import jax

    from llm_jax.tasks.lm_decoding import generate_tokens

    model, tokenizer, config = llm_jax.load(workdirs["gpt"])
    ids = generate_tokens(model, [tokenizer.encode("ROMEO:")], 100, key=jax.random.key(0),
                          temperature=0.8, top_k=40)
    assert len(ids[0]) == len(tokenizer.encode("ROMEO:")) + 100
    assert tokenizer.decode(ids[0]).startswith("ROMEO:")
    logits = model(jax.numpy.asarray([tokenizer.encode("To be, or not")]))
    assert logits.shape == (1, 13, config.model.vocab_size)


@pytest.mark.parametrize("flag,value", [("num_samples", "0"), ("top_k", "100000"),
                                        ("top_p", "0"), ("max_new_tokens", "0")])
def test_bad_generate_flags_are_named(workdirs, flag, value):
    result = _cli("generate", f"--workdir={workdirs['gpt']}", f"--{flag}={value}")
    line, = result.stderr.strip().splitlines()
    assert result.returncode == 1 and line.startswith(f"error: --{flag}=") and ": must be" in line


def test_eval_without_a_checkpoint_writes_nothing(workdirs, tmp_path):
    import shutil

    from llm_jax.training.commands import evaluate_workdir
    shutil.copy2(os.path.join(workdirs["gpt"], "config.json"), tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluate_workdir(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no tokenizer fitted and saved
