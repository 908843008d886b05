"""What the trainer needs of a task, written down as Protocols, and the metric format.

A task's `loss` returns `(loss to minimise, metrics)`. Metrics are `{name: (sum, weight)}`:
the trainer adds sums and weights over every batch and divides at the end, so a mean over
batches of different sizes or with padding is exact. One name is special: `"num_tokens"`
holds a plain count of the real (non-pad) input tokens of the batch, from which the trainer
computes tokens/s. A task whose `"loss"` metric is a negative log-likelihood per token sets
`reports_token_nll = True`, and only then does the trainer log `perplexity = exp(loss)`. A task
whose loss adds other terms (masked LM + NSP) names its token NLL metric in an optional
`token_nll_metric` attribute (default "loss"), and the perplexity is exp of that.
"""

from typing import Any, Iterable, Iterator, Protocol, runtime_checkable

import jax.numpy as jnp

from llm_jax.ops.losses import token_weights, weighted_sum

Metrics = dict[str, Any]  # name -> (sum, weight) pair of scalars, or "num_tokens" -> count
NUM_TOKENS = "num_tokens"


def mean_metric(values, weights=None):
    """(sum of w * values, sum of w): a per-token or per-example mean the trainer averages exactly."""
    values = jnp.asarray(values, jnp.float32)
    w = token_weights(weights, values.shape)
    return weighted_sum(values, w), jnp.sum(w)


def count_tokens(weights) -> jnp.ndarray:
    """The number of real tokens: the non-zero weights."""
    return jnp.sum(jnp.asarray(weights) != 0).astype(jnp.float32)


def metric_means(metrics: Metrics) -> dict:
    """{name: sum / weight} for every pair; the token count passes through as it is."""
    out = {}
    for name, value in metrics.items():
        if name == NUM_TOKENS:
            out[name] = value
        else:
            total, weight = value
            out[name] = total / jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)
    return out


class Batches(Protocol):
    """Training batches: an endless iterator whose position can be saved and restored."""

    def __iter__(self) -> Iterator[dict]: ...
    def __next__(self) -> dict: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...


@runtime_checkable
class Task(Protocol):
    """A gradient-trained objective (tasks/causal_lm.py is the simplest)."""

    reports_token_nll: bool

    @property
    def vocab_size(self) -> int: ...

    def train_batches(self, batch_size: int, seed: int) -> Batches: ...

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None) -> Iterable[dict]:
        """The eval split (or the given token ids) as batches; max_batches=None: all of it."""

    def split_tokens(self, split: str):
        """A named split's token ids, for `eval --split` and `data.test_split`."""

    @staticmethod
    def saved_tokenizer(config, workdir: str):
        """The tokenizer a run saved in its workdir (for llm_jax.load: no corpus read)."""

    def loss(self, model, batch, dropout_key=None) -> tuple[Any, Metrics]:
        """Pure and jit-able; dropout_key None means evaluation."""


@runtime_checkable
class CarryTask(Task, Protocol):
    """A task whose model state carries from batch to batch (truncated BPTT, tasks/stream_lm.py).

    The trainer keeps the carry in the train state (so it is checkpointed) and threads it
    through evaluation the same way.
    """

    def initial_carry(self, model, batch_size: int): ...

    def carry_loss(self, model, carry, batch, dropout_key=None) -> tuple[Any, tuple[Metrics, Any]]:
        """(loss, (metrics, new carry)); carry None starts from zeros."""


@runtime_checkable
class TextGenerator(Protocol):
    """A task class whose models continue text; `generate` on its workdirs works."""

    @staticmethod
    def generate_ids(model, prompts: list, max_new_tokens: int, *, key, temperature: float,
                     top_k: int, top_p: float) -> list: ...


@runtime_checkable
class DecodingEvaluator(Protocol):
    """A task whose eval also scores decoded text (BLEU, ROUGE: tasks/seq2seq.py)."""

    def decode_metrics(self, model, tokens=None, *, final: bool) -> dict:
        """{name: value} over the eval split (or `tokens`, a split_tokens result); `final`:
        the whole split with the task's full decoding, else a cheap periodic estimate."""


@runtime_checkable
class Predictor(Protocol):
    """A fine-tuning task class whose workdirs `predict` answers JSON lines with (glue,
    token_tagging, intent_slots, span_qa). Built with read_eval=False: no data is read."""

    def parse_prediction_input(self, record):
        """The task's input of one line (a dict, or the text of a line that is no JSON object);
        a ValueError naming the field if it does not fit."""

    def predict_json(self, model, inputs: list) -> list[dict]:
        """One output object per input, in order."""
