"""How a task reads the splits of `config.data`: which file, recorded in the workdir, and
tokenised once into the token cache.

Every split read from files is resolved (data/corpora.py), checked against or added to
WORKDIR/data_files.json (data/data_record.py) the first time this reader touches it, and its
ids come from the token cache (data/token_cache.py): WORKDIR/tokens unless
`config.data.token_cache_dir` names a directory to share between runs.

Why the workdir by default: the workdir already holds everything a result depends on, a
resumed run and `eval` find the tokens there with no setting, deleting a run frees them, and
nothing grows unseen in a home directory. The cache key holds the file's hash and the
tokenizer's fingerprint, so sharing one directory (a sweep over one corpus) is just as safe.

TensorFlow Datasets splits (`data.source="tfds"`) have no file to record or hash: they are read
and tokenised in memory, as before.
"""

from __future__ import annotations

import os

import numpy as np

from llm_jax.data import data_record
from llm_jax.data.corpora import SPLIT_ALIASES, data_options, resolve_split
from llm_jax.data.text_files import TextSlice
from llm_jax.data.tfds_source import read_tfds_text
from llm_jax.data.token_cache import cached_tokens, tokenizer_fingerprint

TOKENS_DIR = "tokens"
SOURCES = ("files", "tfds")


def canonical_split(split: str) -> str:
    return SPLIT_ALIASES.get(split, split)


class SplitReader:
    def __init__(self, data_cfg, workdir: str | None):
        if data_cfg.source not in SOURCES:
            raise ValueError(f"config.data.source={data_cfg.source!r}: expected 'files' or 'tfds'")
        self.cfg, self.workdir = data_cfg, workdir
        cache = data_cfg.get("token_cache_dir", "")
        self.cache_dir = os.path.expanduser(cache) if cache else (
            os.path.join(workdir, TOKENS_DIR) if workdir else None)
        self._sources: dict[str, TextSlice] = {}
        self._fingerprints: dict[int, tuple] = {}

    @property
    def from_files(self) -> bool:
        return self.cfg.source == "files"

    def source(self, split: str) -> TextSlice:
        """The split's file; recorded in (or checked against) WORKDIR/data_files.json."""
        key = canonical_split(split)
        if key not in self._sources:
            src = resolve_split(self.cfg.corpus, split, **data_options(self.cfg))
            if self.workdir is not None:
                data_record.record_split(self.workdir, key, src)
            self._sources[key] = src
        return self._sources[key]

    def record(self, *splits: str) -> None:
        """Resolves and records these splits now (files only), before anything reads them."""
        if self.from_files:
            for split in splits:
                self.source(split)

    def check(self, split: str) -> None:
        """Raises DataChangedError if the split was recorded from other data; writes nothing
        (and resolves nothing for a split the record does not hold)."""
        if not self.from_files or self.workdir is None:
            return
        if canonical_split(split) in data_record.read_record(self.workdir)["splits"]:
            src = resolve_split(self.cfg.corpus, split, **data_options(self.cfg))
            data_record.check_split(self.workdir, canonical_split(split), src)

    def text(self, split: str) -> str:
        """The split's whole text, in memory (for fitting word and SentencePiece vocabularies)."""
        if not self.from_files:
            return read_tfds_text(self.cfg.tfds_name, split)
        return self.source(split).read()

    def pieces(self, split: str):
        """The split's text in line-aligned chunks, never all of it at once."""
        if not self.from_files:
            return iter([self.text(split)])
        return self.source(split).iter_text()

    def tokens(self, split: str, tokenizer) -> np.ndarray:
        """The split's ids: a read-only memory map of its token file (built on first use)."""
        if not self.from_files or self.cache_dir is None:
            return np.asarray(tokenizer.encode("".join(self.pieces(split))), np.int32)
        src = self.source(split)
        # Hashed once per tokenizer (kept alive here, so that its id is not reused).
        if id(tokenizer) not in self._fingerprints:
            self._fingerprints[id(tokenizer)] = (tokenizer, tokenizer_fingerprint(tokenizer))
        fingerprint = self._fingerprints[id(tokenizer)][1]
        _, sha = data_record.digest(src.path)
        return cached_tokens(src, sha, tokenizer, self.cache_dir, canonical_split(split),
                             fingerprint=fingerprint)


def check_recorded(data_cfg, workdir: str, splits) -> None:
    """For `eval`: DataChangedError if any of `splits` that WORKDIR/data_files.json records is
    now read from other data. A run with no record (another kind of task, or older code) passes."""
    if data_cfg.get("source") != "files" or not os.path.isfile(
            os.path.join(workdir, data_record.RECORD_FILE)):
        return
    reader = SplitReader(data_cfg, workdir)
    for split in dict.fromkeys(s for s in splits if s):
        reader.check(split)
