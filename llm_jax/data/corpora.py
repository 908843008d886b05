"""Plain-text language-modelling corpora, in the layout of their canonical downloads."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from llm_jax.data.paths import require_file


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
}

# nanoGPT and many configs say "val"; the canonical files say "valid".
SPLIT_ALIASES = {"val": "valid", "validation": "valid"}


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; expected one of {sorted(CORPORA)}.")
    return CORPORA[name]


def read_corpus(name: str, split: str) -> str:
    """The text of one split of a registered corpus, read from the data directory."""
    corpus = get_corpus(name)
    key = SPLIT_ALIASES.get(split, split)
    if key not in corpus.splits:
        raise ValueError(
            f"Unknown split {split!r} for corpus {name!r}; expected one of "
            f"{sorted(corpus.splits)} (aliases: {sorted(SPLIT_ALIASES)})."
        )
    spec = corpus.splits[key]
    path = require_file(corpus.name, spec.filename)
    # newline="" keeps the bytes as they are, so character offsets match the file's.
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if (spec.start, spec.end) == (0.0, 1.0):
        return text
    n = len(text)
    # int(n * frac) is exactly nanoGPT's `int(n*0.9)` boundary.
    return text[int(n * spec.start) : int(n * spec.end)]
