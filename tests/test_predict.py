"""`predict` on tiny trained workdirs of every fine-tuning task (glue, token_tagging,
intent_slots, span_qa): each task's output fields, input order, plain-text lines, the one-line
errors naming file:line and field, workdirs of other tasks refused, and no output file (and
an older one kept as it was) when anything fails."""

import json
import os
import subprocess
import sys

import pytest

import llm_jax
from llm_jax.data.glue_data import read_glue
from llm_jax.data.squad_data import read_squad, split_articles
from llm_jax.data.tagging_data import read_conll2003
from llm_jax.tasks.glue import Glue
from llm_jax.tasks.intent_slots import IntentSlots
from llm_jax.tasks.span_qa import SpanQA
from llm_jax.tasks.tagging import TokenTagging
from llm_jax.training import commands
from llm_jax.training.commands import predict_file, train
from llm_jax.training.experiment import save_config
from llm_jax.training.runners import NotSupported
from tests.conftest import REPO, load_config, require_real_data
from tests.tasks.test_glue import tiny as glue_tiny
from tests.tasks.test_intent_slots import tiny as intent_tiny
from tests.tasks.test_tagging import tiny as tagging_tiny

SQUAD_DEV, BERT_VOCAB = "squad/dev-v1.1.json", "tokenizers/bert-base-uncased/vocab.txt"
FEW_STEPS = dict(steps=10, log_every=5, eval_every=10, checkpoint_every=10)


def _trained(tmp_path_factory, name, config, env=None):
    tmp = tmp_path_factory.mktemp(name)
    config = config(tmp)
    config.train.update(**FEW_STEPS)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (env or {}).items():
            mp.setenv(k, v)
        train(config, str(tmp / "run"))
    return tmp / "run", tmp


@pytest.fixture(scope="module")
def sst2(tmp_path_factory):
    return _trained(tmp_path_factory, "sst2", glue_tiny)


@pytest.fixture(scope="module")
def stsb(tmp_path_factory):
    return _trained(tmp_path_factory, "stsb", lambda tmp: glue_tiny(tmp, "stsb"))


@pytest.fixture(scope="module")
def ner(tmp_path_factory):
    return _trained(tmp_path_factory, "ner", tagging_tiny)


@pytest.fixture(scope="module")
def atis(tmp_path_factory):
    return _trained(tmp_path_factory, "atis", intent_tiny)


@pytest.fixture(scope="module")
def squad(tmp_path_factory):
    root = require_real_data(SQUAD_DEV, BERT_VOCAB)
    workdir, _ = _trained(tmp_path_factory, "squad", lambda tmp: load_config("squad", "tiny"),
                          env={"LLM_JAX_DATA_DIR": str(root)})
    return workdir, root


def write_lines(path, lines):
    """Dicts as JSON objects, strings as they are."""
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines),
                    encoding="utf-8")
    return path


