"""The runner of every gradient-trained task: train (trainer.py), evaluate, generate, export, load."""

import os

import jax
import numpy as np
from flax import nnx

from llm_jax.data.split_reader import check_recorded
from llm_jax.models import build_model
from llm_jax.tasks import task_class
from llm_jax.tasks.protocols import TextGenerator
from llm_jax.training.checkpoints import (
    CheckpointError,
    describe_mismatch,
    flat_shapes,
    has_checkpoint,
)
from llm_jax.training.experiment import Experiment, load_config
from llm_jax.training.init_from import read_source_params
from llm_jax.training.runners import NotSupported
from llm_jax.training.trainer import evaluate as evaluate_experiment
from llm_jax.training.trainer import train

__all__ = ["train", "evaluate", "generate", "export", "load"]


def evaluate(workdir, split=None) -> dict:
    """Metrics of the latest checkpoint over a whole split (default: the config's eval split)."""
    config = load_config(workdir)
    # Scoring other text than the run read (another data directory, an edited file) would
    # give a number that looks right: check the record first, before building anything.
    check_recorded(config.data, workdir,
                   [config.data.get("train_split"), config.data.get("eval_split"), split])
    if not has_checkpoint(workdir):
        # said before the task is built, which would fit and save a tokenizer into the workdir
        raise FileNotFoundError(f"no checkpoint in {os.path.abspath(workdir)}/checkpoints: "
                                "train first")
    exp = Experiment(config, workdir)
    state, _ = exp.checkpointer.restore(exp.spec.abstract)
    tokens = None if split is None else exp.task.split_tokens(split)
    metrics = evaluate_experiment(exp, state["params"], tokens=tokens)
    return {"workdir": os.path.abspath(workdir), "step": int(state["step"]),
            "split": split or exp.config.data.eval_split, **metrics,
            **getattr(exp.task, "signatures", {})}  # how BLEU was computed (seq2seq)


def load(workdir):
    """(model, tokenizer) of the latest checkpoint; reads nothing but the workdir."""
    config = load_config(workdir)
    tokenizer = task_class(config.task.name).saved_tokenizer(config, workdir)
    abstract = nnx.eval_shape(lambda: build_model(config.model, rngs=nnx.Rngs(params=config.seed)))
    graphdef, state = nnx.split(abstract)
    params = read_source_params(workdir)
    diff = describe_mismatch(flat_shapes(params), flat_shapes(nnx.to_pure_dict(state)))
    if diff:
        raise CheckpointError(f"the checkpoint in {workdir} does not fit the model of its "
                              f"config.json: {diff}")
    nnx.replace_by_pure_dict(state, jax.tree.map(jax.numpy.asarray, params))
    return nnx.merge(graphdef, state), tokenizer


def generate(workdir, prompt, *, max_new_tokens=200, temperature=0.8, top_k=0, top_p=1.0,
             num_samples=1, seed=0) -> list[str]:
    config = load_config(workdir)
    cls = task_class(config.task.name)
    if not isinstance(cls, TextGenerator):
        hint = "; use translate, which reads source lines" if config.task.name == "seq2seq" else ""
        raise NotSupported(f"model.name={config.model.name!r} (task {config.task.name!r}) does "
                           f"not generate text{hint}")
    model, tokenizer = load(workdir)
    ids = [int(i) for i in tokenizer.encode(prompt)]
    if not ids:
        raise ValueError("--prompt encodes to no tokens: give at least one character")
    out = cls.generate_ids(model, [ids] * num_samples, max_new_tokens, key=jax.random.key(seed),
                           temperature=temperature, top_k=top_k, top_p=top_p)
    return [tokenizer.decode(np.asarray(row)) for row in out]


def export(workdir, out_dir) -> str:
    """Writes the latest checkpoint's model for use outside training (so far: the ELMo biLM,
    read back by llm_jax.models.elmo.load_bilm)."""
    config = load_config(workdir)
    if config.model.name != "elmo":
        raise NotSupported(f"export writes ELMo biLMs, not model.name={config.model.name!r}; "
                           "in Python, llm_jax.load(workdir) returns any trained model")
    from llm_jax.models.elmo import export_bilm
    model, tokenizer = load(workdir)
    return export_bilm(out_dir, nnx.to_pure_dict(nnx.state(model)), config.model,
                       tokenizer.vocab.words)
