"""Masked-LM pre-training data: text -> documents of tokenised sentences -> instances.

Two text layouts (`config.task.text_format`):
  "wikitext": WikiText's files. A document starts at a top-level heading line " = Title = ";
      section headings (" = = Section = = ") are dropped, since they are titles rather than
      sentences. A paragraph line holds many sentences, too coarse a unit for NSP/SOP and for
      packing, so it is split after each " . ", " ? " or " ! ": WikiText puts spaces around
      every sentence-ending mark and none inside abbreviations ("U.S."), which makes the split
      reliable. Its escapes " @-@ ", " @,@ ", " @.@ " are undone, and "<unk>" becomes the
      tokenizer's unknown token (not the pieces "<", "un", "##k", ">").
  "lines": Google's create_pretraining_data.py input: a sentence a line, a blank line between
      documents.

An instance is one or two spans of a flat token array (`Instances`): sentences of a document
are adjacent in it, so segment A (consecutive sentences, truncated at either end) and segment
B are each one (start, length); the batch pipeline (data/mlm_batches.py) lays them out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

import numpy as np

TEXT_FORMATS = ("wikitext", "lines")
FORMAT = "llm_jax.mlm_documents/1"
_TITLE = re.compile(r"^ ?= [^=].* = ?$")
_HEADING = re.compile(r"^ ?(= )+.*( =)+ ?$")
_SENTENCE_END = re.compile(r"(?<= [.?!]) ")
_WIKITEXT_ESCAPES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))


def wikitext_documents(text: str, unk_token: str = "<unk>") -> list[list[str]]:
    docs: list[list[str]] = []
    for line in text.split("\n"):
        if _TITLE.match(line):
            docs.append([])
            continue
        line = line.strip()
        if not line or _HEADING.match(" " + line + " "):
            continue
        for old, new in _WIKITEXT_ESCAPES:
            line = line.replace(old, new)
        if unk_token != "<unk>":
            line = line.replace("<unk>", unk_token)
        if not docs:  # text before the first title is a document of its own
            docs.append([])
        docs[-1].extend(s for s in _SENTENCE_END.split(line) if s.strip())
    return [d for d in docs if d]


def line_documents(text: str) -> list[list[str]]:
    docs, current = [], []
    for line in text.split("\n"):
        if line.strip():
            current.append(line.strip())
        elif current:
            docs.append(current)
            current = []
    return docs + ([current] if current else [])


def split_documents(text: str, text_format: str, unk_token: str = "<unk>") -> list[list[str]]:
    if text_format == "wikitext":
        return wikitext_documents(text, unk_token)
    if text_format == "lines":
        return line_documents(text)
    raise ValueError(f"config.task.text_format={text_format!r}: expected one of {TEXT_FORMATS}")


@dataclasses.dataclass
class Documents:
    """Tokenised documents: sentence s is ids[sentence_starts[s]:sentence_starts[s + 1]] and
    document d is sentences doc_starts[d] to doc_starts[d + 1]."""

    ids: np.ndarray              # int32[N]
    sentence_starts: np.ndarray  # int64[S + 1]
    doc_starts: np.ndarray       # int64[D + 1]

    @property
    def num_documents(self) -> int:
        return len(self.doc_starts) - 1

    @property
    def sentence_lengths(self) -> np.ndarray:
        return np.diff(self.sentence_starts)

    def sentences(self, d: int) -> list[np.ndarray]:
        s = self.sentence_starts
        return [self.ids[s[i]:s[i + 1]] for i in range(self.doc_starts[d], self.doc_starts[d + 1])]


def tokenize_documents(docs: list[list[str]], tokenizer) -> Documents:
    """Each sentence encoded alone; sentences that encode to nothing, and documents left
    empty, are dropped. A leading space makes a byte-level BPE encode a sentence's first word
    as it does mid-text ("Ġword"); WordPiece and SentencePiece ignore it."""
    flat = [" " + s for d in docs for s in d]
    encode = getattr(tokenizer, "encode_lines", None)
    encoded = encode(flat) if encode else [tokenizer.encode(s) for s in flat]
    lengths = np.array([len(e) for e in encoded], np.int64)
    doc_of = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    keep = lengths > 0
    lengths, doc_of = lengths[keep], doc_of[keep]
    ids = [np.asarray(e, np.int32) for e, k in zip(encoded, keep) if k]
    counts = np.bincount(doc_of, minlength=len(docs))
    counts = counts[counts > 0]
    return Documents(np.concatenate(ids) if ids else np.zeros(0, np.int32),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def cached_documents(text_fn, key_spec: dict, tokenizer, unk_token: str, text_format: str,
                     cache_dir: str | None, name: str) -> Documents:
    """tokenize_documents(split_documents(text_fn())), kept in CACHE_DIR/NAME-KEY.npz so that a
    resumed run does not tokenise the corpus again; the key covers the file's hash, the
    tokenizer's fingerprint and the text layout (`key_spec`)."""
    key = hashlib.sha256(json.dumps({"format": FORMAT, "text_format": text_format, **key_spec},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"{name}-{key}.npz") if cache_dir else None
    if path and os.path.exists(path):
        with np.load(path) as f:
            return Documents(f["ids"], f["sentence_starts"], f["doc_starts"])
    docs = tokenize_documents(split_documents(text_fn(), text_format, unk_token), tokenizer)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, ids=docs.ids, sentence_starts=docs.sentence_starts,
                 doc_starts=docs.doc_starts)
        os.replace(tmp, path)
    return docs


