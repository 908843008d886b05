"""Character, word and SentencePiece tokenizers behind one small interface.

Every tokenizer has `encode(text) -> int32[N]`, `decode(ids) -> str`, `vocab_size`
and `save(directory)`; `load_tokenizer(directory)` reads back any of them from the
`tokenizer.json` that `save` writes (plus `spm.model` for SentencePiece). For text the
tokenizer covers (char: its characters; word: its vocabulary, single-spaced; SentencePiece:
any text), `decode(encode(s)) == s`.
"""

from __future__ import annotations

import abc
import collections
import json
import os
import pathlib
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

CONFIG_FILE = "tokenizer.json"
UNK = "<unk>"
EOS = "<eos>"
SPACE_SYMBOL = "\u2581"  # SentencePiece's "▁", which it writes for a space


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    # Write-then-rename, so a crash never leaves a truncated tokenizer next to a checkpoint.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def as_ids(ids: Any, vocab_size: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros((0,), np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"decode expects a 1-D integer sequence of ids, got {arr.dtype}{arr.shape}."
        )
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        raise ValueError(f"Token id {arr[bad][0]} is outside the vocabulary [0, {vocab_size}).")
    return arr.astype(np.int64)


class Tokenizer(abc.ABC):
    kind: ClassVar[str]

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    @abc.abstractmethod
    def encode(self, text: str) -> np.ndarray: ...

    @abc.abstractmethod
    def decode(self, ids: Any) -> str: ...

    def encode_stream(self, pieces: Iterable[str]) -> Iterator[np.ndarray]:
        """The ids of "".join(pieces), a piece at a time, for pieces cut right after a newline
        (text_files.line_chunks): no token of these tokenizers spans one, so each piece is
        encoded alone. A tokenizer whose tokens can (byte-level BPE) cuts where it needs to."""
        return (self.encode(piece) for piece in pieces)

    @abc.abstractmethod
    def _config(self, directory: pathlib.Path) -> dict[str, Any]:
        """The JSON data that `_from_config` reads back (may write side files)."""

    @classmethod
    @abc.abstractmethod
    def _from_config(cls, config: dict[str, Any], directory: pathlib.Path) -> Tokenizer: ...

    def save(self, directory: os.PathLike | str) -> pathlib.Path:
        directory = pathlib.Path(directory)
        config = {"kind": self.kind, **self._config(directory)}
        path = directory / CONFIG_FILE
        write_atomic(path, json.dumps(config, ensure_ascii=False, indent=1).encode("utf-8"))
        return path


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer needs distinct single characters.")
        self.chars = sorted(chars)
        # Sorted code points let encode use one vectorised searchsorted.
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        if not len(self._codes):
            if len(codes):
                raise ValueError(
                    f"Character {text[0]!r} at position 0 is not in the (empty) vocabulary."
                )
            return np.zeros((0,), np.int32)
        idx = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        unknown = np.flatnonzero(self._codes[idx] != codes)
        if unknown.size:
            pos = int(unknown[0])
            raise ValueError(
                f"Character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} is not in "
                f"the vocabulary of {self.vocab_size} characters."
            )
        return idx.astype(np.int32)

    def decode(self, ids: Any) -> str:
        return (
            self._codes[as_ids(ids, self.vocab_size)].astype("<u4").tobytes().decode("utf-32-le")
        )

    def _config(self, directory):
        return {"chars": "".join(self.chars)}

    @classmethod
    def _from_config(cls, config, directory):
        return cls(list(config["chars"]))


def split_words(text: str) -> list[str]:
    # PTB convention (Zaremba et al.'s reader): every newline is an <eos> token.
    return text.replace("\n", f" {EOS} ").split()


