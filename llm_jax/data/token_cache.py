"""Splits tokenised once into flat token files on disk, read back as memory maps.

A token file is the split's ids in order, little-endian uint16 (vocabularies up to 65,536) or
int32, with a JSON sidecar that says what it holds. Its name is a hash of everything the ids
depend on: the text file's sha256, which part of it and in which encoding, and the tokenizer's
fingerprint (the sha256 of what `Tokenizer.save` writes). A file the cache finds is therefore
the very ids that tokenising now would give, so a resumed run, `eval` and every later read of a
split skip tokenisation, and a corpus larger than memory is read window by window.

Tokenising streams the text in line-aligned chunks (text_files.line_chunks), writes the ids to
a temporary file and renames it into place, so a crash never leaves a partial token file and
two processes building the same file write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile

import numpy as np

from llm_jax.data.text_files import CorpusDecodeError, TextSlice
from llm_jax.data.tokenizers import Tokenizer

FORMAT = "llm_jax.tokens/1"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<i4")


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """sha256 over the files `tokenizer.save` writes: equal fingerprints, equal ids."""
    h = hashlib.sha256(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}".encode())
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        for path in sorted(pathlib.Path(tmp).rglob("*")):
            if path.is_file():
                h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def cache_key(source: TextSlice, file_sha256: str, fingerprint: str) -> str:
    spec = {"format": FORMAT, "sha256": file_sha256, "part": source.describe(),
            "encoding": source.encoding, "tokenizer": fingerprint}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _open(path: pathlib.Path, header: dict) -> np.ndarray:
    n, dtype = int(header["num_tokens"]), np.dtype(header["dtype"])
    if n == 0:  # an empty file cannot be memory-mapped
        return np.zeros((0,), dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def _read_header(sidecar: pathlib.Path, data: pathlib.Path, key: str) -> dict | None:
    try:
        header = json.loads(sidecar.read_text(encoding="utf-8"))
        expected = int(header["num_tokens"]) * np.dtype(header["dtype"]).itemsize
        if header.get("key") == key and data.stat().st_size == expected:
            return header
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None  # missing, partial or foreign: build it again


def cached_tokens(source: TextSlice, file_sha256: str, tokenizer: Tokenizer, cache_dir,
                  name: str = "tokens", *, fingerprint: str | None = None) -> np.ndarray:
    """The ids of `source` under `tokenizer`, from the cache in `cache_dir` (built if absent).

    Returns a read-only np.memmap; `name` (e.g. the split) only prefixes the file name.
    """
    fingerprint = fingerprint or tokenizer_fingerprint(tokenizer)
    key = cache_key(source, file_sha256, fingerprint)
    cache_dir = pathlib.Path(cache_dir)
    data = cache_dir / f"{name}-{key[:24]}.bin"
    sidecar = data.with_suffix(".json")
    header = _read_header(sidecar, data, key)
    if header is None:
        header = build_token_file(source, tokenizer, data, key=key, fingerprint=fingerprint,
                                  file_sha256=file_sha256)
    return _open(data, header)


def build_token_file(source: TextSlice, tokenizer: Tokenizer, data: pathlib.Path, *, key: str,
                     fingerprint: str, file_sha256: str) -> dict:
    dtype = token_dtype(tokenizer.vocab_size)
    data.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{data.name}.", dir=data.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                for ids in tokenizer.encode_stream(source.iter_text()):
                    n += len(ids)
                    np.ascontiguousarray(ids, dtype=dtype).tofile(f)
            except CorpusDecodeError:  # reading the file, not tokenising it: says where already
                raise
            except ValueError as e:  # e.g. a character the vocabulary lacks: say where
                raise ValueError(f"{source.path} ({source.describe()}): {e}") from None
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a shared cache is read by others
        os.replace(tmp, data)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    header = {"format": FORMAT, "key": key, "dtype": dtype.str, "num_tokens": n,
              "source": {"path": str(source.path), "sha256": file_sha256,
                         "part": source.describe(), "encoding": source.encoding},
              "tokenizer": {"kind": tokenizer.kind, "fingerprint": fingerprint,
                            "vocab_size": tokenizer.vocab_size}}
    # The sidecar goes last and atomically: its presence means the token file is complete.
    side = data.with_suffix(".json")
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    tmp_side.write_text(json.dumps(header, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_side, side)
    return header


def fit_chars(source_pieces) -> list[str]:
    """The sorted character set of streamed text (CharTokenizer.fit without holding the text)."""
    seen = np.zeros((0x110000,), bool)
    for piece in source_pieces:
        codes = np.frombuffer(piece.encode("utf-32-le"), dtype="<u4")
        seen[codes] = True
    return [chr(c) for c in np.flatnonzero(seen)]
