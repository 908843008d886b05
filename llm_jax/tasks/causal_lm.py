"""Causal language modelling: predict every next token of contiguous windows of a corpus."""

import os
from itertools import chain

import jax.numpy as jnp
import ml_collections

from llm_jax.data import (
    CharTokenizer,
    LMBatches,
    eval_batches,
    load_tokenizer,
    make_tokenizer,
    read_corpus,
    read_tfds_text,
)
from llm_jax.data.corpora import data_options
from llm_jax.data.gpt2_tokenizer import GPT2BPETokenizer, read_gpt2_tokenizer
from llm_jax.data.split_reader import SplitReader
from llm_jax.data.token_cache import fit_chars
from llm_jax.ops.losses import cross_entropy_sums, token_weights
from llm_jax.tasks.lm_decoding import generate_tokens
from llm_jax.tasks.protocols import NUM_TOKENS, count_tokens, mean_metric


def read_split(data_cfg, split: str) -> str:
    """A split's whole text (a built-in corpus or a path, in config.data.encoding)."""
    if data_cfg.source == "files":
        return read_corpus(data_cfg.corpus, split, **data_options(data_cfg))
    if data_cfg.source == "tfds":
        return read_tfds_text(data_cfg.tfds_name, split)
    raise ValueError(f"config.data.source={data_cfg.source!r}: expected 'files' or 'tfds'")


def tokenizer_options(data_cfg) -> dict:
    if data_cfg.tokenizer == "word":
        return {"min_count": data_cfg.min_count}
    if data_cfg.tokenizer == "sentencepiece":
        return {"vocab_size": data_cfg.vocab_size, "model_type": data_cfg.sp_model_type}
    return {}


TOKENIZER_DIR = "tokenizer"
FIT = "fit"  # config.data.vocab_file: learn the vocabulary from the training split


def gpt2_bpe(data_cfg, splits: SplitReader):
    """GPT-2's byte-level BPE: OpenAI's files in the data directory, or config.data.vocab_file
    + merges_file, or with vocab_file="fit" one of config.data.vocab_size learnt from train."""
    if data_cfg.vocab_file == FIT:
        return GPT2BPETokenizer.fit(splits.text(data_cfg.train_split),
                                    vocab_size=data_cfg.vocab_size)
    try:
        return read_gpt2_tokenizer(data_cfg.vocab_file, data_cfg.merges_file)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"config.data.tokenizer={data_cfg.tokenizer!r} (config.data.vocab_file, "
                      f"merges_file): {e}") from None


def fit_or_load_tokenizer(data_cfg, workdir: str, splits: SplitReader):
    """The tokenizer saved in WORKDIR/tokenizer, or one fitted now and saved there."""
    tok_dir = os.path.join(workdir, TOKENIZER_DIR)
    if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        return load_tokenizer(tok_dir)
    if data_cfg.tokenizer == "char":
        # Characters are a closed set: fit them on every split (as nanoGPT does) so that a
        # character seen only in validation does not stop the run. The set is collected while
        # streaming, so the text is never held whole.
        pieces = chain(splits.pieces(data_cfg.train_split), splits.pieces(data_cfg.eval_split))
        tokenizer = CharTokenizer(fit_chars(pieces))
    elif data_cfg.tokenizer == GPT2BPETokenizer.kind:
        tokenizer = gpt2_bpe(data_cfg, splits)
    else:
        # Word and subword vocabularies are fitted on the training text alone (unseen words
        # become <unk>), which their trainers read whole: this holds the train split in memory.
        options = tokenizer_options(data_cfg)
        if data_cfg.tokenizer == "sentencepiece":
            options["workdir"] = tok_dir
        tokenizer = make_tokenizer(data_cfg.tokenizer, splits.text(data_cfg.train_split),
                                   **options)
    tokenizer.save(tok_dir)
    return tokenizer


class WorkdirTokenizer:
    """A task's tokenizer, saved in WORKDIR/tokenizer once fitted or read: llm_jax.load rebuilds
    it from there without the corpus, and the model's vocabulary is its size."""

    @staticmethod
    def saved_tokenizer(config, workdir: str):
        return load_tokenizer(os.path.join(workdir, TOKENIZER_DIR))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


class CausalLM(WorkdirTokenizer):
    """Reads the corpus, fits (or reloads) the tokenizer saved with the run, and scores batches.

    A batch is {"inputs": int32[B, T], "targets": int32[B, T]} with targets the next tokens,
    and optionally "weights": float32[B, T] (0 for padding).
    """

    reports_token_nll = True

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(name="causal_lm", label_smoothing=0.0, z_loss=0.0))

    def __init__(self, config, workdir: str):
        self.cfg, self.data_cfg = config.task, config.data
        d = config.data
        # Splits are recorded in WORKDIR/data_files.json before anything else reads them, and
        # their ids are memory maps of token files (data/split_reader.py): a resume re-reads
        # neither text nor tokens beyond hashing the files.
        self.splits = SplitReader(d, workdir)
        self.splits.record(d.train_split, d.eval_split)
        self.tokenizer = fit_or_load_tokenizer(d, workdir, self.splits)
        self.train_tokens = self.splits.tokens(d.train_split, self.tokenizer)
        self.eval_tokens = self.splits.tokens(d.eval_split, self.tokenizer)
        self.seq_len = d.seq_len

    @staticmethod
    def generate_ids(model, prompts, max_new_tokens, **options):
        return generate_tokens(model, prompts, max_new_tokens, **options)

    def train_batches(self, batch_size: int, seed: int) -> LMBatches:
        return LMBatches(self.train_tokens, self.seq_len, batch_size, seed)

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        tokens = self.eval_tokens if tokens is None else tokens
        return eval_batches(tokens, self.seq_len, batch_size, max_batches)

    def split_tokens(self, split: str):
        return self.splits.tokens(split, self.tokenizer)

    def loss(self, model, batch, dropout_key=None):
        """(mean loss to minimise, metrics as (sum, weight)); pure and jit-able."""
        logits_BTV = model(batch["inputs"], dropout_key=dropout_key)
        return lm_loss(logits_BTV, batch["targets"], batch.get("weights"),
                       label_smoothing=self.cfg.label_smoothing, z_loss=self.cfg.z_loss)


def lm_loss(logits_BTV, targets_BT, weights_BT=None, *, label_smoothing=0.0, z_loss=0.0,
            accuracy=True):
    """Mean token loss and the metrics {"loss": NLL, "accuracy", "num_tokens"} as sums."""
    w_BT = token_weights(weights_BT, targets_BT.shape)
    loss_sum, nll_sum, weight = cross_entropy_sums(
        logits_BTV, targets_BT, label_smoothing=label_smoothing, weights=w_BT, z_loss=z_loss)
    loss = loss_sum / jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)
    metrics = {"loss": (nll_sum, weight), NUM_TOKENS: count_tokens(w_BT)}
    if accuracy:
        correct_BT = (jnp.argmax(logits_BTV, -1) == targets_BT).astype(jnp.float32)
        metrics["accuracy"] = mean_metric(correct_BT, w_BT)
    return loss, metrics
