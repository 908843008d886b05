"""Shared fixtures: the real data directory, and tiny configs that train in seconds."""

import importlib.util
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# CI clones the repo with ../shared beside it; .ci/run also exports LLM_JAX_DATA_DIR.
SHARED_DATA = REPO.parent / "shared" / "data"


def _real_data_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("LLM_JAX_DATA_DIR") or SHARED_DATA)


def require_real_data() -> pathlib.Path:
    """$LLM_JAX_DATA_DIR if set, else ../shared/data; skips the test if neither exists."""
    path = _real_data_path()
    if not (path / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"no real data directory at {path}")
    return path


@pytest.fixture
def real_data_dir(monkeypatch) -> pathlib.Path:
    path = require_real_data()
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(path))
    return path


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty data directory, so tests never read the user's ~/.cache."""
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def load_config(name: str, arg=None):
    spec = importlib.util.spec_from_file_location(name, REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture
def tiny_config(real_data_dir):
    """configs/gpt_shakespeare.py:tiny without the progress bar."""
    c = load_config("gpt_shakespeare", "tiny")
    c.train.progress_bar = False
    return c
