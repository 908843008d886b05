"""ALBERT's tokenizer: its SentencePiece unigram model (`spiece.model`) run as transformers'
AlbertTokenizer (fast) runs it, in the Hugging Face `tokenizers` pipeline of
bert_tokenizers.py, so ids, pair layouts and offsets agree with transformers'.
"""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

from llm_jax.data.bert_tokenizers import (
    PipelineTokenizer,
    add_special_tokens,
    bert_template,
    hf_tokenizers,
    text_lines,
)
from llm_jax.data.tokenizers import TOKENIZERS, write_atomic

ALBERT_SPECIALS = {"pad": "<pad>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
# ALBERT's spm_train flags (google-research/albert README), which put the specials at 0-4.
ALBERT_SYMBOLS = ("(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac")


def albert_normalizers(lowercase: bool, keep_accents: bool) -> list:
    # ALBERT's own preprocessing (its tokenization.py) before the model's SentencePiece rules.
    n = hf_tokenizers().normalizers
    steps = [n.Replace("``", '"'), n.Replace("''", '"')]
    if not keep_accents:
        steps += [n.NFKD(), n.StripAccents()]
    return steps + ([n.Lowercase()] if lowercase else [])


class AlbertSentencePieceTokenizer(PipelineTokenizer):
    """ALBERT's SentencePiece unigram model, from its `spiece.model`, run as transformers'
    AlbertTokenizer (fast) runs it: lower-cased, accents stripped, "▁" before each
    whitespace-separated word; control and user-defined pieces ([CLS], "(", ...) are matched in
    the raw text first, so "(test)" is "(", "▁test", ")" where SentencePiece itself would give
    "▁", "(", "test", ")"."""

    kind = "albert_sp"
    MODEL_FILE = "spiece.model"

    def __init__(self, model_proto: bytes, lowercase: bool = True, keep_accents: bool = False):
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2

        tk = hf_tokenizers()
        try:
            spm.SentencePieceProcessor(model_proto=model_proto)  # validates the proto
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"not a SentencePiece model ({e})") from None
        proto = sentencepiece_model_pb2.ModelProto.FromString(model_proto)
        if proto.trainer_spec.model_type != proto.trainer_spec.UNIGRAM:
            raise ValueError("not a unigram SentencePiece model")
        self.model_proto, self.lowercase, self.keep_accents = model_proto, lowercase, keep_accents
        pieces = proto.pieces
        unk = next((i for i, p in enumerate(pieces) if p.type == p.UNKNOWN), None)
        if unk is None:
            raise ValueError("the SentencePiece model has no unknown piece")
        hf = tk.Tokenizer(tk.models.Unigram([(p.piece, p.score) for p in pieces], unk_id=unk,
                                            byte_fallback=proto.trainer_spec.byte_fallback))
        steps = albert_normalizers(lowercase, keep_accents)
        if proto.normalizer_spec.precompiled_charsmap:
            steps.append(tk.normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
        hf.normalizer = tk.normalizers.Sequence(steps)
        hf.pre_tokenizer = tk.pre_tokenizers.Sequence([
            tk.pre_tokenizers.WhitespaceSplit(),
            tk.pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")])
        hf.decoder = tk.decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
        add_special_tokens(hf, [p.piece for p in pieces if p.type in (p.UNKNOWN, p.CONTROL)])
        hf.add_tokens([tk.AddedToken(p.piece, normalized=False, special=False)
                       for p in pieces if p.type == p.USER_DEFINED])
        self._set_pipeline(hf, ALBERT_SPECIALS)
        hf.post_processor = bert_template(hf, ALBERT_SPECIALS["cls"], ALBERT_SPECIALS["sep"])

    @classmethod
    def from_file(cls, path: os.PathLike | str, **options: Any) -> AlbertSentencePieceTokenizer:
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the SentencePiece model)")
        try:
            return cls(path.read_bytes(), **options)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def fit(cls, text: str | Iterable[str], vocab_size: int = 30000, lowercase: bool = True,
            keep_accents: bool = False, user_defined_symbols: Sequence[str] = ALBERT_SYMBOLS,
            workdir: os.PathLike | str | None = None,
            **trainer_options: Any) -> AlbertSentencePieceTokenizer:
        """A unigram model learnt from `text` (a string, or lines) with ALBERT's spm_train flags:
        <pad> 0, <unk> 1, [CLS] 2, [SEP] 3, [MASK] 4, then `user_defined_symbols`. The text is
        lower-cased and accent-stripped first, as encode will see it."""
        import sentencepiece as spm

        normalizer = hf_tokenizers().normalizers.Sequence(albert_normalizers(lowercase, keep_accents))
        lines = [normalizer.normalize_str(line) for line in text_lines(text) if line.strip()]
        options = {"vocab_size": vocab_size, "model_type": "unigram", "pad_id": 0, "unk_id": 1,
                   "bos_id": -1, "eos_id": -1, "control_symbols": ["[CLS]", "[SEP]", "[MASK]"],
                   "user_defined_symbols": list(user_defined_symbols),
                   "character_coverage": 0.99995, "hard_vocab_limit": False,
                   "max_sentence_length": 1 << 16, "num_threads": os.cpu_count() or 1,
                   "minloglevel": 2, **trainer_options}
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model,
                                           **options)
        except RuntimeError as e:
            raise ValueError(f"SentencePiece training failed (vocab_size={vocab_size}): {e}") from e
        tokenizer = cls(model.getvalue(), lowercase=lowercase, keep_accents=keep_accents)
        if workdir is not None:
            tokenizer.save(workdir)
        return tokenizer

    def _config(self, directory):
        write_atomic(directory / self.MODEL_FILE, self.model_proto)
        return {"model_file": self.MODEL_FILE, "lowercase": self.lowercase,
                "keep_accents": self.keep_accents}

    @classmethod
    def _from_config(cls, config, directory):
        return cls.from_file(directory / config["model_file"], lowercase=config["lowercase"],
                             keep_accents=config["keep_accents"])



TOKENIZERS[AlbertSentencePieceTokenizer.kind] = AlbertSentencePieceTokenizer
