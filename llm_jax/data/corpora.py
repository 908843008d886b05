"""Language-modelling corpora: the built-in ones (in the layout of their canonical downloads,
under the data directory) and a user's own files, named by path.

`config.data.corpus` is either a built-in name or a path:
  * a directory holding train.txt and valid.txt (test.txt optional): splits train/valid/test;
  * one text file: its first lines are train and the last `valid_fraction` of its lines valid.
A user's files are read in `config.data.encoding`; the built-in files are UTF-8.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping

from llm_jax.data.paths import require_file
from llm_jax.data.text_files import TextSlice, check_encoding


@dataclasses.dataclass(frozen=True)
class Split:
    """A split is the slice [start, end) (fractions of characters) of one file."""

    filename: str
    start: float = 0.0
    end: float = 1.0


@dataclasses.dataclass(frozen=True)
class Corpus:
    name: str  # also the folder under the data directory
    splits: Mapping[str, Split]

    @property
    def filenames(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.filename for s in self.splits.values()))


CORPORA: dict[str, Corpus] = {
    # nanoGPT's split: first 90% of the characters for training, the rest for validation.
    "tinyshakespeare": Corpus(
        "tinyshakespeare",
        {"train": Split("input.txt", 0.0, 0.9), "valid": Split("input.txt", 0.9, 1.0)},
    ),
    "ptb": Corpus("ptb", {s: Split(f"ptb.{s}.txt") for s in ("train", "valid", "test")}),
    "wikitext-2": Corpus(
        "wikitext-2", {s: Split(f"wiki.{s}.tokens") for s in ("train", "valid", "test")}
    ),
    # Merity et al.'s larger set (103M training words), same layout: not downloaded here, put
    # wikitext-103/wiki.{train,valid,test}.tokens under the data directory
    "wikitext-103": Corpus(
        "wikitext-103", {s: Split(f"wiki.{s}.tokens") for s in ("train", "valid", "test")}
    ),
}

# nanoGPT and many configs say "val"; the canonical files say "valid".
SPLIT_ALIASES = {"val": "valid", "validation": "valid"}
SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}  # a directory's
DEFAULT_VALID_FRACTION = 0.1


class UnknownSplitError(ValueError):
    """A split name the corpus does not have (the message lists those it has)."""


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; expected one of {sorted(CORPORA)}.")
    return CORPORA[name]


def _split_key(split: str, known, where: str) -> str:
    key = SPLIT_ALIASES.get(split, split)
    if key not in known:
        raise UnknownSplitError(
            f"Unknown split {split!r} for corpus {where}; expected one of "
            f"{sorted(known)} (aliases: {sorted(SPLIT_ALIASES)})."
        )
    return key


def _absolute(path) -> pathlib.Path:
    # Absolute and normalised, but symlinks kept: the record shows the path the user gave.
    return pathlib.Path(os.path.abspath(path))


def resolve_split(corpus: str, split: str, *, encoding: str = "utf-8",
                  valid_fraction: float = DEFAULT_VALID_FRACTION) -> TextSlice:
    """Which file, which part of it and which encoding a split of `corpus` is read from."""
    if corpus in CORPORA:
        spec = CORPORA[corpus].splits[_split_key(split, CORPORA[corpus].splits, repr(corpus))]
        path = _absolute(require_file(corpus, spec.filename))
        unit = "all" if (spec.start, spec.end) == (0.0, 1.0) else "chars"
        return TextSlice(path, "utf-8", unit, spec.start, spec.end)
    check_encoding(encoding)
    path = pathlib.Path(corpus).expanduser()
    if path.is_dir():
        files = {s: path / f for s, f in SPLIT_FILES.items()}
        missing = [files[s].name for s in ("train", "valid") if not files[s].is_file()]
        if missing:
            raise FileNotFoundError(
                f"config.data.corpus={corpus!r}: the directory {_absolute(path)} has no "
                f"{' or '.join(missing)}; a corpus directory holds train.txt and valid.txt "
                "(and optionally test.txt)")
        key = _split_key(split, [s for s, f in files.items() if f.is_file()], repr(corpus))
        return TextSlice(_absolute(files[key]), encoding)
    if path.is_file():
        if not 0.0 < valid_fraction < 1.0:
            raise ValueError(f"config.data.valid_fraction={valid_fraction} must be between 0 "
                             "and 1 (the fraction of the file's lines, at its end, for valid)")
        key = _split_key(split, ("train", "valid"), f"file {str(path)!r}")
        cut = 1.0 - valid_fraction
        start, end = (0.0, cut) if key == "train" else (cut, 1.0)
        return TextSlice(_absolute(path), encoding, "lines", start, end)
    raise ValueError(  # most often a misspelt name, so not a FileNotFoundError
        f"config.data.corpus={corpus!r} is neither a built-in corpus ({', '.join(CORPORA)}) "
        "nor an existing file or directory")


def data_options(data_cfg) -> dict:
    """The reading options of a `config.data` section; fields a config lacks get defaults."""
    return {"encoding": data_cfg.get("encoding", "utf-8") or "utf-8",
            "valid_fraction": float(data_cfg.get("valid_fraction", DEFAULT_VALID_FRACTION))}


def read_corpus(name: str, split: str, *, encoding: str = "utf-8",
                valid_fraction: float = DEFAULT_VALID_FRACTION) -> str:
    """The whole text of one split of a corpus (built-in name or path).

    Reads and holds all of it: for training, tasks stream splits into token files instead
    (data/token_cache.py)."""
    return resolve_split(name, split, encoding=encoding, valid_fraction=valid_fraction).read()
