"""Tasks that the generic gradient loop (trainer.train) does not fit name their own loop here.

An n-gram model is counted, not trained by gradients, and word2vec updates only the embedding
rows a batch touches; each such task has a module under llm_jax/training/ with
`train(config, workdir) -> summary dict` and `evaluate_workdir(workdir, split=None) -> dict`.
Imported lazily, so a loop's dependencies load only when it runs.
"""

import importlib

# config.task.name -> module holding train() and evaluate_workdir()
CUSTOM_LOOPS: dict[str, str] = {"ngram_lm": "llm_jax.training.ngram_loop",
                               "word2vec": "llm_jax.training.word2vec_loop"}


def custom_loop(task_name: str):
    """The loop module of `task_name`, or None for tasks the generic trainer fits."""
    module = CUSTOM_LOOPS.get(task_name)
    return importlib.import_module(module) if module else None
