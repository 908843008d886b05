"""Shared fixtures: the real data directory, and tiny configs that train in seconds.

A test that reads a real data set names it, so that without it the test is skipped with the
missing file as the reason (not failed with a MissingDataError):

    require_real_data("ptb")                 # in a test or fixture: every file of PTB
    require_real_data("ptb/ptb.train.txt")   # one file
    @pytest.mark.real_data("wikitext-2")     # on a test that uses the real_data_dir fixture

With no name, require_real_data() and the real_data_dir fixture need Tiny Shakespeare, which
the tiny configs read.
"""

import os
import pathlib

import pytest

# Hugging Face models in tests are built from random configs; nothing is fetched.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = pathlib.Path(__file__).resolve().parents[1]
# CI clones the repo with ../shared beside it; .ci/run also exports LLM_JAX_DATA_DIR.
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_DATA = ("tinyshakespeare",)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real_data(*names): data sets or files (relative to the real data directory) "
                   "that the test reads through the real_data_dir fixture; skipped if absent")


def real_data_path() -> pathlib.Path:
    """$LLM_JAX_DATA_DIR if set, else ../shared/data; whether or not it exists."""
    return pathlib.Path(os.environ.get("LLM_JAX_DATA_DIR") or SHARED_DATA)


def dataset_files() -> dict[str, tuple[str, ...]]:
    """{data set folder: the files the library reads from it}, from the library's own tables."""
    from llm_jax.data import CORPORA
    from llm_jax.data.sst2 import SPLITS as SST2_FILES
    return {**{name: corpus.filenames for name, corpus in CORPORA.items()},
            "glue/SST-2": tuple(SST2_FILES.values()),
            # the analogy and similarity files word2vec runs are scored on (word2vec_loop.py)
            "word2vec": ("questions-words.txt", "wordsim353.tsv")}


def _files(names) -> list[str]:
    known = dataset_files()
    out = []
    for name in names:
        if name.rstrip("/") in known:
            out += [f"{name.rstrip('/')}/{filename}" for filename in known[name.rstrip("/")]]
        elif "/" in name.strip("/"):
            out.append(name)
        else:  # a misspelt data set would otherwise skip its tests for ever
            raise ValueError(f"require_real_data({name!r}): name a data set ({sorted(known)}) or "
                             "a file in one, e.g. 'ptb/ptb.train.txt'")
    return out


def require_real_data(*names: str) -> pathlib.Path:
    """The real data directory, if it holds every file of `names`; else skips the test.

    Each name is a data set (a key of dataset_files(), e.g. "ptb" or "glue/SST-2": all its
    files) or a file relative to the directory ("word2vec/wordsim353.tsv"). No names: Tiny
    Shakespeare. The skip reason is "missing <path>", the first file that is not there.
    """
    root = real_data_path()
    for rel in _files(names or DEFAULT_DATA):
        if not (root / rel).is_file():
            pytest.skip(f"missing {root / rel}")
    return root


@pytest.fixture
def real_data_dir(request, monkeypatch) -> pathlib.Path:
    """The real data directory, set as $LLM_JAX_DATA_DIR; the data sets needed are those of
    the test's real_data marks (default: Tiny Shakespeare)."""
    names = [n for mark in request.node.iter_markers("real_data") for n in mark.args]
    path = require_real_data(*names)
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(path))
    return path


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty data directory, so tests never read the user's ~/.cache."""
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def load_script(relpath: str):
    """A script of the repository (experiments/NAME/report.py) imported as a module, so a test
    calls its main() and helpers in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(pathlib.Path(relpath).stem, REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(name: str, arg=None):
    from llm_jax.training.config_schema import config_from_file
    return config_from_file(REPO / "configs" / f"{name}.py", arg)


@pytest.fixture
def tiny_config(real_data_dir):
    """configs/gpt_shakespeare.py:tiny without the progress bar."""
    require_real_data("tinyshakespeare")  # whatever else the test's marks name
    c = load_config("gpt_shakespeare", "tiny")
    c.train.progress_bar = False
    return c