def predict(workdir, lines, tmp_path, name="in.jsonl"):
    inp = write_lines(tmp_path / name, lines)
    out = tmp_path / f"{name}.out.jsonl"
    summary = predict_file(str(workdir), str(inp), str(out), progress=False)
    assert summary["lines"] == len(lines) and summary["output"] == str(out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file
    return rows


# ---------------------------------------------------------------- each task's outputs


def test_glue_gives_the_label_and_its_probabilities_as_eval_predicts_them(sst2, tmp_path):
    workdir, data = sst2
    sentences = read_glue("sst2", "dev", path=data / "dev.tsv").text_a
    lines = [{"sentence": s} if i % 2 else s for i, s in enumerate(sentences)]  # JSON and text
    rows = predict(workdir, lines, tmp_path)
    for r in rows:
        assert set(r) == {"label", "probabilities"}
        p = r["probabilities"]
        assert list(p) == ["negative", "positive"] and sum(p.values()) == pytest.approx(1, abs=1e-6)
        assert r["label"] == max(p, key=p.get)
    model, _, config = llm_jax.load(str(workdir))
    task = Glue(config, str(workdir))
    assert [r["label"] for r in rows] == [("negative", "positive")[i]
                                          for i in task.predict(model, task.valid)]
    reverse = predict(workdir, lines[::-1], tmp_path, "reversed.jsonl")
    assert [r["label"] for r in reverse] == [r["label"] for r in rows][::-1]
    for a, b in zip(reverse[::-1], rows):
        assert a["probabilities"]["positive"] == pytest.approx(b["probabilities"]["positive"], abs=1e-5)


def test_glue_pairs_and_stsb_scores(stsb, tmp_path):
    workdir, data = stsb
    raw = read_glue("stsb", "dev", path=data / "dev.tsv")
    lines = [{"sentence1": a, "sentence2": b} for a, b in zip(raw.text_a[:6], raw.text_b)]
    rows = predict(workdir, lines, tmp_path)
    assert all(set(r) == {"score"} and isinstance(r["score"], float) for r in rows)
    model, _, config = llm_jax.load(str(workdir))
    task = Glue(config, str(workdir))
    assert [r["score"] for r in rows] == pytest.approx(task.predict(model, task.valid)[:6].tolist(),
                                                       abs=1e-5)
    with pytest.raises(ValueError, match=r"in\.jsonl:2: expected a JSON object with fields "
                                         r"'sentence1' and 'sentence2'"):
        predict(workdir, [lines[0], "a plain sentence"], tmp_path)


def test_tagging_gives_a_tag_per_word_from_words_text_or_plain_lines(ner, tmp_path):
    workdir, data = ner
    model, _, config = llm_jax.load(str(workdir))
    task = TokenTagging(config, str(workdir))
    sentences = read_conll2003("valid", path=data / "valid.txt").tokens
    lines = []
    for i, words in enumerate(sentences):
        lines.append([{"words": words}, {"text": " ".join(words)}, "  ".join(words)][i % 3])
    rows = predict(workdir, lines + [""], tmp_path)  # a blank line: a sentence of no words
    assert rows[-1] == {"words": [], "tags": []}
    assert [r["words"] for r in rows[:-1]] == sentences
    assert [r["tags"] for r in rows[:-1]] == task.predict(model, task.valid)["tags"]
    assert all(set(r) == {"words", "tags"} and len(r["tags"]) == len(r["words"]) for r in rows)
    assert {t for r in rows for t in r["tags"]} <= set(task.tag_names) - {"UNK"}


def test_intent_slots_gives_the_intent_its_probability_and_the_slots(atis, tmp_path):
    workdir, data = atis
    model, _, config = llm_jax.load(str(workdir))
    task = IntentSlots(config, str(workdir))
    words = [line.split() for line in (data / "valid" / "seq.in").read_text().splitlines()]
    rows = predict(workdir, [{"words": w} for w in words[:-1]] + [" ".join(words[-1])], tmp_path)
    expected = task.predict(model, task.valid)
    for r, w, intent, slots in zip(rows, words, expected["intents"], expected["tags"], strict=True):
        assert list(r) == ["words", "intent", "intent_probability", "slots"]
        assert r["words"] == w and r["intent"] == intent and r["slots"] == slots
        assert 1 / len(task.labels["intents"]) <= r["intent_probability"] <= 1


def test_span_qa_answers_with_character_offsets_into_the_context(squad, tmp_path, tmp_data_dir,
                                                                   monkeypatch):
    workdir, root = squad
    _, held_out = split_articles(read_squad(root / SQUAD_DEV))
    questions = held_out[:8]
    lines = [{"id": e.id, "question": e.question, "context": e.context} for e in questions]
    del lines[3]["id"]
    lines[5]["id"] = 17  # an integer id is echoed as it is
    rows = predict(workdir, lines, tmp_path)  # $LLM_JAX_DATA_DIR is empty: no data is read
    assert [r["id"] for r in rows] == [e.id for e in questions[:3]] + [None, questions[4].id, 17,
                                                                      *(e.id for e in questions[6:])]
    for r, e in zip(rows, questions):
        assert list(r) == ["id", "answer", "start", "end", "score"]
        assert r["answer"] == e.context[r["start"]:r["end"]] and r["answer"]
        assert isinstance(r["score"], float)
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
    model, _, config = llm_jax.load(str(workdir))
    task = SpanQA(config, str(workdir))  # the eval split's first 40 questions: held_out's
    best = task.best_spans(task.valid, *task.predict(model, task.valid))
    assert [r["answer"] for r in rows] == [best[e.id].text for e in questions]
    reverse = predict(workdir, lines[::-1], tmp_path, "reversed.jsonl")
    assert [(r["id"], r["answer"], r["start"]) for r in reverse[::-1]] == [
        (r["id"], r["answer"], r["start"]) for r in rows]


def test_long_inputs_are_answered_in_chunks_in_the_same_order(ner, tmp_path, monkeypatch):
    workdir, _ = ner
    lines = ["john visited paris", "the reuters said", "mary smith met peter blackburn",
             "berlin", "acme corp and the united nations", "world cup in new york"]
    whole = predict(workdir, lines, tmp_path)
    monkeypatch.setattr(commands, "PREDICT_CHUNK", 4)
    assert predict(workdir, lines, tmp_path, "chunked.jsonl") == whole


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("run, lines, message", [
    ("sst2", ["good film", '{"sentence": "bad"}', '{"sentence": "x",}'],
     r"in\.jsonl:3: malformed JSON \(Expecting property name"),
    ("sst2", ["good film", {"text": "bad film"}], r"in\.jsonl:2: field 'sentence': missing"),
    ("sst2", [{"sentence": 5}], r"in\.jsonl:1: field 'sentence': expected a string, got a number"),
    ("ner", [{"words": "john visited paris"}],
     r"in\.jsonl:1: field 'words': expected a list of strings, got a string"),
    ("ner", [{"words": ["john", 3]}], r"in\.jsonl:1: field 'words': item 1 is a number"),
    ("atis", ["show flights", {"sentence": "cheapest fare"}], r"in\.jsonl:2: field 'words': missing"),
    ("squad", [{"question": "who?", "context": "Anna did."}, {"question": "who?"}],
     r"in\.jsonl:2: field 'context': missing"),
    ("squad", ["who did it?"], r"in\.jsonl:1: expected a JSON object with fields 'question' and "
                               r"'context'"),
    ("squad", [{"question": "who?", "context": "Anna did.", "id": [1]}],
     r"in\.jsonl:1: field 'id': expected a string or an integer, got a list"),
])
def test_a_bad_line_is_one_error_naming_file_line_and_field(run, lines, message, request, tmp_path):
    workdir = request.getfixturevalue(run)[0]
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match=message) as e:
        predict_file(str(workdir), str(write_lines(tmp_path / "in.jsonl", lines)), str(out),
                     progress=False)
    assert str(tmp_path / "in.jsonl") in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # nothing written


