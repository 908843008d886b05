"""Character ids of words for character-level token encoders (ELMo's char-CNN).

Every word becomes `max_chars` ids: begin-of-word, the UTF-8 bytes of the word, end-of-word,
then padding. Bytes (as in ELMo's 262-symbol alphabet) cover every language with a closed
alphabet, so a character never seen in training still has an id. A character that has no
UTF-8 form (a lone surrogate, e.g. from a badly decoded file) maps to the reserved UNK id.
Words too long to fit keep their first bytes and still end with end-of-word.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD, BOW, EOW, UNK = 0, 1, 2, 3
NUM_SPECIAL = 4
NUM_CHAR_IDS = NUM_SPECIAL + 256  # the char-embedding table size


def word_char_ids(word: str, max_chars: int) -> np.ndarray:
    """int32[max_chars]: BOW, byte ids, EOW, PAD..."""
    if max_chars < 3:
        raise ValueError(f"max_chars={max_chars} must be at least 3 (begin, a character, end)")
    ids = []
    for ch in word:
        try:
            ids.extend(b + NUM_SPECIAL for b in ch.encode("utf-8"))
        except UnicodeEncodeError:
            ids.append(UNK)
    ids = [BOW, *ids[: max_chars - 2], EOW]
    out = np.full((max_chars,), PAD, np.int32)
    out[: len(ids)] = ids
    return out


def words_char_ids(words: Sequence[str], max_chars: int) -> np.ndarray:
    """int32[len(words), max_chars]; an empty list gives shape (0, max_chars)."""
    out = np.full((len(words), max_chars), PAD, np.int32)
    for i, w in enumerate(words):
        out[i] = word_char_ids(w, max_chars)
    return out


def batch_char_ids(sentences: Sequence[Sequence[str]], max_chars: int,
                   min_len: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(chars int32[B, T, max_chars], mask bool[B, T]) for tokenized sentences.

    T is the longest sentence (at least `min_len`, and at least 1 so that shapes stay
    valid); padding tokens are all-PAD and masked out. Empty sentences are all padding.
    """
    for i, s in enumerate(sentences):
        if isinstance(s, str):
            raise ValueError(f"sentence {i} is a string; give a list of tokens (e.g. s.split())")
    T = max([len(s) for s in sentences] + [min_len, 1])
    chars = np.full((len(sentences), T, max_chars), PAD, np.int32)
    mask = np.zeros((len(sentences), T), bool)
    for i, s in enumerate(sentences):
        if len(s):
            chars[i, : len(s)] = words_char_ids(s, max_chars)
            mask[i, : len(s)] = True
    return chars, mask
