"""What the command line runs on a workdir: train, sweep, eval, generate, export and load.

Every command finds the workdir's runner (training/runners.py) from its config's task.
"""

import os
import shutil

from llm_jax.data.corpora import UnknownSplitError
from llm_jax.training.checkpoints import has_checkpoint
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import load_config
from llm_jax.training.runners import NotSupported, runner_for
from llm_jax.training.sweeps import run_sweep
from llm_jax.training.workdir_lock import LOCK_FILE, workdir_lock


def train(config, workdir) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir`; returns its summary.

    The workdir is locked while it runs. A fresh run that fails before its first checkpoint
    takes back everything it wrote (tokenizer, config, logs), so the corrected run starts
    clean; a run that saved a checkpoint keeps it, to resume from.
    """
    check_config(config)
    with workdir_lock(workdir):
        before = set(os.listdir(workdir))
        try:
            return runner_for(config.task.name).train(config, workdir)
        except BaseException:
            if not before - {LOCK_FILE} and not has_checkpoint(workdir):
                _remove_new_entries(workdir, before)
            raise


def _remove_new_entries(workdir, before):
    for name in set(os.listdir(workdir)) - before:
        path = os.path.join(workdir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def sweep(config, sweep_path, workdir):
    with workdir_lock(workdir):
        return run_sweep(config, sweep_path, workdir, train)


def _runner(workdir):
    return runner_for(load_config(workdir).task.name)


def evaluate_workdir(workdir, split=None) -> dict:
    """Metrics of the trained model over a whole split (default: the config's eval split)."""
    try:
        return _runner(workdir).evaluate(workdir, split)
    except UnknownSplitError as e:
        if split is None:  # the config's own split
            raise
        raise UnknownSplitError(f"--split={split!r}: {e}") from e


def generate_text(workdir, prompt, *, max_new_tokens=200, temperature=0.8, top_k=0, top_p=1.0,
                  num_samples=1, seed=0) -> list[str]:
    """Continuations of `prompt`; needs only the workdir (not the training corpus)."""
    vocab = load_config(workdir).model.get("vocab_size", 0)
    checks = (("num_samples", num_samples, num_samples >= 1, ">= 1"),
              ("max_new_tokens", max_new_tokens, max_new_tokens >= 1, ">= 1"),
              ("temperature", temperature, temperature >= 0, ">= 0 (0: greedy)"),
              ("top_p", top_p, 0 < top_p <= 1, "in (0, 1]"),
              ("top_k", top_k, 0 <= top_k and not (vocab and top_k > vocab),
               f"between 0 (off) and the vocabulary size {vocab}"))
    for flag, value, ok, want in checks:
        if not ok:
            raise ValueError(f"--{flag}={value}: must be {want}")
    return _runner(workdir).generate(workdir, prompt, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_k=top_k, top_p=top_p,
                                     num_samples=num_samples, seed=seed)


def export_model(workdir, out_dir) -> str:
    return _runner(workdir).export(workdir, out_dir)


def average_workdir(workdir, last=5, out=None) -> dict:
    """The mean of the last `last` checkpoints' params as a new workdir: see training/average.py."""
    from llm_jax.training.average import average_checkpoints
    return average_checkpoints(workdir, last, out)


def translate_lines(workdir, lines, *, beam_size=None, alpha=None, max_len=None,
                    no_repeat_ngram=None) -> list[str]:
    """One output line per input line of a seq2seq workdir: see tasks/seq2seq.decode_text."""
    from llm_jax.tasks.seq2seq import decode_text
    config = load_config(workdir)
    if config.task.name != "seq2seq":
        raise NotSupported(f"translate needs a seq2seq workdir; {workdir} trains task "
                           f"{config.task.name!r} (use generate)")
    model, tokenizer = _runner(workdir).load(workdir)
    return decode_text(model, tokenizer, config.task, lines, max_len=config.model.max_len,
                       batch_size=config.train.batch_size, beam_size=beam_size, alpha=alpha,
                       out_len=max_len, no_repeat_ngram=no_repeat_ngram)


def import_hf(hf_dir, workdir) -> dict:
    """A Hugging Face Marian/BERT/RoBERTa/ALBERT/GPT-2 directory as a new workdir: see
    training/hf_import.py."""
    from llm_jax.training.hf_import import import_hf as import_dir
    return import_dir(hf_dir, workdir)


def export_hf(workdir, out_dir) -> dict:
    """A BERT-family or GPT-2 workdir as a Hugging Face directory: see training/hf_export.py."""
    from llm_jax.training.hf_export import export_hf as export_dir
    model, tokenizer, config = load(workdir)
    return export_dir(model, tokenizer, config, out_dir)


def lm_eval(workdir, task, *, shots=0, seed=0, limit=None, out=None, stride=None,
            batch_size=16, progress=True) -> dict:
    """Zero-/few-shot scores of a GPT workdir on a built-in task or a JSONL file: see
    evaluation/lm_tasks.py. `out`: also writes the metrics and every example's scores there
    as JSON (written whole at the end, so a failed run leaves an earlier file as it was)."""
    import json
    import pathlib

    from llm_jax.data.tokenizers import write_atomic
    from llm_jax.evaluation import lm_tasks

    for flag, value in (("shots", shots), ("limit", limit), ("stride", stride),
                        ("batch_size", batch_size)):
        if value is not None and value < (0 if flag == "shots" else 1):
            raise ValueError(f"--{flag}={value}: must be >= {0 if flag == 'shots' else 1}")
    config = load_config(workdir)
    if config.task.name != "causal_lm" or config.model.name != "gpt":
        raise NotSupported(f"lm-eval scores GPT language models (task 'causal_lm', model 'gpt'); "
                           f"{workdir} trains task {config.task.name!r} with model "
                           f"{config.model.name!r}")
    spec = lm_tasks.load_task(task, limit)  # before the model: a bad task fails fast
    model, tokenizer = _runner(workdir).load(workdir)
    metrics, details = lm_tasks.evaluate(model, tokenizer, spec, shots=shots, seed=seed,
                                         limit=limit, stride=stride, batch_size=batch_size,
                                         progress=progress)
    summary = {"workdir": os.path.abspath(workdir), **metrics, "sources": spec.sources}
    if out:
        write_atomic(pathlib.Path(out), json.dumps({**summary, "per_example": details},
                                                   indent=1, ensure_ascii=False).encode())
    return summary


def load(workdir):
    """(model, tokenizer, config) of a trained workdir: see llm_jax.load."""
    model, tokenizer = _runner(workdir).load(workdir)
    return model, tokenizer, load_config(workdir)
