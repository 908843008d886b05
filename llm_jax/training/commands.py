"""What the command line runs: train, sweep, eval and generate on a workdir."""

import os

import jax
import numpy as np
from flax import nnx

from llm_jax.decoding import generate
from llm_jax.training.experiment import Experiment, load_config
from llm_jax.training.loops import custom_loop
from llm_jax.training.sweeps import run_sweep
from llm_jax.training.trainer import evaluate, train


def sweep(config, sweep_path, workdir):
    return run_sweep(config, sweep_path, workdir, train)


def _restored(workdir):
    config = load_config(workdir)
    exp = Experiment(config, workdir)
    if exp.checkpointer.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint in {exp.checkpointer.directory}: train first")
    state, _ = exp.checkpointer.restore(exp.spec.abstract)
    return exp, state


def evaluate_workdir(workdir, split=None) -> dict:
    """Metrics of the latest checkpoint over a whole split (default: the config's eval split)."""
    loop = custom_loop(load_config(workdir).task.name)
    if loop is not None:
        return loop.evaluate_workdir(workdir, split)
    exp, state = _restored(workdir)
    tokens = None
    if split is not None:
        from llm_jax.tasks.causal_lm import read_split
        tokens = exp.task.tokenizer.encode(read_split(exp.config.data, split))
    metrics = evaluate(exp, state["params"], tokens=tokens)
    return {"workdir": os.path.abspath(workdir), "step": int(state["step"]),
            "split": split or exp.config.data.eval_split, **metrics}


def generate_text(workdir, prompt, *, max_new_tokens=200, temperature=0.8, top_k=0, top_p=1.0,
                  num_samples=1, seed=0) -> list[str]:
    exp, state = _restored(workdir)
    model = nnx.merge(exp.spec.graphdef, jax.device_get(state["params"]))
    ids = exp.task.tokenizer.encode(prompt)
    if len(ids) == 0:
        raise ValueError("--prompt encodes to no tokens: give at least one character")
    prompt_BP = np.tile(np.asarray(ids)[None], (num_samples, 1))
    out = generate(model, prompt_BP, max_new_tokens, key=jax.random.key(seed),
                   temperature=temperature, top_k=top_k, top_p=top_p)
    return [exp.task.tokenizer.decode(np.asarray(row)) for row in out]


def export_model(workdir, out_dir) -> str:
    """Writes the latest checkpoint's model for use outside training (so far: the ELMo biLM,
    read back by llm_jax.models.elmo.load_bilm)."""
    config = load_config(workdir)
    if config.model.name != "elmo":
        raise ValueError(f"export supports model.name='elmo' (the biLM), not {config.model.name!r}")
    from llm_jax.models.elmo import export_bilm
    exp, state = _restored(workdir)
    return export_bilm(out_dir, state["params"], exp.config.model, exp.task.words)
