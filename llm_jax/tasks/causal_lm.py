"""Causal language modelling: predict every next token of contiguous windows of a corpus."""

import os

import jax.numpy as jnp
import ml_collections

from llm_jax import ops
from llm_jax.data import (
    LMBatches,
    eval_batches,
    load_tokenizer,
    make_tokenizer,
    read_corpus,
    read_tfds_text,
)


def read_split(data_cfg, split: str) -> str:
    if data_cfg.source == "files":
        return read_corpus(data_cfg.corpus, split)
    if data_cfg.source == "tfds":
        return read_tfds_text(data_cfg.tfds_name, split)
    raise ValueError(f"config.data.source={data_cfg.source!r}: expected 'files' or 'tfds'")


def tokenizer_options(data_cfg) -> dict:
    if data_cfg.tokenizer == "word":
        return {"min_count": data_cfg.min_count}
    if data_cfg.tokenizer == "sentencepiece":
        return {"vocab_size": data_cfg.vocab_size, "model_type": data_cfg.sp_model_type}
    return {}


class CausalLM:
    """Reads the corpus, fits (or reloads) the tokenizer saved with the run, and scores batches.

    A batch is {"inputs": int32[B, T], "targets": int32[B, T]} with targets the next tokens.
    """

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(name="causal_lm", label_smoothing=0.0, z_loss=0.0))

    def __init__(self, config, workdir: str):
        self.cfg = config.task
        d = config.data
        train_text = read_split(d, d.train_split)
        eval_text = read_split(d, d.eval_split)
        tok_dir = os.path.join(workdir, "tokenizer")
        if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            self.tokenizer = load_tokenizer(tok_dir)
        else:
            # Characters are a closed set: fit them on every split (as nanoGPT does) so that a
            # character seen only in validation does not stop the run. Word and subword
            # vocabularies are fitted on training text alone; unseen words become <unk>.
            fit_text = train_text + eval_text if d.tokenizer == "char" else train_text
            options = tokenizer_options(d)
            if d.tokenizer == "sentencepiece":
                options["workdir"] = tok_dir
            self.tokenizer = make_tokenizer(d.tokenizer, fit_text, **options)
            self.tokenizer.save(tok_dir)
        self.train_tokens = self.tokenizer.encode(train_text)
        self.eval_tokens = self.tokenizer.encode(eval_text)
        self.seq_len = d.seq_len

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def train_batches(self, batch_size: int, seed: int) -> LMBatches:
        return LMBatches(self.train_tokens, self.seq_len, batch_size, seed)

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        tokens = self.eval_tokens if tokens is None else tokens
        return eval_batches(tokens, self.seq_len, batch_size, max_batches)

    def loss(self, model, batch, dropout_key=None):
        """(mean loss to minimise, metrics); pure and jit-able."""
        logits_BTV = model(batch["inputs"], dropout_key=dropout_key)
        loss, nll = ops.softmax_cross_entropy(
            logits_BTV, batch["targets"], label_smoothing=self.cfg.label_smoothing,
            weights=batch.get("weights"), z_loss=self.cfg.z_loss)
        return loss, {"loss": nll, "accuracy": _accuracy(logits_BTV, batch["targets"])}


def _accuracy(logits_BTV, targets_BT):
    return jnp.mean((jnp.argmax(logits_BTV, -1) == targets_BT).astype(jnp.float32))
