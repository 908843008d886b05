"""The tokenizers of BERT (WordPiece) and RoBERTa (byte-level BPE), and the pipeline machinery
ALBERT's (albert_tokenizer.py) shares: Hugging Face `tokenizers` pipelines built the way
transformers builds them, so the ids, pair layouts and character offsets agree with
transformers' fast tokenizers.

`encode(text)` gives the pieces alone (no [CLS]/[SEP]), as every project tokenizer does for LM
streams; `encode_batch(texts, pairs)` gives model inputs: special tokens, segment ids,
truncation and padding, and each token's character span in its own text. `save` writes the
vocabulary files themselves (vocab.txt; vocab.json + merges.txt; spiece.model) beside the
project's tokenizer.json, and the pipeline is rebuilt from them on load. transformers reads those
files, but not the saved directory as a whole: it would take that tokenizer.json for its own.

`PipelineTokenizer` and `ByteLevelBPETokenizer` are the shared machinery: GPT-2's tokenizer
(gpt2_tokenizer.py) is the same byte-level BPE with its own special token, ALBERT's a
SentencePiece unigram model in the same pipeline.
"""

from __future__ import annotations

import abc
import copy
import json
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from llm_jax.data.tokenizers import TOKENIZERS, Tokenizer, as_ids, write_atomic

BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
# transformers appends these, in this order, to a vocabulary that lacks them (GPT-2's).
ROBERTA_SPECIALS = {"cls": "<s>", "sep": "</s>", "unk": "<unk>", "pad": "<pad>", "mask": "<mask>"}


def hf_tokenizers():
    # Imported on use: `tokenizers` comes with transformers, which the rest of llm_jax never needs.
    import tokenizers

    return tokenizers


def _read_text(path: os.PathLike | str, what: str) -> str:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the {what})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: the {what} is not UTF-8 text ({e})") from None


def text_lines(text: str | Iterable[str]) -> Iterable[str]:
    return text.splitlines() if isinstance(text, str) else text


