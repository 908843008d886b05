"""What the command line runs on a workdir: train, sweep, eval, generate, export and load.

Every command finds the workdir's runner (training/runners.py) from its config's task.
"""

from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import load_config
from llm_jax.training.runners import runner_for
from llm_jax.training.sweeps import run_sweep


def train(config, workdir) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir`; returns its summary."""
    check_config(config)
    return runner_for(config.task.name).train(config, workdir)


def sweep(config, sweep_path, workdir):
    return run_sweep(config, sweep_path, workdir, train)


def _runner(workdir):
    return runner_for(load_config(workdir).task.name)


def evaluate_workdir(workdir, split=None) -> dict:
    """Metrics of the trained model over a whole split (default: the config's eval split)."""
    return _runner(workdir).evaluate(workdir, split)


def generate_text(workdir, prompt, *, max_new_tokens=200, temperature=0.8, top_k=0, top_p=1.0,
                  num_samples=1, seed=0) -> list[str]:
    """Continuations of `prompt`; needs only the workdir (not the training corpus)."""
    return _runner(workdir).generate(workdir, prompt, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_k=top_k, top_p=top_p,
                                     num_samples=num_samples, seed=seed)


def export_model(workdir, out_dir) -> str:
    return _runner(workdir).export(workdir, out_dir)


def load(workdir):
    """(model, tokenizer, config) of a trained workdir: see llm_jax.load."""
    model, tokenizer = _runner(workdir).load(workdir)
    return model, tokenizer, load_config(workdir)
