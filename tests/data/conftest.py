"""Shared fixtures: the real data directory when this machine has one."""

import os
import pathlib

import pytest

SHARED_DATA = pathlib.Path("/work/shared/data")


@pytest.fixture
def real_data_dir(monkeypatch) -> pathlib.Path:
    """$LLM_JAX_DATA_DIR if set, else /work/shared/data; skip the test if neither exists."""
    path = pathlib.Path(os.environ.get("LLM_JAX_DATA_DIR") or SHARED_DATA)
    if not path.is_dir():
        pytest.skip(f"no real data directory at {path}")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(path))
    return path


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty data directory, so tests never read the user's ~/.cache."""
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path))
    return tmp_path