class PipelineTokenizer(Tokenizer):
    """A `tokenizers.Tokenizer` (`self._hf`) and the ids of its special tokens."""

    def _set_pipeline(self, hf, specials: dict[str, str]) -> None:
        # Before the post-processor is built from these ids, so a missing one is named.
        ids = {role: hf.token_to_id(token) for role, token in specials.items()}
        missing = [specials[role] for role, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"the vocabulary has no {', '.join(missing)} token")
        self._hf, self._special_ids, self._truncating = hf, ids, {}

    def save_vocab_files(self, directory: os.PathLike | str) -> dict[str, Any]:
        """Only the vocabulary files (vocab.txt; vocab.json + merges.txt; spiece.model), as a
        Hugging Face directory holds them; returns their names and this tokenizer's options."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return self._config(directory)

    @property
    def special_ids(self) -> dict[str, int]:
        """{"cls", "sep", "mask", "pad", "unk"} -> id."""
        return dict(self._special_ids)

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> np.ndarray:
        """The pieces of `text`, without [CLS]/[SEP] (<s>/</s>); a special token written in the
        text ("[MASK]") is that token, as in transformers."""
        return np.asarray(self._hf.encode(text, add_special_tokens=False).ids, np.int32)

    def encode_lines(self, lines: Sequence[str]) -> list[np.ndarray]:
        encodings = self._hf.encode_batch(list(lines), add_special_tokens=False)
        return [np.asarray(e.ids, np.int32) for e in encodings]

    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        return self._hf.decode(as_ids(ids, self.vocab_size).tolist(),
                               skip_special_tokens=skip_special_tokens)

    def id_to_token(self, i: int) -> str | None:
        return self._hf.id_to_token(int(i))

    def _with_truncation(self, max_length: int):
        # A truncating copy per length, so the shared pipeline's state never changes.
        if max_length not in self._truncating:
            hf = copy.deepcopy(self._hf)
            hf.enable_truncation(max_length, strategy="longest_first")
            self._truncating[max_length] = hf
        return self._truncating[max_length]

    def encode_batch(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *,
                     max_length: int | None = None, pad_to: int | None = None,
                     add_special_tokens: bool = True) -> dict[str, np.ndarray]:
        """Model inputs for `texts` (or the pairs `texts[i]`, `pairs[i]`), padded to the longest
        (or to `pad_to`): {"input_ids", "segment_ids": int32[B, T], "mask": bool[B, T] (True at
        real tokens), "offsets": int32[B, T, 2] (each token's [start, end) characters in its own
        text; (0, 0) for special tokens and padding), "sequence_ids": int32[B, T] (0 / 1: which
        text a token comes from, -1 for special tokens and padding; RoBERTa's segment ids are all
        0, so this is what tells a question from its context)}. `max_length` truncates to that
        many tokens, specials included, cutting the longer text of a pair first ("longest_first").
        """
        if isinstance(texts, str) or isinstance(pairs, str):
            raise TypeError("encode_batch takes sequences of texts, not one string")
        inputs: list[Any] = list(texts)
        if pairs is not None:
            if len(pairs) != len(inputs):
                raise ValueError(f"{len(inputs)} texts but {len(pairs)} pairs")
            inputs = list(zip(inputs, pairs))
        hf = self._hf
        if max_length is not None:
            needed = self._hf.num_special_tokens_to_add(pairs is not None) if add_special_tokens else 0
            if max_length <= needed:
                raise ValueError(f"max_length={max_length} leaves no room for text beside the "
                                 f"{needed} special tokens")
            hf = self._with_truncation(max_length)
        encodings = hf.encode_batch(inputs, add_special_tokens=add_special_tokens)
        longest = max((len(e.ids) for e in encodings), default=0)
        if pad_to is not None and pad_to < longest:
            raise ValueError(f"a sequence has {longest} tokens, more than pad_to={pad_to} "
                             "(pass max_length to truncate)")
        shape = (len(encodings), longest if pad_to is None else pad_to)
        out = {"input_ids": np.full(shape, self._special_ids["pad"], np.int32),
               "segment_ids": np.zeros(shape, np.int32), "mask": np.zeros(shape, bool),
               "offsets": np.zeros((*shape, 2), np.int32),
               "sequence_ids": np.full(shape, -1, np.int32)}
        for i, e in enumerate(encodings):
            n = len(e.ids)
            out["input_ids"][i, :n] = e.ids
            out["segment_ids"][i, :n] = e.type_ids
            out["mask"][i, :n] = True
            out["offsets"][i, :n] = np.asarray(e.offsets, np.int32).reshape(n, 2)
            out["sequence_ids"][i, :n] = [-1 if s is None else s for s in e.sequence_ids]
        return out


def bert_template(hf, cls: str, sep: str):
    ids = [(cls, hf.token_to_id(cls)), (sep, hf.token_to_id(sep))]
    return hf_tokenizers().processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=ids)


def add_special_tokens(hf, tokens: Iterable[str], lstrip: Sequence[str] = ()) -> None:
    # normalized=False: matched in the raw text before lower-casing, as transformers does.
    tk = hf_tokenizers()
    hf.add_special_tokens([tk.AddedToken(t, normalized=False, special=True, lstrip=t in lstrip)
                           for t in tokens])


def _bert_pipeline(tk, model, lowercase: bool, strip_accents: bool | None, chinese_chars: bool):
    hf = tk.Tokenizer(model)
    # strip_accents=None follows lowercase, as in the original BERT.
    hf.normalizer = tk.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=chinese_chars, strip_accents=strip_accents,
        lowercase=lowercase)
    hf.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    return hf


class WordPieceTokenizer(PipelineTokenizer):
    """BERT's WordPiece: BertNormalizer (lower-casing and accent stripping when `lowercase`;
    control characters dropped, CJK characters split), BertPreTokenizer (whitespace and
    punctuation), then greedy longest-match pieces, "##" marking a word's continuation."""

    kind = "wordpiece"
    VOCAB_FILE = "vocab.txt"

    def __init__(self, vocab: Sequence[str], lowercase: bool = True,
                 strip_accents: bool | None = None, chinese_chars: bool = True):
        tk = hf_tokenizers()
        self.vocab = list(vocab)
        index = {t: i for i, t in enumerate(self.vocab)}
        if len(index) != len(self.vocab):
            dup = next(t for i, t in enumerate(self.vocab) if index[t] != i)
            raise ValueError(f"the vocabulary has {dup!r} twice (lines {self.vocab.index(dup) + 1} "
                             f"and {index[dup] + 1})")
        if "" in index:
            raise ValueError(f"line {index[''] + 1} of the vocabulary is empty")
        self.lowercase, self.strip_accents, self.chinese_chars = lowercase, strip_accents, chinese_chars
        hf = _bert_pipeline(tk, tk.models.WordPiece(index, unk_token=BERT_SPECIALS["unk"]),
                            lowercase, strip_accents, chinese_chars)
        hf.decoder = tk.decoders.WordPiece(prefix="##")
        self._set_pipeline(hf, BERT_SPECIALS)
        add_special_tokens(hf, BERT_SPECIALS.values())
        hf.post_processor = bert_template(hf, BERT_SPECIALS["cls"], BERT_SPECIALS["sep"])

    @classmethod
    def from_vocab_file(cls, path: os.PathLike | str, **options: Any) -> WordPieceTokenizer:
        """A `vocab.txt`: one token a line, its id the line number from 0."""
        tokens = _read_text(path, "WordPiece vocabulary").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        try:
            return cls(tokens, **options)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def fit(cls, text: str | Iterable[str], vocab_size: int = 30522, lowercase: bool = True,
            strip_accents: bool | None = None, chinese_chars: bool = True, min_frequency: int = 2,
            limit_alphabet: int = 1000,
            workdir: os.PathLike | str | None = None) -> WordPieceTokenizer:
        """A vocabulary learnt from `text` (a string, or lines) by HF's WordPieceTrainer, with
        [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4; saved to `workdir` if given."""
        tk = hf_tokenizers()
        hf = _bert_pipeline(tk, tk.models.WordPiece(unk_token=BERT_SPECIALS["unk"]), lowercase,
                            strip_accents, chinese_chars)
        trainer = tk.trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, limit_alphabet=limit_alphabet,
            special_tokens=list(BERT_SPECIALS.values()), continuing_subword_prefix="##",
            show_progress=False)
        hf.train_from_iterator(text_lines(text), trainer)
        vocab = sorted(hf.get_vocab().items(), key=lambda kv: kv[1])
        tokenizer = cls([t for t, _ in vocab], lowercase, strip_accents, chinese_chars)
        if workdir is not None:
            tokenizer.save(workdir)
        return tokenizer

    def _config(self, directory):
        write_atomic(directory / self.VOCAB_FILE, "".join(f"{t}\n" for t in self.vocab).encode())
        return {"vocab_file": self.VOCAB_FILE, "lowercase": self.lowercase,
                "strip_accents": self.strip_accents, "chinese_chars": self.chinese_chars}

    @classmethod
    def _from_config(cls, config, directory):
        return cls.from_vocab_file(directory / config["vocab_file"], lowercase=config["lowercase"],
                                   strip_accents=config["strip_accents"],
                                   chinese_chars=config["chinese_chars"])