class WordTokenizer(Tokenizer):
    """Whitespace-separated words; newline <-> <eos>; out-of-vocabulary words -> <unk>."""

    kind = "word"

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self._ids = {w: i for i, w in enumerate(self.words)}
        if len(self._ids) != len(self.words):
            raise ValueError("WordTokenizer vocabulary has duplicate words.")
        for special in (UNK, EOS):
            if special not in self._ids:
                raise ValueError(f"WordTokenizer vocabulary must contain {special!r}.")
        self.unk_id = self._ids[UNK]
        self.eos_id = self._ids[EOS]

    @classmethod
    def fit(cls, text: str, min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        """Vocabulary ordered by count (descending), then word; rare words fold into <unk>."""
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be at least 2 (<unk> and <eos>), got {max_size}.")
        counts = collections.Counter(split_words(text))
        # The text's own "<unk>" (PTB has one) is the same token as ours.
        unk_count, eos_count = counts.pop(UNK, 0), counts.pop(EOS, 0)
        kept = sorted(
            ((w, c) for w, c in counts.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0])
        )
        if max_size is not None:
            kept = kept[: max_size - 2]
        unk_count += sum(counts.values()) - sum(c for _, c in kept)
        vocab = sorted(kept + [(UNK, unk_count), (EOS, eos_count)], key=lambda wc: (-wc[1], wc[0]))
        return cls([w for w, _ in vocab])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> np.ndarray:
        get, unk = self._ids.get, self.unk_id
        return np.fromiter((get(w, unk) for w in split_words(text)), dtype=np.int32)

    def decode(self, ids: Any) -> str:
        words = [self.words[i] for i in as_ids(ids, self.vocab_size).tolist()]
        text = " ".join("\n" if w == EOS else w for w in words)
        return re.sub(r" ?\n ?", "\n", text)

    def _config(self, directory):
        return {"words": self.words}

    @classmethod
    def _from_config(cls, config, directory):
        return cls(config["words"])


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"
    MODEL_FILE = "spm.model"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def fit(
        cls,
        text: str,
        vocab_size: int,
        model_type: str = "bpe",
        workdir: os.PathLike | str | None = None,
        **trainer_options: Any,
    ) -> SentencePieceTokenizer:
        """Train on `text`; if `workdir` is given, save the tokenizer there."""
        import sentencepiece as spm

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}.")
        options = {
            "vocab_size": vocab_size,
            "model_type": model_type,
            "character_coverage": 1.0,
            # Identity normalisation, kept spaces and no dummy prefix make decode(encode(s)) == s.
            "normalization_rule_name": "identity",
            "remove_extra_whitespaces": False,
            "add_dummy_prefix": False,
            # Bytes for characters unseen in training, instead of a lossy <unk>.
            "byte_fallback": True,
            # The trainer reads one sentence per line, so "\n" needs its own piece.
            "user_defined_symbols": ["\n"],
            "hard_vocab_limit": False,
            "max_sentence_length": 1 << 16,
            "num_threads": os.cpu_count() or 1,
            "minloglevel": 2,
        }
        options.update(trainer_options)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = pathlib.Path(tmp, "input.txt")
            corpus.write_text(text, encoding="utf-8")
            prefix = pathlib.Path(tmp, "spm")
            try:
                spm.SentencePieceTrainer.train(
                    input=str(corpus), model_prefix=str(prefix), **options
                )
            except RuntimeError as e:
                raise ValueError(
                    f"SentencePiece training failed (vocab_size={vocab_size}): {e}"
                ) from e
            tokenizer = cls(prefix.with_suffix(".model").read_bytes())
        if workdir is not None:
            tokenizer.save(workdir)
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def _encode_lines(self, text: str) -> list[int]:
        # Line by line, in one batched call. No piece spans "\n" (a user-defined symbol), so
        # for BPE these are the ids of the whole text (and ~4x faster on WikiText-2). For
        # unigram they are each line's best segmentation: SentencePiece adds path scores in
        # float32 over its whole input, so on a long text near-ties fall by rounding, and the
        # ids would depend on how much text one call is given (a whole file, a chunk).
        lines = text.split("\n")
        lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        return [i for ids in self._sp.encode(lines) for i in ids] if lines else []

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text`. SentencePiece reads a literal U+2581 as a space (its own symbol for
        one), so each is encoded as its three UTF-8 byte pieces instead, which decode back to
        U+2581; text without one is encoded as SentencePiece does, line by line."""
        if SPACE_SYMBOL not in text:
            return np.asarray(self._encode_lines(text), dtype=np.int32)
        escape = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in SPACE_SYMBOL.encode("utf-8")]
        if any(self._sp.is_unknown(i) for i in escape):
            raise ValueError("this SentencePiece model has no byte pieces (byte_fallback), so it "
                             "cannot keep U+2581 in text")
        ids: list[int] = []
        for i, part in enumerate(text.split(SPACE_SYMBOL)):
            ids.extend(escape if i else ())
            ids.extend(self._encode_lines(part))
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Any) -> str:
        return self._sp.decode(as_ids(ids, self.vocab_size).tolist())

    def encode_lines(self, lines: Sequence[str]) -> list[np.ndarray]:
        """Each line's ids, in one batched call (sentences of a parallel corpus)."""
        if any(SPACE_SYMBOL in line or "\n" in line for line in lines):
            return [self.encode(line) for line in lines]
        return [np.asarray(ids, np.int32) for ids in self._sp.encode(list(lines))]

    @property
    def special_ids(self) -> dict:
        """{"pad", "unk", "bos", "eos"} -> id, -1 where the model has none."""
        sp = self._sp
        return {"pad": sp.pad_id(), "unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id()}

    def _config(self, directory):
        write_atomic(directory / self.MODEL_FILE, self.model_proto)
        return {"model_file": self.MODEL_FILE}

    @classmethod
    def _from_config(cls, config, directory):
        return cls((directory / config["model_file"]).read_bytes())


TOKENIZERS: dict[str, type[Tokenizer]] = {
    t.kind: t for t in (CharTokenizer, WordTokenizer, SentencePieceTokenizer)
}


def _check_kind(kind: str, where: str) -> type[Tokenizer]:
    if kind not in TOKENIZERS:
        raise ValueError(
            f"Unknown tokenizer kind {kind!r} in {where}; expected one of {sorted(TOKENIZERS)}."
        )
    return TOKENIZERS[kind]


def make_tokenizer(kind: str, text: str, **options: Any) -> Tokenizer:
    """Fit a tokenizer of `kind` ("char", "word" or "sentencepiece") on `text`."""
    return _check_kind(kind, "field `kind`").fit(text, **options)


def load_tokenizer(directory: os.PathLike | str) -> Tokenizer:
    """Read back a tokenizer that `save(directory)` wrote."""
    directory = pathlib.Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No tokenizer at {directory}: {path} does not exist.")
    config = json.loads(path.read_text(encoding="utf-8"))
    cls = _check_kind(config.get("kind"), f"field `kind` of {path}")
    return cls._from_config(config, directory)
