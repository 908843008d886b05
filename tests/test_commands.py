"""The commands as a user runs them, `python -m llm_jax eval | sweep | export | download ...`,
checked against what they should produce (not only that they exit 0).

Runs are tiny and train on cut-down copies of the real data (the first lines of PTB, the
first 10,000 characters of Tiny Shakespeare), so each test takes seconds; every subprocess
costs a JAX start-up, so the independent ones of a test run side by side.
"""

import csv
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from llm_jax.training.commands import train
from tests.conftest import REPO, load_config, require_real_data

PTB_LINES = 1500
TINY = "--config=configs/gpt_shakespeare.py:tiny"


def _start(*args, data_dir, code=None):
    """`python -m llm_jax ARGS` (or `python -c CODE ARGS`) with $LLM_JAX_DATA_DIR=data_dir."""
    env = {**os.environ, "LLM_JAX_DATA_DIR": str(data_dir)}
    head = ["-c", code] if code else ["-m", "llm_jax"]
    return subprocess.Popen([sys.executable, *head, *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _cli(*args, data_dir, code=None):
    return _finish(_start(*args, data_dir=data_dir, code=code))


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def small_ptb(tmp_path_factory):
    """A data directory holding the first PTB_LINES lines of each PTB split."""
    src = require_real_data("ptb") / "ptb"
    root = tmp_path_factory.mktemp("ptb_data")
    (root / "ptb").mkdir()
    for split in ("train", "valid", "test"):
        with open(src / f"ptb.{split}.txt", encoding="utf-8") as f:
            head = [next(f) for _ in range(PTB_LINES)]
        (root / "ptb" / f"ptb.{split}.txt").write_text("".join(head), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def small_shakespeare(tmp_path_factory):
    text = (require_real_data("tinyshakespeare") / "tinyshakespeare" / "input.txt").read_text()
    root = tmp_path_factory.mktemp("shakespeare_data")
    (root / "tinyshakespeare").mkdir()
    (root / "tinyshakespeare" / "input.txt").write_text(text[:10_000])
    return root


@pytest.fixture(scope="module")
def ptb_runs(small_ptb, tmp_path_factory):
    """{kind: (workdir, summary)}: a KN trigram and a one-epoch LSTM, both scoring valid as
    eval/* and test as test/* in their summaries."""
    before = os.environ.get("LLM_JAX_DATA_DIR")
    root = tmp_path_factory.mktemp("ptb_runs")
    rnn = load_config("rnn_lm", "tiny")  # tiny trains on valid; here on train, to score valid
    rnn.data.update(train_split="train", eval_split="valid", test_split="test")
    rnn.train.epochs = 1
    runs = {}
    try:
        os.environ["LLM_JAX_DATA_DIR"] = str(small_ptb)
        for kind, config in (("ngram", load_config("ngram", "kn3")), ("rnn_lm", rnn)):
            runs[kind] = (str(root / kind), train(config, str(root / kind)))
    finally:
        if before is None:
            os.environ.pop("LLM_JAX_DATA_DIR", None)
        else:
            os.environ["LLM_JAX_DATA_DIR"] = before
    return runs


# ---------------------------------------------------------------- eval --split


def _ptb_tokens(data_dir, split) -> int:
    """Tokens a PTB split scores: its words and one sentence end per line."""
    text = (data_dir / "ptb" / f"ptb.{split}.txt").read_text()
    return len(text.split()) + text.count("\n")


@pytest.mark.parametrize("kind", ["ngram", "rnn_lm"])
def test_eval_scores_the_split_that_split_names(ptb_runs, small_ptb, kind):
    workdir, summary = ptb_runs[kind]
    procs = {s: _start("eval", f"--workdir={workdir}", f"--split={s}", data_dir=small_ptb)
             for s in ("valid", "test")}
    out = {s: json.loads(_ok(_finish(p))) for s, p in procs.items()}
    assert out["valid"]["split"] == "valid" and out["test"]["split"] == "test"
    # the numbers training reported for each split, from the same final model
    assert out["valid"]["eval/perplexity"] == pytest.approx(summary["eval/perplexity"], rel=1e-6)
    assert out["test"]["eval/perplexity"] == pytest.approx(summary["test/perplexity"], rel=1e-6)
    assert out["valid"]["eval/perplexity"] != pytest.approx(out["test"]["eval/perplexity"],
                                                            rel=1e-3)
    if kind == "ngram":  # it also says how many tokens it scored: those of the split's file
        for split in ("valid", "test"):
            assert out[split]["eval/tokens"] == _ptb_tokens(small_ptb, split)


def test_eval_with_an_unknown_split_is_one_line_naming_the_flag(ptb_runs, small_ptb):
    procs = [_start("eval", f"--workdir={ptb_runs[kind][0]}", "--split=tset", data_dir=small_ptb)
             for kind in ("ngram", "rnn_lm")]
    for proc in map(_finish, procs):
        line = _one_error_line(proc)
        assert proc.returncode == 1 and "--split='tset'" in line, line
        assert "'valid'" in line and "'test'" in line, line  # what it could have been


# ---------------------------------------------------------------- sweep


@pytest.fixture(scope="module")
def sweep_run(small_shakespeare, tmp_path_factory):
    """`sweep` of two 2-step tiny GPT runs (two learning rates); (its workdir, stdout)."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "sweep.py").write_text(
        "def get_sweep():\n"
        "    return [{'optimizer.lr': lr} for lr in (1e-3, 3e-2)]\n")
    proc = _cli("sweep", TINY, f"--sweep={root / 'sweep.py'}", f"--workdir={root / 'out'}",
                "--config.train.steps=2", "--config.train.eval_every=1",
                "--config.train.checkpoint_every=2", "--config.train.log_every=1",
                "--config.train.eval_batches=1", "--config.optimizer.warmup_steps=0",
                "--config.train.progress_bar=False",
                data_dir=small_shakespeare)
    return root / "out", _ok(proc)


def test_sweep_trains_every_run_and_tabulates_their_summaries(sweep_run):
    out, stdout = sweep_run
    names = ["optimizer.lr=0.001", "optimizer.lr=0.03"]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == names
    lrs = []
    for name, row in zip(names, rows):
        with open(out / name / "summary.json") as f:
            summary = json.load(f)
        with open(out / name / "config.json") as f:
            lrs.append(json.load(f)["optimizer"]["lr"])
        assert summary["step"] == 2 and math.isfinite(summary["eval/loss"])
        assert float(row["eval/loss"]) == pytest.approx(summary["eval/loss"], rel=1e-12)
        assert float(row["optimizer.lr"]) == lrs[-1]
    assert lrs == [1e-3, 3e-2]
    first, second = (json.loads(r) for r in [(out / n / "summary.json").read_text() for n in names])
    assert first["eval/loss"] != pytest.approx(second["eval/loss"])  # two runs, not one copied
    table = (out / "results.md").read_text()
    assert all(name in table for name in names) and "eval/loss" in table
    assert (out / "results.png").stat().st_size > 0
    assert "[sweep 2/2]" in stdout


# ---------------------------------------------------------------- export


def _read_arpa(path):
    """{order: n}, {n-gram: log10 p} and {context: log10 backoff} of an ARPA file."""
    counts, logp, bow = {}, {}, {}
    with open(path, encoding="utf-8") as f:
        assert f.readline() == "\\data\\\n"
        for line in f:
            if line.startswith("ngram "):
                k, n = line[len("ngram "):].split("=")
                counts[int(k)] = int(n)
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                gram = tuple(parts[1].split(" "))
                logp[gram] = float(parts[0])
                if len(parts) == 3:
                    bow[gram] = float(parts[2])
    return counts, logp, bow


def _arpa_log10(logp, bow, context, word):
    """log10 p(word | context) by the ARPA backoff rule."""
    if context + (word,) in logp:
        return logp[context + (word,)]
    assert context, f"{word!r} is not among the 1-grams"
    return bow.get(context, 0.0) + _arpa_log10(logp, bow, context[1:], word)


def test_export_of_an_ngram_run_is_an_arpa_file_that_scores_as_the_model(ptb_runs, small_ptb,
                                                                         tmp_path):
    """Scoring the valid split from the exported file alone, by the ARPA backoff rule, gives
    the perplexity the model reported for it."""
    import llm_jax

    workdir, summary = ptb_runs["ngram"]
    proc = _cli("export", f"--workdir={workdir}", f"--out={tmp_path / 'out'}",
                data_dir=tmp_path / "no-data-here")  # the workdir alone is enough
    path = _ok(proc).strip()
    assert path == str(tmp_path / "out" / "model.arpa")
    counts, logp, bow = _read_arpa(path)
    assert {k: n for k, n in counts.items() if k > 1} == {int(k): n for k, n in
                                                          summary["ngrams"].items()}
    assert sum(counts.values()) == len(logp)

    _, tokenizer, _ = llm_jax.load(workdir)
    assert counts[1] == len(tokenizer.words) + 1  # and <s>
    names = [*tokenizer.words]
    names[tokenizer.eos_id] = "</s>"
    ids = tokenizer.encode((small_ptb / "ptb" / "ptb.valid.txt").read_text())
    total, context = 0.0, ("<s>",)
    for i in ids:
        total += _arpa_log10(logp, bow, context[-2:], names[i])
        context = ("<s>",) if i == tokenizer.eos_id else (*context, names[i])
    assert len(ids) == _ptb_tokens(small_ptb, "valid")
    np.testing.assert_allclose(10 ** (-total / len(ids)), summary["eval/perplexity"], rtol=1e-4)


def test_export_of_a_gpt_run_is_one_line_saying_what_export_writes(sweep_run, tmp_path):
    """GPT has no export format yet (llm_jax.load is the way out): the command says so and
    writes nothing."""
    out, _ = sweep_run
    proc = _cli("export", f"--workdir={out / 'optimizer.lr=0.001'}", f"--out={tmp_path / 'out'}",
                data_dir=tmp_path / "no-data-here")
    line = _one_error_line(proc)
    assert proc.returncode == 1 and "export writes ELMo biLMs" in line and "'gpt'" in line, line
    assert "llm_jax.load(workdir)" in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- download

# The CLI with a registry entry "fake" whose files are served from file:// URLs: the real
# download path (urllib, temporary file, checksum, rename), only the registry is the test's.
WITH_FAKE_SOURCE = """\
import json, sys
from llm_jax.data.download import SOURCES, RemoteFile
SOURCES["fake"] = {name: RemoteFile((url,), sha) for name, (url, sha) in json.loads(sys.argv[1]).items()}
sys.argv = ["llm_jax", *sys.argv[2:]]
from llm_jax.cli import run
run()
"""


def _served(tmp_path, files):
    """Writes `files` ({name: bytes}) where file:// URLs serve them."""
    (tmp_path / "served").mkdir(exist_ok=True)
    for name, data in files.items():
        (tmp_path / "served" / name).write_bytes(data)
    return {name: (tmp_path / "served" / name).as_uri() for name in files}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_installs_files_whose_checksum_matches(tmp_path):
    files = {"a.txt": b"alpha\n" * 1000, "b.txt": b"beta\n" * 10}
    urls = _served(tmp_path, files)
    registry = {name: (urls[name], _sha(data)) for name, data in files.items()}
    proc = _cli(json.dumps(registry), "download", "fake", f"--data_dir={tmp_path / 'data'}",
                data_dir=tmp_path / "elsewhere", code=WITH_FAKE_SOURCE)
    dest = tmp_path / "data" / "fake"
    assert _ok(proc).splitlines() == [str(dest / "a.txt"), str(dest / "b.txt")]
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == files  # and no temporary files
    assert not (tmp_path / "elsewhere").exists()  # --data_dir, not $LLM_JAX_DATA_DIR


def test_download_with_a_wrong_checksum_leaves_no_file(tmp_path):
    served = b"this is not the file the registry pins\n"
    urls = _served(tmp_path, {"a.txt": served})
    expected = _sha(b"the real file\n")
    proc = _cli(json.dumps({"a.txt": (urls["a.txt"], expected)}), "download", "fake",
                data_dir=tmp_path / "data", code=WITH_FAKE_SOURCE)
    line = _one_error_line(proc)
    assert proc.returncode == 1
    assert "Checksum mismatch for a.txt" in line and expected in line and _sha(served) in line
    assert list((tmp_path / "data" / "fake").iterdir()) == []  # neither a.txt nor a .part file


def test_download_of_an_unknown_or_unfetched_data_set_is_one_line(tmp_path):
    procs = {name: _start("download", name, data_dir=tmp_path / "data")
             for name in ("tinyshakespear", "glue/SST-2")}
    unknown, unfetched = (_one_error_line(_finish(p)) for p in procs.values())
    assert "'tinyshakespear'" in unknown and "tinyshakespeare" in unknown, unknown
    assert "does not fetch 'glue/SST-2'" in unfetched and "dev.tsv" in unfetched, unfetched
    assert {p.returncode for p in procs.values()} == {1}
    assert not (tmp_path / "data").exists()
