"""Where data sets live on disk, and the error raised when one is missing."""

from __future__ import annotations

import os
import pathlib

ENV_VAR = "LLM_JAX_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/llm_jax/data"


class MissingDataError(FileNotFoundError):
    """A data file is not in the data directory (the message says how to get it)."""


def _data_dir_and_origin() -> tuple[pathlib.Path, str]:
    # An empty variable counts as unset: `LLM_JAX_DATA_DIR= cmd` should not mean the cwd.
    value = os.environ.get(ENV_VAR, "")
    if value:
        return pathlib.Path(value).expanduser(), f"from ${ENV_VAR}"
    return (
        pathlib.Path(DEFAULT_DATA_DIR).expanduser(),
        f"the default, since ${ENV_VAR} is not set",
    )


def data_dir() -> pathlib.Path:
    """The data directory: $LLM_JAX_DATA_DIR, else ~/.cache/llm_jax/data."""
    return _data_dir_and_origin()[0]


def require_file(dataset: str, filename: str) -> pathlib.Path:
    """Path of `<data_dir>/<dataset>/<filename>`; MissingDataError if it is not a file."""
    root, origin = _data_dir_and_origin()
    path = root / dataset / filename
    if not path.is_file():
        raise MissingDataError(
            f"Data file {path} not found (data set {dataset!r}).\n"
            f"The data directory is {root} ({origin}).\n"
            f"{_how_to_get(dataset, path)}\n"
            f"or point ${ENV_VAR} at a directory that holds {dataset}/{filename}."
        )
    return path


def _how_to_get(dataset: str, path: pathlib.Path) -> str:
    """The download command if `download` fetches `dataset`; else where to put the file."""
    from llm_jax.data.download import NOT_DOWNLOADED, SOURCES  # it imports this module

    if dataset in SOURCES:
        return f"Get the data set with:  python -m llm_jax download {dataset}"
    where = NOT_DOWNLOADED.get(
        dataset, "in the layout and file names of the data set's canonical download")
    return (f"`python -m llm_jax download` does not fetch {dataset!r}: put {path.name} at "
            f"{path} yourself ({where}),")


def require_file_in_layout(dataset: str, filename: str, layout: str) -> pathlib.Path:
    """require_file, its message ending with the layout the data set's folder should have."""
    try:
        return require_file(dataset, filename)
    except MissingDataError as e:
        raise MissingDataError(f"{e}\nExpected layout: {layout}.") from None


def read_lines(path: pathlib.Path, encoding: str) -> list[str]:
    """The text file's lines, split at "\\n" only (a CRLF's "\\r" dropped), without the final newline."""
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: field 'text': byte 0x{data[e.start]:02x} is not valid "
                         f"{encoding}; pass encoding= with the file's encoding") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and not lines[-1]:  # the final newline (a blank line before it is kept)
        lines.pop()
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")  # MRPC's files start with a UTF-8 BOM
    return lines