@dataclasses.dataclass
class Instances:
    """Pre-training instances as spans of `flat`: segment A is flat[a_start:a_start + a_len],
    B likewise (b_len 0: no B). `label` is the sentence-task class (0: B follows A, or A and B
    are in order; 1: not; -1: no sentence task)."""

    flat: np.ndarray
    a_start: np.ndarray
    a_len: np.ndarray
    b_start: np.ndarray
    b_len: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.a_start)

    @classmethod
    def from_rows(cls, flat, rows) -> Instances:
        cols = np.array(rows, np.int64).reshape(-1, 5).T
        return cls(flat, *cols[:4], cols[4].astype(np.int32))

    def concat(self, other: Instances) -> Instances:
        assert self.flat is other.flat
        return Instances(self.flat, *(np.concatenate([getattr(self, f), getattr(other, f)])
                                      for f in ("a_start", "a_len", "b_start", "b_len", "label")))


def truncate_pair(la: int, lb: int, max_tokens: int, rng) -> tuple[int, int, int, int]:
    """(tokens cut from A's front, A's length, cut from B's front, B's length), as Google's
    truncate_seq_pair: one token at a time from the longer side (B on a tie), from its front
    or its back with even odds; the count from the front is therefore binomial."""
    cut_a = cut_b = 0
    while la + lb > max_tokens:
        if la > lb:
            la, cut_a = la - 1, cut_a + 1
        else:
            lb, cut_b = lb - 1, cut_b + 1
    front_a = int(rng.binomial(cut_a, 0.5)) if cut_a else 0
    front_b = int(rng.binomial(cut_b, 0.5)) if cut_b else 0
    return front_a, la, front_b, lb


