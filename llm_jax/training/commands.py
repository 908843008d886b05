"""What the command line runs on a workdir: train, sweep, eval, generate, predict, export and load.

Every command finds the workdir's runner (training/runners.py) from its config's task.
"""

import json
import os
import shutil

from tqdm.auto import tqdm

from llm_jax.data.corpora import UnknownSplitError
from llm_jax.tasks import task_class
from llm_jax.tasks.protocols import Predictor, TextGenerator
from llm_jax.training.checkpoints import has_checkpoint
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import load_config
from llm_jax.training.init_from import model_from_init_from
from llm_jax.training.runners import NotSupported, runner_for
from llm_jax.training.sweeps import run_sweep
from llm_jax.training.workdir_lock import LOCK_FILE, workdir_lock


def train(config, workdir) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir`; returns its summary.

    The workdir is locked while it runs. A fresh run that fails before its first checkpoint
    takes back everything it wrote (tokenizer, config, logs), so the corrected run starts
    clean; a run that saved a checkpoint keeps it, to resume from.
    """
    config = model_from_init_from(config)  # config.init_from_model: the source's shape
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
                    no_repeat_ngram=None, min_len=None) -> list[str]:
    """One output line per input line of a seq2seq workdir: see tasks/seq2seq.decode_text."""
    from llm_jax.tasks.seq2seq import decode_text
    config = load_config(workdir)
    if config.task.name != "seq2seq":
        raise NotSupported(f"translate needs a seq2seq workdir; {workdir} trains task "
                           f"{config.task.name!r} (use generate)")
    model, tokenizer = _runner(workdir).load(workdir)
    return decode_text(model, tokenizer, config.task, lines, max_len=config.model.max_len,
                       batch_size=config.train.batch_size, beam_size=beam_size, alpha=alpha,
                       out_len=max_len, no_repeat_ngram=no_repeat_ngram, min_len=min_len)


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


PREDICT_CHUNK = 1024  # lines per task.predict_json call; more lines than this: a progress bar


def _commands_for(config) -> str:
    """The commands other than predict that apply to a workdir, for the refusal message."""
    task, model = config.task.name, config.model.get("name", "")
    cls = task_class(task)
    names = ["eval"]
    if isinstance(cls, TextGenerator) or task == "ngram_lm":
        names.append("generate")
    if task == "seq2seq":
        names.append("translate")
    if task == "causal_lm" and model == "gpt":
        names.append("lm-eval")
    if model in ("elmo", "ngram", "word2vec"):
        names.append("export")
    if model in ("bert", "gpt"):
        names.append("export-hf")
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]


def _read_input_lines(path) -> list:
    """Each line of `path`: a dict where it is a JSON object (it starts with "{"), else its
    text; a one-line error naming the file and line for bad UTF-8 or malformed JSON."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"--input={path}: no such file") from None
    records = []
    for n, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{n}: not UTF-8 (byte {e.start + 1} of the line)") from None
        if n == 1:
            line = line.removeprefix("\ufeff")
        if not line.lstrip().startswith("{"):
            records.append(line)
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None
    return records


def predict_file(workdir, input_path, output_path, *, progress=True) -> dict:
    """Answers every line of `input_path` with a fine-tuned workdir's latest checkpoint and
    writes one JSON object a line, in input order, to `output_path` (see the CLI's usage for
    each task's fields). Every line is checked before the model is loaded, and the output is
    written beside its destination and renamed into place when complete, so a failure leaves
    no half file (and an existing file as it was)."""
    config = load_config(workdir)
    cls = task_class(config.task.name)
    if not isinstance(cls, Predictor):
        raise NotSupported(f"predict answers with fine-tuned models (task glue, token_tagging, "
                           f"intent_slots or span_qa); {workdir} trains task "
                           f"{config.task.name!r}: use {_commands_for(config)}")
    out = os.path.abspath(output_path)
    if not os.path.isdir(os.path.dirname(out)):
        raise FileNotFoundError(f"--output={output_path}: directory {os.path.dirname(out)} does "
                                "not exist")
    if os.path.exists(input_path) and os.path.exists(out) and os.path.samefile(input_path, out):
        raise ValueError(f"--output={output_path} is the --input file: name another")
    if not has_checkpoint(workdir):
        raise FileNotFoundError(f"no checkpoint in {os.path.abspath(workdir)}/checkpoints: "
                                "train first")
    records = _read_input_lines(input_path)
    task = cls(config, workdir, read_eval=False)
    inputs = []
    for n, record in enumerate(records, start=1):
        try:
            inputs.append(task.parse_prediction_input(record))
        except ValueError as e:
            raise ValueError(f"{input_path}:{n}: {e}") from None
    model, _ = _runner(workdir).load(workdir)
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f, tqdm(
                total=len(inputs), desc="predict", unit="line", dynamic_ncols=True,
                disable=not progress or len(inputs) <= PREDICT_CHUNK) as bar:
            for start in range(0, len(inputs), PREDICT_CHUNK):
                chunk = inputs[start:start + PREDICT_CHUNK]
                for row in task.predict_json(model, chunk):
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                bar.update(len(chunk))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"workdir": os.path.abspath(workdir), "task": config.task.name,
            "input": os.path.abspath(input_path), "output": out, "lines": len(inputs)}


def load(workdir):
    """(model, tokenizer, config) of a trained workdir: see llm_jax.load."""
    model, tokenizer = _runner(workdir).load(workdir)
    return model, tokenizer, load_config(workdir)
