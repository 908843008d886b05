"""One runner per kind of training, and the one table every command dispatches through.

Gradient-trained models (GPT, rnn_lm, ELMo, ...) share training/gradient_runner.py; an n-gram
model is counted (training/ngram_loop.py) and word2vec updates only the embedding rows a batch
touches (training/word2vec_loop.py). Each runner module offers the functions of `Runner`; a
command its models do not have raises `NotSupported`, which the CLI prints as one line.
Runner modules are imported lazily, so a runner's dependencies load only when it runs.
"""

import importlib
from typing import Protocol


class NotSupported(ValueError):
    """A command that this kind of model does not have (e.g. generate on word2vec)."""


class Runner(Protocol):
    def train(self, config, workdir: str) -> dict: ...

    def evaluate(self, workdir: str, split: str | None = None) -> dict: ...

    def generate(self, workdir: str, prompt: str, *, max_new_tokens: int, temperature: float,
                 top_k: int, top_p: float, num_samples: int, seed: int) -> list[str]: ...

    def export(self, workdir: str, out_dir: str) -> str: ...

    def load(self, workdir: str) -> tuple:
        """(model, tokenizer) from the workdir alone: no training corpus needed."""


RUNNERS = {"gradient": "llm_jax.training.gradient_runner",
           "ngram": "llm_jax.training.ngram_loop",
           "word2vec": "llm_jax.training.word2vec_loop"}
# config.task.name -> runner; every task not listed here is gradient-trained.
TASK_RUNNERS = {"ngram_lm": "ngram", "word2vec": "word2vec"}


def runner_for(task_name: str) -> Runner:
    return importlib.import_module(RUNNERS[TASK_RUNNERS.get(task_name, "gradient")])