class ByteLevelBPETokenizer(PipelineTokenizer):
    """GPT-2's byte-level BPE (RoBERTa's too): any text, no unknown tokens, from a vocab.json +
    merges.txt taken as given. A subclass adds its special tokens and post-processor
    (`_finish`), and names the specials a fitted vocabulary starts with (`FIT_SPECIALS`)."""

    FILES = ("vocab.json", "merges.txt")
    FIT_SPECIALS: tuple[str, ...] = ()

    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]],
                 add_prefix_space: bool = False):
        tk = hf_tokenizers()
        self.vocab, self.merges = dict(vocab), [tuple(m) for m in merges]
        self.add_prefix_space = add_prefix_space
        try:
            model = tk.models.BPE(self.vocab, self.merges, fuse_unk=False)
        except Exception as e:  # tokenizers raises a bare Exception for merges outside the vocab
            raise ValueError(f"the merges do not fit the vocabulary: {e}") from None
        hf = tk.Tokenizer(model)
        hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        hf.decoder = tk.decoders.ByteLevel()
        self._finish(hf)

    @abc.abstractmethod
    def _finish(self, hf) -> None:
        """Adds the special tokens (`_add_specials`, `_set_pipeline`) and post-processor."""

    @classmethod
    def from_files(cls, vocab_file: os.PathLike | str, merges_file: os.PathLike | str,
                   **options: Any):
        """GPT-2's `encoder.json` + `vocab.bpe`, or RoBERTa's `vocab.json` + `merges.txt`."""
        try:
            vocab = json.loads(_read_text(vocab_file, "BPE vocabulary"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{vocab_file}: not JSON ({e})") from None
        if not isinstance(vocab, dict) or not all(
                isinstance(t, str) and isinstance(i, int) for t, i in vocab.items()):
            raise ValueError(f"{vocab_file}: expected a JSON object of token -> integer id")
        merges = []
        for n, line in enumerate(_read_text(merges_file, "BPE merges").split("\n"), 1):
            if not line or (n == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{merges_file}:{n}: expected two tokens separated by a space, "
                                 f"got {line!r}")
            merges.append((parts[0], parts[1]))
        try:
            return cls(vocab, merges, **options)
        except ValueError as e:
            raise ValueError(f"{vocab_file}, {merges_file}: {e}") from None

    @classmethod
    def fit(cls, text: str | Iterable[str], vocab_size: int = 50265, min_frequency: int = 2,
            add_prefix_space: bool = False, workdir: os.PathLike | str | None = None):
        """A byte-level BPE learnt from `text` by HF's BpeTrainer, with the class's
        FIT_SPECIALS at ids 0, 1, ...; saved to `workdir` if given."""
        tk = hf_tokenizers()
        hf = tk.Tokenizer(tk.models.BPE())
        hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
            special_tokens=list(cls.FIT_SPECIALS),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(text_lines(text), trainer)
        model = json.loads(hf.to_str())["model"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        tokenizer = cls(model["vocab"], merges, add_prefix_space)
        if workdir is not None:
            tokenizer.save(workdir)
        return tokenizer

    def _config(self, directory):
        vocab_file, merges_file = self.FILES
        write_atomic(directory / vocab_file, json.dumps(self.vocab, ensure_ascii=False).encode())
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        write_atomic(directory / merges_file, merges.encode())
        return {"vocab_file": vocab_file, "merges_file": merges_file,
                "add_prefix_space": self.add_prefix_space}

    @classmethod
    def _from_config(cls, config, directory):
        return cls.from_files(directory / config["vocab_file"], directory / config["merges_file"],
                              add_prefix_space=config["add_prefix_space"])


class RobertaBPETokenizer(ByteLevelBPETokenizer):
    """RoBERTa's byte-level BPE (GPT-2's): any text, no unknown tokens. Pairs are
    `<s> a </s></s> b </s>` with segment ids all 0.

    The vocabulary and merges are taken as given. Special tokens the vocabulary lacks are
    appended as transformers' RobertaTokenizer appends them: from GPT-2's encoder.json (50,257
    tokens, none of them RoBERTa's) that gives <s> 50257, </s> 50258, <unk> 50259, <pad> 50260,
    <mask> 50261, not roberta-base's <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> 50264; roberta-base's
    own vocab.json keeps its ids. <mask> absorbs the space before it (lstrip), as in roberta-base's
    published tokenizer, so "a <mask>." is [a, <mask>, .]. `fit` puts <s> <pad> </s> <unk>
    <mask> at ids 0-4.
    """

    kind = "roberta_bpe"
    FIT_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

    def _finish(self, hf):
        tk = hf_tokenizers()
        add_special_tokens(hf, ROBERTA_SPECIALS.values(), lstrip=["<mask>"])
        self._set_pipeline(hf, ROBERTA_SPECIALS)
        cls, sep = ROBERTA_SPECIALS["cls"], ROBERTA_SPECIALS["sep"]
        hf.post_processor = tk.processors.RobertaProcessing(
            (sep, hf.token_to_id(sep)), (cls, hf.token_to_id(cls)), trim_offsets=True,
            add_prefix_space=self.add_prefix_space)


for _cls in (WordPieceTokenizer, RobertaBPETokenizer):
    TOKENIZERS[_cls.kind] = _cls
