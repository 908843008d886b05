"""Text files read in chunks, in a stated encoding, with errors that name the file and line.

A corpus may be larger than memory, so nothing here holds a whole file: bytes are decoded a
chunk at a time by an incremental decoder, and `line_chunks` re-cuts the decoded text right
after a newline. Tokenizers can then encode chunk by chunk and give exactly the ids of the whole
text, since no token of ours spans a newline (char: trivially; word: "\\n" is whitespace;
SentencePiece: "\\n" is a user-defined piece that is never merged); GPT-2's byte-level BPE,
whose tokens can, re-cuts further in its `encode_stream`. Memory is bounded by the chunk size
plus the longest line.

Reading never translates newlines (as `open(..., newline="")`), so character offsets are the
file's own.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Iterable, Iterator

CHUNK_BYTES = 1 << 22  # 4 MiB: a few tens of MB of working memory per chunk once tokenised
ENCODING_HINT = "set config.data.encoding (e.g. 'latin-1' or 'cp1252')"


class CorpusDecodeError(ValueError):
    """A text file holds bytes that are not valid in its stated encoding."""


def check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"config.data.encoding={encoding!r} is not a known text encoding "
                         "(e.g. 'utf-8', 'latin-1', 'cp1252')") from None


def iter_decoded(path: os.PathLike | str, encoding: str = "utf-8",
                 chunk_bytes: int | None = None) -> Iterator[str]:
    """The file's text, in pieces of about `chunk_bytes` bytes (not aligned to lines)."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    decoder = codecs.getincrementaldecoder(check_encoding(encoding))(errors="strict")
    newlines = 0  # so that an error can say which line it is on
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk_bytes)
            pending = decoder.getstate()[0]  # bytes the decoder holds from the last chunk
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                raise _decode_error(path, encoding, pending + data, e, newlines) from None
            if text:
                newlines += text.count("\n")
                yield text
            if not data:
                return


def _decode_error(path, encoding, data: bytes, e: UnicodeDecodeError, newlines: int):
    # The text before the bad byte decodes cleanly (the decoder got that far), so its newlines
    # can be counted in the file's own encoding.
    before = data[: e.start].decode(encoding, errors="replace")
    line = newlines + before.count("\n") + 1
    return CorpusDecodeError(f"{path} line {line}: byte 0x{data[e.start]:02x} is not valid "
                             f"{encoding}; {ENCODING_HINT}")


def line_chunks(pieces: Iterable[str]) -> Iterator[str]:
    """The same text re-cut so that every piece but the last ends with a newline."""
    carry = ""
    for piece in pieces:
        text = carry + piece if carry else piece
        cut = text.rfind("\n") + 1
        if cut:
            yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


_totals: dict[tuple, int] = {}  # a slice's text is read twice (to fit, to tokenise): count once


@dataclasses.dataclass(frozen=True)
class TextSlice:
    """The part [start, end) of a file, counted in characters or lines ("all": the whole file).

    `start`/`end` are fractions; they become positions as nanoGPT's `int(n * frac)` does, n
    being the file's number of characters or lines (a last line without a newline counts).
    """

    path: pathlib.Path
    encoding: str = "utf-8"
    unit: str = "all"  # "all" | "chars" | "lines"
    start: float = 0.0
    end: float = 1.0

    def describe(self) -> str:
        if self.unit == "all":
            return "whole file"
        return f"{self.unit} [{self.start:g}, {self.end:g}) of the file"

    def bounds(self, total: int) -> tuple[int, int]:
        return int(total * self.start), int(total * self.end)

    def total(self, chunk_bytes: int | None = None) -> int:
        """The file's number of characters or lines (one decoding pass, once per process)."""
        st = os.stat(self.path)
        key = (os.fspath(self.path), self.encoding, self.unit, st.st_size, st.st_mtime_ns)
        if key not in _totals:
            _totals[key] = self._count(chunk_bytes)
        return _totals[key]

    def _count(self, chunk_bytes) -> int:
        chars = lines = 0
        last = ""
        for text in iter_decoded(self.path, self.encoding, chunk_bytes):
            chars += len(text)
            lines += text.count("\n")
            last = text[-1]
        if self.unit == "chars":
            return chars
        return lines + (last not in ("", "\n"))

    def iter_text(self, chunk_bytes: int | None = None) -> Iterator[str]:
        """The slice's text in line-aligned pieces (see line_chunks)."""
        pieces = iter_decoded(self.path, self.encoding, chunk_bytes)
        if self.unit == "chars":
            pieces = _char_range(pieces, *self.bounds(self.total(chunk_bytes)))
        elif self.unit == "lines":
            pieces = _line_range(line_chunks(pieces), *self.bounds(self.total(chunk_bytes)))
        return line_chunks(pieces)

    def read(self) -> str:
        return "".join(self.iter_text())


def _char_range(pieces: Iterable[str], begin: int, end: int) -> Iterator[str]:
    pos = 0
    for text in pieces:
        lo, hi = max(begin - pos, 0), min(end - pos, len(text))
        if lo < hi:
            yield text[lo:hi]
        pos += len(text)
        if pos >= end:
            return


def _nth_line_start(text: str, n: int) -> int:
    """Offset just past the n-th newline of `text` (n >= 0; 0: the start)."""
    at = 0
    for _ in range(n):
        at = text.index("\n", at) + 1
    return at


def _line_range(pieces: Iterable[str], begin: int, end: int) -> Iterator[str]:
    # `pieces` are line-aligned, so a piece's lines are its newlines (+1 for an unended tail).
    line = 0
    for text in pieces:
        n = text.count("\n") + (not text.endswith("\n"))
        lo, hi = max(begin - line, 0), min(end - line, n)
        if lo < hi:
            a = _nth_line_start(text, lo)
            b = len(text) if hi == n else _nth_line_start(text, hi)
            yield text[a:b]
        line += n
        if line >= end:
            return


def file_digest(path: os.PathLike | str, chunk_bytes: int = 1 << 20) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while data := f.read(chunk_bytes):
            h.update(data)
            size += len(data)
    return size, h.hexdigest()
