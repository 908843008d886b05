"""What every fine-tuning task (glue, token_tagging, intent_slots, span_qa) reads the same way:
the tokenizer the backbone was pre-trained with, the longest input its position table allows,
and the fields of the `predict` command's JSON lines (text_field: a one-line error naming the
field, to which the command adds the file and line).

The tokenizer is, in order: the one this workdir saved (a resumed run); that of the
`config.init_from` workdir (the pre-trained run's: fine-tuning must read the ids the backbone
learnt), unless `data.vocab_file` is set, which must then give the same vocabulary; else
`data.tokenizer` / `data.vocab_file` as for masked_lm (a vocab.txt path, the shared files, or
"fit" on the training sentences). It is saved in WORKDIR/tokenizer for llm_jax.load.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from llm_jax.data.bert_tokenizers import PipelineTokenizer
from llm_jax.data.gpt2_tokenizer import GPT2BPETokenizer, read_gpt2_tokenizer
from llm_jax.data.token_cache import tokenizer_fingerprint
from llm_jax.data.tokenizers import load_tokenizer, make_tokenizer
from llm_jax.tasks.causal_lm import TOKENIZER_DIR, tokenizer_options
from llm_jax.tasks.masked_lm import read_tokenizer


def pretrained_tokenizer_dir(init_from: str) -> str | None:
    """WORKDIR/tokenizer of an init_from path (a workdir, its checkpoints/ or a step dir)."""
    p = os.path.abspath(os.path.expanduser(str(init_from)))
    if os.path.basename(p).isdigit():  # WORKDIR/checkpoints/<step>
        p = os.path.dirname(p)
    if os.path.basename(p) == "checkpoints":
        p = os.path.dirname(p)
    candidate = os.path.join(p, TOKENIZER_DIR)
    return candidate if os.path.isfile(os.path.join(candidate, "tokenizer.json")) else None


def finetune_tokenizer(workdir: str, data_cfg, init_from: str,
                       sentences: Callable[[], Iterable[str]]) -> PipelineTokenizer:
    """The tokenizer described in the module docstring; `sentences()` gives the training text
    for data.vocab_file="fit" (called only then)."""
    tok_dir = os.path.join(workdir, TOKENIZER_DIR)
    if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        return load_tokenizer(tok_dir)
    d = data_cfg
    pre_dir = pretrained_tokenizer_dir(init_from) if init_from else None
    pre = load_tokenizer(pre_dir) if pre_dir else None
    if pre is not None and not d.vocab_file:
        tokenizer = pre
    else:
        tokenizer = read_tokenizer(d, sentences)
        if pre is not None and tokenizer_fingerprint(pre) != tokenizer_fingerprint(tokenizer):
            raise ValueError(f"config.data.vocab_file={d.vocab_file!r} gives another "
                             f"vocabulary than the pre-trained run's ({pre_dir}); leave it "
                             "empty to fine-tune with that one")
    if getattr(tokenizer, "kind", "") != d.tokenizer or not isinstance(tokenizer, PipelineTokenizer):
        raise ValueError(f"config.data.tokenizer={d.tokenizer!r}, but the tokenizer of "
                         f"{pre_dir or tok_dir} is {getattr(tokenizer, 'kind', '?')!r}")
    tokenizer.save(tok_dir)
    return tokenizer


def check_seq_len(data_cfg, backbone) -> int:
    """data.seq_len, after checking that the backbone has a position for every token of it
    (RoBERTa's cumsum_mask positions start after its padding index)."""
    seq_len = int(data_cfg.seq_len)
    last = seq_len + (backbone.get("pad_position", 1) + 1
                      if backbone.get("position_ids") == "cumsum_mask" else 0)
    if last > backbone.get("max_len", last):
        raise ValueError(f"config.data.seq_len={data_cfg.seq_len} needs positions up to {last - 1}: "
                         f"raise config.model.backbone.max_len={backbone.max_len}")
    return seq_len


# -- prediction inputs (the `predict` command's JSON lines) ----------------------------------


def text_field(record: dict, name: str, *, nonempty: bool = False) -> str:
    """record[name], which must be a string (`nonempty`: with a non-space character); a
    ValueError naming the field otherwise."""
    if name not in record:
        raise ValueError(f"field {name!r}: missing (expected a string)")
    value = record[name]
    if not isinstance(value, str):
        raise ValueError(f"field {name!r}: expected a string, got {json_type(value)}")
    if nonempty and not value.strip():
        raise ValueError(f"field {name!r}: empty (expected some text)")
    return value


def json_type(value) -> str:
    """What a JSON value is, for messages: 'a number (5)', 'null', 'a list', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


# Tokenizers of the non-BERT backbones' inputs (pre-trained runs' kinds; see the docstring).
LM_TOKENIZERS = {"gpt": ("char", "word", "sentencepiece", GPT2BPETokenizer.kind), "elmo": ("word",)}


def lm_tokenizer(workdir, data_cfg, init_from, sentences):
    """The gpt / elmo backbone's tokenizer: this workdir's (a resumed run), the init_from
    run's, else data.tokenizer fitted on `sentences()` (gpt2_bpe: read from its files)."""
    tok_dir = os.path.join(workdir, TOKENIZER_DIR)
    if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        return load_tokenizer(tok_dir)
    d = data_cfg
    pre_dir = pretrained_tokenizer_dir(init_from) if init_from else None
    if pre_dir:
        tokenizer = load_tokenizer(pre_dir)
    elif d.tokenizer == GPT2BPETokenizer.kind:
        tokenizer = read_gpt2_tokenizer(d.vocab_file, d.merges_file)
    else:
        tokenizer = make_tokenizer(d.tokenizer, "\n".join(sentences()), **tokenizer_options(d))
    if tokenizer.kind != d.tokenizer:
        raise ValueError(f"config.data.tokenizer={d.tokenizer!r}, but the tokenizer of "
                         f"{pre_dir or tok_dir} is {tokenizer.kind!r}")
    tokenizer.save(tok_dir)
    return tokenizer


def truncate_longest_first(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Lengths that fit `budget`, cutting the longer text first (both texts equally long
    then: A keeps budget // 2, B the rest)."""
    if len_a + len_b <= budget:
        return len_a, len_b
    if 2 * min(len_a, len_b) <= budget:
        return (len_a, budget - len_a) if len_a < len_b else (budget - len_b, len_b)
    return budget // 2, budget - budget // 2