def test_a_failed_predict_leaves_an_older_output_as_it_was(sst2, tmp_path):
    workdir, _ = sst2
    out = tmp_path / "out.jsonl"
    out.write_text("older\n")
    with pytest.raises(ValueError, match="in.jsonl:2"):
        predict_file(str(workdir), str(write_lines(tmp_path / "in.jsonl", ["ok", "{"])), str(out),
                     progress=False)
    assert out.read_text() == "older\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]
    with pytest.raises(FileNotFoundError, match="--input=.*nothing.jsonl: no such file"):
        predict_file(str(workdir), str(tmp_path / "nothing.jsonl"), str(out), progress=False)
    with pytest.raises(FileNotFoundError, match="--output=.*does not exist"):
        predict_file(str(workdir), str(tmp_path / "in.jsonl"), str(tmp_path / "no" / "o.jsonl"))
    with pytest.raises(ValueError, match="is the --input file"):
        predict_file(str(workdir), str(tmp_path / "in.jsonl"), str(tmp_path / "in.jsonl"))


@pytest.mark.parametrize("config, task, commands_named", [
    (("gpt_shakespeare", "tiny"), "causal_lm", "eval, generate, lm-eval or export-hf"),
    (("transformer_multi30k", None), "seq2seq", "eval or translate"),
])
def test_a_workdir_of_another_task_is_refused_naming_it(config, task, commands_named, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    save_config(load_config(*config), str(workdir))
    out = tmp_path / "out.jsonl"
    with pytest.raises(NotSupported, match=rf"fine-tuned models .* trains task '{task}': use "
                                           rf"{commands_named}$"):
        predict_file(str(workdir), str(write_lines(tmp_path / "in.jsonl", ["x"])), str(out))
    assert not out.exists()


# ---------------------------------------------------------------- the command line


def test_the_command_line_writes_the_output_or_one_error_line(ner, tmp_path):
    workdir, _ = ner
    good = write_lines(tmp_path / "good.txt", ["john visited paris", "berlin"])
    bad = write_lines(tmp_path / "bad.jsonl", [{"words": ["john"]}, '{"words": ['])
    env = {**os.environ, "LLM_JAX_DATA_DIR": str(tmp_path / "no_data")}

    def start(*args):
        return subprocess.Popen([sys.executable, "-m", "llm_jax", "predict", f"--workdir={workdir}",
                                 *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    procs = [start(f"--input={good}", f"--output={tmp_path / 'good.out'}"),
             start(f"--input={bad}", f"--output={tmp_path / 'bad.out'}"),
             start(f"--input={good}")]
    (ok_out, ok_err), (_, bad_err), (_, usage_err) = (p.communicate(timeout=300) for p in procs)
    assert procs[0].returncode == 0, ok_err[-3000:]
    assert json.loads(ok_out)["lines"] == 2
    rows = [json.loads(line) for line in (tmp_path / "good.out").read_text().splitlines()]
    assert [r["words"] for r in rows] == [["john", "visited", "paris"], ["berlin"]]
    assert procs[1].returncode == 1 and bad_err.strip().splitlines() == [
        f"error: {bad}:2: malformed JSON (Expecting value at column 12)"]
    assert not (tmp_path / "bad.out").exists()
    assert procs[2].returncode == 2 and "--output is required" in usage_err
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
