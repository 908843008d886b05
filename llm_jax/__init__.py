"""llm_jax: the classical lineage of language models in JAX/Flax.

From a notebook, `model, tokenizer, config = llm_jax.load(workdir)` gives a trained run's model
and tokenizer (see README.md, "Using a trained model").
"""


def load(workdir):
    """(model, tokenizer, config) of the workdir of a finished or running training run.

    `model` is what the run trained: an NNX module with its latest checkpoint's parameters
    (GPT, rnn_lm, ELMo), an `NGramLM`, or word2vec's `WordVectors`. Nothing but the workdir is
    read: neither the training corpus nor LLM_JAX_DATA_DIR.
    """
    from llm_jax.training.commands import load as load_workdir
    return load_workdir(workdir)
