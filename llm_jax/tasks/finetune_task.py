"""What every fine-tuning task (glue, token_tagging, intent_slots, span_qa) does the same way:
it trains model.name="finetune" with one head, reads its splits through `split_tokens` (the
eval split when it is built, so a bad file fails before training starts; the train split only
when training needs it, so a workdir is evaluated without its training file), keeps the
tokenizer in WORKDIR/tokenizer, and batches examples with data/example_batches.py.
"""

from __future__ import annotations

import numpy as np

from llm_jax.data.example_batches import ExampleBatches, padded_batches
from llm_jax.tasks.causal_lm import WorkdirTokenizer

SUBSET_SEED = 0  # task.train_examples draws the same subset whatever the training seed


class FineTuneTask(WorkdirTokenizer):
    """A subclass sets `head` and `tokenizer`, and defines split_tokens(split), loss and scores."""

    reports_token_nll = False
    head = ""  # the model.head the task trains

    def check_model(self, config) -> None:
        m = config.model
        if m.get("name") != "finetune" or m.get("head") != self.head:
            raise ValueError(f"config.task.name={config.task.name!r} fine-tunes "
                             f"model.name='finetune' with model.head={self.head!r}, got "
                             f"model.name={m.get('name')!r}, head={m.get('head')!r}")

    def split_tokens(self, split: str):
        raise NotImplementedError

    def subset(self, split: str, n: int) -> np.ndarray:
        """Indices of the `n` examples of `split` to use: for the train split a fixed random
        subset of task.train_examples (when set), for the eval split its first
        task.eval_examples; all of them otherwise."""
        c, d = self.cfg, self.data_cfg
        if split == d.train_split and 0 < c.train_examples < n:
            return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, c.train_examples,
                                                                     replace=False))
        if split == d.eval_split and c.eval_examples > 0:
            return np.arange(min(n, c.eval_examples))
        return np.arange(n)

    @property
    def valid(self):
        return self.split_tokens(self.data_cfg.eval_split)

    @property
    def train(self):
        return self.split_tokens(self.data_cfg.train_split)

    def train_batches(self, batch_size: int, seed: int) -> ExampleBatches:
        return ExampleBatches(self.train, batch_size=batch_size, seed=seed)

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        return padded_batches(self.valid if tokens is None else tokens, batch_size, max_batches)
