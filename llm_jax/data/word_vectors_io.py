"""The word2vec vector formats (text and binary), as written by the C tool and read by gensim.

Both start with a "<count> <dim>" line. Text: one "word v1 ... vd" line per word. Binary: per
word, the word, a space, dim little-endian float32s and a newline (gensim also reads files
without the newline, and so does load_word2vec_format here).
"""

from __future__ import annotations

import os

import numpy as np


def save_word2vec_format(path, words, vectors, *, binary: bool):
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2 or len(words) != vectors.shape[0]:
        raise ValueError(f"{path}: {len(words)} words but vectors of shape {vectors.shape}")
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ValueError(f"{path}: word {w!r} is empty or holds whitespace; the format cannot store it")
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        if binary:
            little = vectors.astype("<f4")
            for w, v in zip(words, little):
                f.write(w.encode("utf-8") + b" " + v.tobytes() + b"\n")
        else:
            for w, v in zip(words, vectors):
                f.write((w + " " + " ".join(f"{x:.6g}" for x in v) + "\n").encode("utf-8"))
    os.replace(tmp, path)  # never leave a half-written vectors file


def _header(path, line: bytes):
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{path}: first line should be '<count> <dim>', got {line[:80]!r}")
    return int(parts[0]), int(parts[1])


def load_word2vec_format(path, *, binary: bool | None = None):
    """(words, float32[count, dim]); `binary` None guesses from the file's bytes."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"word vectors file {path} not found")
    with open(path, "rb") as f:
        count, dim = _header(path, f.readline())
        body = f.read()
    if binary is None:
        binary = _looks_binary(body)
    words, vectors = [], np.empty((count, dim), np.float32)
    if binary:
        pos = 0
        for i in range(count):
            while pos < len(body) and body[pos:pos + 1] in (b"\n", b" "):
                pos += 1
            space = body.find(b" ", pos)
            if space < 0 or space + 1 + 4 * dim > len(body):
                raise ValueError(f"{path}: truncated at vector {i} of {count}")
            words.append(body[pos:space].decode("utf-8"))
            vectors[i] = np.frombuffer(body, "<f4", dim, space + 1)
            pos = space + 1 + 4 * dim
    else:
        lines = body.decode("utf-8").splitlines()
        if len(lines) < count:
            raise ValueError(f"{path}: header says {count} vectors, file has {len(lines)} lines")
        for i, line in enumerate(lines[:count]):
            parts = line.rstrip().split(" ")
            if len(parts) != dim + 1:
                raise ValueError(f"{path}:{i + 2}: expected a word and {dim} numbers, "
                                 f"got {len(parts)} fields")
            words.append(parts[0])
            vectors[i] = np.asarray(parts[1:], np.float32)
    return words, vectors


def _looks_binary(body: bytes) -> bool:
    try:
        body[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return True
    head = body[:4096]
    return b"\x00" in head or any(b < 9 for b in head)
