"""The tokenizer of a Hugging Face Marian (OPUS-MT) checkpoint: two SentencePiece models and
one vocabulary, as transformers' MarianTokenizer reads them.

The source side's pieces come from `source.spm`, the target side's from `target.spm`; both map
to ids through `vocab.json` (a piece it lacks is <unk>, since Marian's ids are not the
SentencePiece ids). A leading language code such as ">>fr<<" is one token. Decoding drops the
special tokens and, with one shared vocabulary, joins pieces with the source model, as
transformers does. No EOS is added here: the seq2seq task appends it, as for every tokenizer.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import numpy as np

from llm_jax.data.tokenizers import TOKENIZERS, Tokenizer, as_ids

FILES = ("source.spm", "target.spm", "vocab.json")
SPECIAL = {"pad": "<pad>", "eos": "</s>", "unk": "<unk>"}


class MarianTokenizer(Tokenizer):
    kind = "marian"

    def __init__(self, directory: pathlib.Path):
        import sentencepiece as spm

        self.directory = pathlib.Path(directory)
        missing = [f for f in FILES if not (self.directory / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.directory}: no {', '.join(missing)} (a Marian "
                                    "tokenizer needs source.spm, target.spm and vocab.json)")
        if (self.directory / "target_vocab.json").exists():
            raise ValueError(f"{self.directory}/target_vocab.json: Marian models with separate "
                             "source and target vocabularies are not supported")
        self._source = spm.SentencePieceProcessor(model_file=str(self.directory / FILES[0]))
        self._target = spm.SentencePieceProcessor(model_file=str(self.directory / FILES[1]))
        self.vocab = json.loads((self.directory / FILES[2]).read_text(encoding="utf-8"))
        for token in SPECIAL.values():
            if token not in self.vocab:
                raise ValueError(f"{self.directory}/vocab.json has no {token} token")
        self.pieces = {i: p for p, i in self.vocab.items()}
        self.special_ids = {name: self.vocab[t] for name, t in SPECIAL.items()}
        self.special_ids["bos"] = self.special_ids["pad"]  # Marian's decoder starts from <pad>

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    def _ids(self, sp, text: str) -> list[int]:
        code = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[:end + 2]], text[end + 2:]
        unk = self.special_ids["unk"]
        return [self.vocab.get(p, unk) for p in code + sp.encode(text, out_type=str)]

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._ids(self._source, text), np.int32)

    def encode_lines(self, lines) -> list[np.ndarray]:
        return [self.encode(line) for line in lines]

    def encode_target_lines(self, lines) -> list[np.ndarray]:
        return [np.asarray(self._ids(self._target, line), np.int32) for line in lines]

    def decode(self, ids: Any) -> str:
        special = set(self.special_ids.values())
        pieces = [self.pieces.get(int(i)) or self._source.id_to_piece(int(i))
                  for i in as_ids(ids, self.vocab_size).tolist() if int(i) not in special]
        return self._source.decode_pieces(pieces).replace("\u2581", " ").strip()

    def _config(self, directory):
        for name in FILES:
            if (directory / name).resolve() != (self.directory / name).resolve():
                directory.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.directory / name, directory / name)
        return {"files": list(FILES)}

    @classmethod
    def _from_config(cls, config, directory):
        return cls(directory)


TOKENIZERS[MarianTokenizer.kind] = MarianTokenizer
