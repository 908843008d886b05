"""WORKDIR/data_files.json records what each split was read from; `eval` (and a resume) on
other data stops with a one-line error naming the file, instead of scoring other text."""

import hashlib
import json
import shutil

import pytest

from llm_jax.data.data_record import RECORD_FILE, DataChangedError
from llm_jax.tasks import build_task
from llm_jax.training.experiment import save_config
from llm_jax.training.gradient_runner import evaluate
from llm_jax.training.trainer import train
from tests.data.test_user_corpus import char_config, lines, write_dir


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_record_is_written_and_eval_on_changed_data_fails(tmp_path):
    corpus = write_dir(tmp_path / "mine", lines(200), lines(40))
    workdir = tmp_path / "run"
    train(char_config(corpus), str(workdir))
    record = json.loads((workdir / RECORD_FILE).read_text())
    for split, name in (("train", "train.txt"), ("valid", "valid.txt")):
        entry = record["splits"][split]
        path = corpus / name
        assert entry["path"] == str(path)
        assert (entry["size"], entry["sha256"]) == (path.stat().st_size, sha256(path))
        assert (entry["encoding"], entry["part"]) == ("utf-8", "whole file")
    assert "eval/loss" in evaluate(str(workdir))  # unchanged data: scores as before

    with open(corpus / "valid.txt", "a") as f:
        f.write("one more line\n")
    with pytest.raises(DataChangedError) as info:
        evaluate(str(workdir))
    message = str(info.value)
    assert message.startswith(f"{corpus / 'valid.txt'} (split 'valid') has changed")
    assert "\n" not in message and str(workdir / RECORD_FILE) in message
    with pytest.raises(DataChangedError, match="valid.txt"):  # a resume checks too
        build_task(char_config(corpus), str(workdir))


def test_eval_with_another_data_directory_fails(tmp_path, monkeypatch):
    # The built-in name resolves through $LLM_JAX_DATA_DIR: another directory, another file.
    for name in ("a", "b"):
        (tmp_path / name / "tinyshakespeare").mkdir(parents=True)
        (tmp_path / name / "tinyshakespeare" / "input.txt").write_text(lines(100, name * 3))
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "a"))
    config, workdir = char_config("tinyshakespeare"), tmp_path / "run"
    build_task(config, str(workdir))
    save_config(config, str(workdir))
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "b"))
    with pytest.raises(DataChangedError,
                       match=r"split 'train' is now read from .*/b/tinyshakespeare/input.txt, "
                             r"but this run read .*/a/tinyshakespeare/input.txt"):
        evaluate(str(workdir))


def test_changed_part_of_a_file_is_named(tmp_path):
    (tmp_path / "all.txt").write_text(lines(100))
    workdir = tmp_path / "run"
    build_task(char_config(tmp_path / "all.txt"), str(workdir))
    with pytest.raises(DataChangedError, match="all.txt is now read with part 'lines"):
        build_task(char_config(tmp_path / "all.txt", valid_fraction=0.2), str(workdir))


def test_moved_data_passes_once_the_record_is_deleted(tmp_path):
    corpus = write_dir(tmp_path / "old", lines(100), lines(20))
    workdir = tmp_path / "run"
    build_task(char_config(corpus), str(workdir))
    shutil.copytree(corpus, tmp_path / "new")
    with pytest.raises(DataChangedError, match="if the same data only moved, delete"):
        build_task(char_config(tmp_path / "new"), str(workdir))
    (workdir / RECORD_FILE).unlink()
    build_task(char_config(tmp_path / "new"), str(workdir))
    assert json.loads((workdir / RECORD_FILE).read_text())["splits"]["train"]["path"] == str(
        tmp_path / "new" / "train.txt")
