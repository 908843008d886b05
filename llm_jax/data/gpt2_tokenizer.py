"""GPT-2's tokenizer: byte-level BPE over OpenAI's encoder.json + vocab.bpe (50,257 tokens,
`<|endoftext|>` = 50256), run as transformers' GPT2Tokenizer runs it, so the ids are the same.

It is RoBERTa's pipeline (bert_tokenizers.ByteLevelBPETokenizer) with GPT-2's one special
token and no post-processor: `encode` adds nothing, and `<|endoftext|>` written in the text is
that token. `decode` keeps special tokens by default, so `decode(encode(s)) == s` for every
string, document separators included.

A corpus is tokenised chunk by chunk (data/token_cache.py), and unlike the other tokenizers a
byte-level BPE can span a newline: GPT-2's pre-tokenizer keeps " \\n \\n" together, and a run of
whitespace at the end of a text splits otherwise than before a word. `encode_stream` therefore
cuts the text again only where the two sides cannot interact, so a cached split holds the very
ids of tokenising the whole file at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from llm_jax.data.bert_tokenizers import ByteLevelBPETokenizer
from llm_jax.data.tokenizers import TOKENIZERS

EOT = "<|endoftext|>"
# In LLM_JAX_DATA_DIR, as OpenAI published them (transformers' vocab.json and merges.txt).
GPT2_FILES = ("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")


def safe_cut(text: str) -> int:
    """The last position p (0 < p < len(text)) where encoding text[:p] and text[p:] apart
    gives the ids of the whole text; 0 if there is none.

    GPT-2's pre-tokenizer regex ('s|'t|...| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+)
    gives a run of whitespace W before a word as W[:-1] and W[-1] + word when W[-1] is a space,
    else W[:-1] and W[-1] apart; at the end of a text W is one token. So a cut right after a
    newline is safe when a space then a word follow (W[:-1] ends at the cut either way), or when
    a word follows and the newline is not itself inside a longer run. "A word" is alphanumeric,
    which is never whitespace under any regex engine's \\s and never starts <|endoftext|>.
    """
    p = text.rfind("\n", 0, len(text) - 1)
    while p >= 0:
        cut, after = p + 1, text[p + 1:p + 3]
        if after[:1] == " " and after[1:2].isalnum():
            return cut
        if after[:1].isalnum() and p > 0 and not text[p - 1].isspace():
            return cut
        p = text.rfind("\n", 0, p)
    return 0


class GPT2BPETokenizer(ByteLevelBPETokenizer):
    """GPT-2's byte-level BPE. `special_ids` are {"eos", "bos", "unk", "pad"}, all
    `<|endoftext|>` (GPT-2 has no padding token; batches pad with it, and their mask says which
    positions are real). A vocabulary without `<|endoftext|>` gets it appended, as transformers
    appends it; `fit` puts it at id 0."""

    kind = "gpt2_bpe"
    FIT_SPECIALS = (EOT,)

    def _finish(self, hf):
        from tokenizers import AddedToken

        hf.add_special_tokens([AddedToken(EOT, normalized=False, special=True)])
        self._set_pipeline(hf, {"eos": EOT, "bos": EOT, "unk": EOT, "pad": EOT})

    @property
    def eos_id(self) -> int:
        return self._special_ids["eos"]

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        return super().decode(ids, skip_special_tokens=skip_special_tokens)

    def encode_stream(self, pieces: Iterable[str]) -> Iterator[np.ndarray]:
        """The ids of "".join(pieces), a piece at a time: held-back text after the last safe
        cut (see `safe_cut`) goes with the next piece, so the ids equal encode(whole text)."""
        carry = ""
        for piece in pieces:
            text = carry + piece
            cut = safe_cut(text)
            if cut:
                yield self.encode(text[:cut])
            carry = text[cut:]
        if carry:
            yield self.encode(carry)


def read_gpt2_tokenizer(vocab_file: os.PathLike | str = "", merges_file: os.PathLike | str = "",
                        **options: Any) -> GPT2BPETokenizer:
    """GPT-2's published tokenizer from LLM_JAX_DATA_DIR, or the vocab.json (encoder.json) +
    merges.txt (vocab.bpe) named."""
    from llm_jax.data.paths import data_dir

    vocab_file = vocab_file or data_dir() / GPT2_FILES[0]
    merges_file = merges_file or data_dir() / GPT2_FILES[1]
    return GPT2BPETokenizer.from_files(vocab_file, merges_file, **options)


TOKENIZERS[GPT2BPETokenizer.kind] = GPT2BPETokenizer
