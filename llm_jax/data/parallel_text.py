"""Parallel text (source and target sentences, one pair per line number) for seq2seq tasks.

`corpus` is a built-in name or a directory:
  * "multi30k": LLM_JAX_DATA_DIR/multi30k/{train,val,test_2016_flickr}.{de,en}.gz (task 1,
    raw text, UTF-8). Splits "train", "valid" (-> val), "test" (-> test_2016_flickr); the
    file stems "val" and "test_2016_flickr" are accepted too.
  * "samsum": LLM_JAX_DATA_DIR/samsum/{train,val,test}.json; source = dialogue, target =
    summary, and src_lang/tgt_lang are ignored. Splits "train", "valid" (-> val), "test".
  * a directory of Moses/fairseq-style files DIR/{split}.{lang}, or DIR/{split}.{lang}.gz,
    read in `encoding` (config.data.encoding). Split "valid" also finds val.* and dev.*; any
    other split name is the file stem itself (e.g. "newstest2014").

Lines are cut at "\\n" only (str.splitlines would also cut at U+2028, U+0085 and the like,
which do occur inside sentences, and the two sides would then drift apart); a "\\r" before
the newline is dropped, so Windows files read the same. Empty lines are kept: a test set may
have them, and dropping one on one side only would misalign every later pair.
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib
from typing import Any

from llm_jax.data.paths import require_file
from llm_jax.data.text_files import ENCODING_HINT, CorpusDecodeError, check_encoding

MULTI30K_SPLITS = {"train": "train", "valid": "val", "val": "val", "validation": "val",
                   "test": "test_2016_flickr", "test_2016_flickr": "test_2016_flickr"}
SAMSUM_SPLITS = {"train": "train", "valid": "val", "val": "val", "validation": "val",
                 "test": "test"}
BUILTIN = ("multi30k", "samsum")
# File stems a directory's "valid" split may have (fairseq: valid, Multi30k: val, WMT: dev).
DIR_SPLIT_STEMS = {"valid": ("valid", "val", "dev"), "validation": ("valid", "val", "dev")}


def _split_stem(table: dict[str, str], split: str, corpus: str) -> str:
    if split not in table:
        raise ValueError(f"Unknown split {split!r} for corpus {corpus!r}; expected one of "
                         f"{sorted(table)}.")
    return table[split]


def _absolute(path) -> pathlib.Path:
    return pathlib.Path(os.path.abspath(path))


def _dir_file(directory: pathlib.Path, split: str, lang: str) -> pathlib.Path:
    tried = []
    for stem in DIR_SPLIT_STEMS.get(split, (split,)):
        for name in (f"{stem}.{lang}", f"{stem}.{lang}.gz"):  # plain text wins over .gz
            path = _absolute(directory / name)
            if path.is_file():
                return path
            tried.append(str(path))
    raise FileNotFoundError(f"split {split!r}, language {lang!r}: no file {' or '.join(tried)} "
                            f"(config.data.corpus={str(directory)!r})")


def parallel_files(corpus: str, split: str, src_lang: str, tgt_lang: str
                   ) -> tuple[pathlib.Path, pathlib.Path]:
    """The (source, target) files a split is read from (the same JSON file twice for samsum),
    for recording in a workdir; FileNotFoundError naming the path(s) if one is missing."""
    if corpus == "multi30k":
        stem = _split_stem(MULTI30K_SPLITS, split, corpus)
        return (_absolute(require_file(corpus, f"{stem}.{src_lang}.gz")),
                _absolute(require_file(corpus, f"{stem}.{tgt_lang}.gz")))
    if corpus == "samsum":
        path = _absolute(require_file(corpus, f"{_split_stem(SAMSUM_SPLITS, split, corpus)}.json"))
        return path, path
    directory = pathlib.Path(corpus).expanduser()
    if not directory.is_dir():  # most often a misspelt name, so not a FileNotFoundError
        raise ValueError(f"config.data.corpus={corpus!r} is neither a built-in parallel corpus "
                         f"({', '.join(BUILTIN)}) nor an existing directory")
    return _dir_file(directory, split, src_lang), _dir_file(directory, split, tgt_lang)


def read_lines(path: os.PathLike | str, encoding: str = "utf-8") -> list[str]:
    """A text file's lines (gzip if the name ends in .gz), newlines removed, empty lines kept;
    a last line without a newline counts, like `wc -l` plus one."""
    path = pathlib.Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError) as e:  # a truncated or mislabelled download
        raise ValueError(f"{path}: not a complete gzip file ({e})") from None
    try:
        text = data.decode(check_encoding(encoding))
    except UnicodeDecodeError as e:
        line = data[: e.start].decode(encoding, errors="replace").count("\n") + 1
        raise CorpusDecodeError(f"{path} line {line}: byte 0x{data[e.start]:02x} is not valid "
                                f"{encoding}; {ENCODING_HINT}") from None
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [s[:-1] if s.endswith("\r") else s for s in lines]


def _read_samsum(path: pathlib.Path) -> tuple[list[str], list[str]]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not a SAMSum JSON file ({type(e).__name__}: {e})") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON array of {{'id', 'dialogue', 'summary'}}, "
                         f"got a {type(records).__name__}")
    src, tgt = [], []
    for i, record in enumerate(records):
        for field in ("dialogue", "summary"):
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise ValueError(f"{path}: record {i} has no text field {field!r}")
        # The release separates turns by "\r\n" in most dialogues and "\n" in the rest; one
        # separator means the tokenizer sees one kind of turn boundary.
        src.append(record["dialogue"].replace("\r\n", "\n"))
        tgt.append(record["summary"].replace("\r\n", "\n"))
    return src, tgt


def read_parallel(corpus: str, split: str, src_lang: str, tgt_lang: str, *,
                  encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """(source sentences, target sentences) of one split, of equal length.

    Built-in corpora are UTF-8; a directory's files are read in `encoding`. For "samsum"
    src_lang/tgt_lang are ignored (source = dialogue, target = summary; "\\r\\n" turn
    separators become "\\n"). A missing file raises FileNotFoundError naming the path(s)
    tried; sides with different line counts raise ValueError naming both files and counts;
    undecodable bytes raise CorpusDecodeError (a ValueError) naming the file and line.
    """
    src_path, tgt_path = parallel_files(corpus, split, src_lang, tgt_lang)
    if corpus == "samsum":
        return _read_samsum(src_path)
    if corpus == "multi30k":
        encoding = "utf-8"
    src, tgt = read_lines(src_path, encoding), read_lines(tgt_path, encoding)
    if len(src) != len(tgt):
        raise ValueError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
                         "the source and target files of a split must pair line by line")
    return src, tgt


def _text(value: Any, name: str, feature: str) -> str:
    if hasattr(value, "item") and not isinstance(value, (bytes, str)):  # numpy scalar
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"{name}: feature {feature!r} is a {type(value).__name__}, expected text")


def read_tfds_parallel(name: str, split: str, src_lang: str, tgt_lang: str, *,
                       data_dir: os.PathLike | str | None = None) -> tuple[list[str], list[str]]:
    """(source, target) texts of a TFDS split, through `tfds.data_source` (no TensorFlow).

    src_lang/tgt_lang are feature names: the language codes of a translation data set
    ("wmt14_translate/de-en": {"de": bytes, "en": bytes}), or any two text features
    ("samsum": "dialogue", "summary"). The data must be prepared (ArrayRecord) in `data_dir`.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "read_tfds_parallel needs TensorFlow Datasets: pip install llm_jax[tfds]") from e
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    src, tgt = [], []
    for example in source:
        for feature in (src_lang, tgt_lang):
            if feature not in example:
                raise KeyError(f"Feature {feature!r} is not in {name}/{split}; it has "
                               f"{sorted(example)} (set the source and target languages to two "
                               "of these)")
        src.append(_text(example[src_lang], name, src_lang))
        tgt.append(_text(example[tgt_lang], name, tgt_lang))
    return src, tgt
