"""A Hugging Face model directory's tokenizer files <-> the BERT-family and GPT-2 tokenizers.

Import reads what `save_pretrained` leaves: `spiece.model` (ALBERT), `vocab.json` +
`merges.txt` (RoBERTa, or GPT-2 when the model is one) or `vocab.txt` (BERT), with the options
of `tokenizer_config.json` when there is one. Export writes the same files and a
`tokenizer_config.json` naming the transformers class, so that `AutoTokenizer.from_pretrained`
gives the same ids.
"""

import json
import os

from llm_jax.data.albert_tokenizer import AlbertSentencePieceTokenizer
from llm_jax.data.bert_tokenizers import RobertaBPETokenizer, WordPieceTokenizer
from llm_jax.data.gpt2_tokenizer import GPT2BPETokenizer

TOKENIZER_CONFIG = "tokenizer_config.json"
HF_CLASSES = {WordPieceTokenizer.kind: "BertTokenizer",
              RobertaBPETokenizer.kind: "RobertaTokenizer",
              AlbertSentencePieceTokenizer.kind: "AlbertTokenizer",
              GPT2BPETokenizer.kind: "GPT2Tokenizer"}


def _options(hf_dir):
    path = os.path.join(hf_dir, TOKENIZER_CONFIG)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None


def read_hf_tokenizer(hf_dir: str, model_type: str = ""):
    """The tokenizer of a Hugging Face BERT/RoBERTa/ALBERT/GPT-2 directory (`model_type` from
    its config.json: "gpt2" reads vocab.json + merges.txt as GPT-2's tokenizer)."""
    opts = _options(hf_dir)

    def has(*names):
        return all(os.path.isfile(os.path.join(hf_dir, n)) for n in names)

    if model_type == "gpt2":
        if not has("vocab.json", "merges.txt"):
            raise FileNotFoundError(f"--from: {hf_dir} has no vocab.json + merges.txt (GPT-2's "
                                    "tokenizer)")
        return GPT2BPETokenizer.from_files(
            os.path.join(hf_dir, "vocab.json"), os.path.join(hf_dir, "merges.txt"),
            add_prefix_space=opts.get("add_prefix_space", False))

    if has("spiece.model"):
        return AlbertSentencePieceTokenizer.from_file(
            os.path.join(hf_dir, "spiece.model"), lowercase=opts.get("do_lower_case", True),
            keep_accents=opts.get("keep_accents", False))
    if has("vocab.json", "merges.txt"):
        return RobertaBPETokenizer.from_files(
            os.path.join(hf_dir, "vocab.json"), os.path.join(hf_dir, "merges.txt"),
            add_prefix_space=opts.get("add_prefix_space", False))
    if has("vocab.txt"):
        return WordPieceTokenizer.from_vocab_file(
            os.path.join(hf_dir, "vocab.txt"), lowercase=opts.get("do_lower_case", True),
            strip_accents=opts.get("strip_accents"),
            chinese_chars=opts.get("tokenize_chinese_chars", True))
    raise FileNotFoundError(f"--from: {hf_dir} has no tokenizer files (spiece.model, vocab.json + "
                            "merges.txt, or vocab.txt)")


def write_hf_tokenizer(tokenizer, out_dir: str) -> None:
    """The vocabulary files and tokenizer_config.json of `tokenizer` in `out_dir`."""
    if tokenizer.kind not in HF_CLASSES:
        raise ValueError(f"export-hf: a {tokenizer.kind!r} tokenizer has no Hugging Face class; "
                         f"expected one of {sorted(HF_CLASSES)}")
    saved = tokenizer.save_vocab_files(out_dir)
    config = {"tokenizer_class": HF_CLASSES[tokenizer.kind]}
    if "lowercase" in saved:
        config["do_lower_case"] = saved["lowercase"]
    for ours, theirs in (("strip_accents", "strip_accents"), ("keep_accents", "keep_accents"),
                         ("chinese_chars", "tokenize_chinese_chars"),
                         ("add_prefix_space", "add_prefix_space")):
        if ours in saved:
            config[theirs] = saved[ours]
    with open(os.path.join(out_dir, TOKENIZER_CONFIG), "w") as f:
        json.dump(config, f, indent=2)