def pair_instances(docs: Documents, max_len: int, rng, *, sentence_task: str,
                   short_seq_prob: float) -> Instances:
    """BERT's sentence-pair instances ([CLS] A [SEP] B [SEP] in at most `max_len` tokens), after
    create_instances_from_document in Google's create_pretraining_data.py:

    Sentences of a document are gathered until they reach the target length (max_len - 3, or
    with probability `short_seq_prob` a random length in [2, max_len - 3]); A is the first
    1..n-1 of them. "nsp": B is the rest (label 0) or, half the time, consecutive sentences of
    another document from a random start (label 1), the sentences left out of A going back to
    be used again. "sop" (ALBERT): B is always the rest, and half the time A and B are swapped
    (label 1). "": B is the rest (none for a one-sentence chunk). The longer side is truncated
    as in Google's.

    Two deviations: with a sentence task a one-sentence chunk is cut in two at a random token,
    where Google's code always gives it a random B (and ALBERT's a random B labelled
    "swapped"), which tilts the labels off 50/50 on a corpus of long sentences or short
    documents; and the short target length is drawn for each instance, where Google's draws it
    once per document; over Wikipedia's millions of documents the two agree, over WikiText-2's
    600 long ones a per-document draw makes the share of short instances noisy.
    """
    if max_len < 5:
        raise ValueError(f"config.data.seq_len={max_len}: a sentence pair needs at least 5")
    if sentence_task == "nsp" and docs.num_documents < 2:
        raise ValueError("next-sentence prediction draws B from another document: the split "
                         f"has {docs.num_documents} document(s)")
    max_tokens = max_len - 3
    starts, lens = docs.sentence_starts.tolist(), docs.sentence_lengths.tolist()
    doc_starts, n_docs = docs.doc_starts.tolist(), docs.num_documents
    rows = []
    for d in range(n_docs):
        first, end = doc_starts[d], doc_starts[d + 1]

        def target_length():
            if rng.random() < short_seq_prob:
                return int(rng.integers(2, max_tokens + 1))
            return max_tokens

        target, chunk_first, chunk_tokens, i = target_length(), first, 0, first
        while i < end:
            chunk_tokens += lens[i]
            if i == end - 1 or chunk_tokens >= target:
                n = i - chunk_first + 1
                a_end = chunk_first + (int(rng.integers(1, n)) if n >= 2 else 1)
                a0, la = starts[chunk_first], starts[a_end] - starts[chunk_first]
                b0, lb = starts[a_end], starts[i + 1] - starts[a_end]
                label = 0 if sentence_task else -1
                if sentence_task and n == 1:
                    if la < 2:  # one token: no pair to make
                        target, chunk_first, chunk_tokens, i = target_length(), i + 1, 0, i + 1
                        continue
                    cut = int(rng.integers(1, la))
                    la, b0, lb = cut, a0 + cut, la - cut
                if sentence_task == "nsp" and rng.random() < 0.5:
                    other = int(rng.integers(0, n_docs - 1))
                    other += other >= d
                    o_end = doc_starts[other + 1]
                    j = int(rng.integers(doc_starts[other], o_end))
                    b0, lb, label = starts[j], 0, 1
                    while j < o_end and lb < max(target - la, 1):
                        lb, j = lb + lens[j], j + 1
                    i = a_end - 1  # the chunk's sentences after A are used again
                elif sentence_task == "sop" and rng.random() < 0.5:
                    a0, la, b0, lb, label = b0, lb, a0, la, 1
                fa, la, fb, lb = truncate_pair(la, lb, max_tokens, rng)
                rows.append((a0 + fa, la, b0 + fb, lb, label))
                target, chunk_first, chunk_tokens = target_length(), i + 1, 0
            i += 1
    return Instances.from_rows(docs.ids, rows)


def full_sentence_instances(docs: Documents, max_len: int, sep_id: int) -> Instances:
    """RoBERTa's FULL-SENTENCES: whole sentences packed greedily into <s> ... </s> of at most
    `max_len` tokens, crossing document boundaries with a separator between documents (never
    first or last in an instance). A sentence longer than max_len - 2 tokens is cut into pieces
    that fill instances of their own. The packing is fixed: it draws nothing at random."""
    if max_len < 3:
        raise ValueError(f"config.data.seq_len={max_len}: an instance needs at least 3")
    cap = max_len - 2
    boundaries = docs.sentence_starts[docs.doc_starts[1:-1]]
    flat = np.insert(docs.ids, boundaries, np.int32(sep_id)).astype(np.int32)
    # units (start, length) in `flat`: sentence pieces, and one-token separators
    is_boundary = np.zeros(len(docs.sentence_starts) - 1, bool)
    is_boundary[docs.doc_starts[1:-1]] = True
    shift = np.cumsum(is_boundary)  # separators inserted before each sentence
    rows, block_start, block_len, last_sep = [], 0, 0, False

    def close():
        n = block_len - last_sep
        if n > 0:
            rows.append((block_start, n, 0, 0, -1))

    for s, (start, length) in enumerate(zip((docs.sentence_starts[:-1] + shift).tolist(),
                                            docs.sentence_lengths.tolist())):
        units = [(start - 1, 1, True)] if is_boundary[s] else []
        end = start + length
        units += [(p, min(cap, end - p), False) for p in range(start, end, cap)]
        for u_start, u_len, sep in units:
            if block_len and block_len + u_len > cap:
                close()
                block_len = 0
            if not block_len:
                if sep:  # a separator never opens an instance
                    continue
                block_start = u_start
            block_len, last_sep = block_len + u_len, sep
    close()
    return Instances.from_rows(flat, rows)
