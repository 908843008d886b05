"""Zero- and few-shot tasks over lm_scoring's log-likelihoods: built-in sets, a user's JSONL
file, k-shot prompts and the metrics (`python -m llm_jax lm-eval --task=NAME`).

Built-in tasks (files under $LLM_JAX_DATA_DIR):

- `wikitext2` (wikitext-2/wiki.test.tokens), `ptb` (ptb/ptb.test.txt): perplexity of the whole
  test file as one text, detokenised first (evaluation/detokenizers.py), scored
  with overlapping windows (lm_scoring.stride_nll; `--stride`, default half the window).
  token_perplexity = exp(NLL / model tokens); word_perplexity = exp(NLL / whitespace-separated
  words of the original, tokenised file), the GPT-2 paper's "divide by the number of canonical
  units" (Radford et al. 2019, section 3.1); byte_perplexity and bits_per_byte over the
  original file's UTF-8 bytes, as lm-eval's wikitext reports them.
- `lambada` (lambada/lambada_test.jsonl, OpenAI's version, `{"text": ...}`): lm-eval's
  `lambada_openai`: context = the text up to its last space, continuation = " " + the last
  space-separated word. `acc`: every token of the last word is the greedy (argmax) token
  (lm-eval's acc); `acc_last_token`: the word's last BPE token is the argmax given everything
  before it, which is how OpenAI's GPT-2 numbers were scored as far as that is documented (the
  GPT-2 paper, section 3.3, says only "accuracy" of the final word, plus a stop-word filter it
  does not specify, which is not implemented; openai/gpt-2 issue #131 and lm-evaluation-harness
  issue #356 report that the accuracy compared the last BPE token). `perplexity` =
  exp(-mean over examples of the word's summed log-likelihood) (lm-eval's perplexity);
  `token_perplexity` = exp(-sum log-likelihood / sum of the word's tokens).
- `sst2` (glue/SST-2: dev scored, train for shots): multiple choice with lm-eval's glue/sst2
  template ("{sentence}\\nQuestion: Is this sentence positive or negative?\\nAnswer:", choices
  " negative" / " positive").

Multiple choice (lm-eval's multiple_choice output type): each choice is scored as the
continuation target_delimiter + choice; `acc` = argmax of the summed log-likelihoods,
`acc_norm` = argmax of the log-likelihood divided by len(choice), the choice's length in
characters without the delimiter (lm-eval: `completion_len = np.array([float(len(i)) for i in
choices])`). Means come with their standard error (sample std / sqrt(n), as lm-eval's).

Shots (`--shots=K --seed=S`): K solved examples drawn without replacement from the task's train
split (from the scored examples themselves when it has none: LAMBADA, a JSONL file without a
train file), never the example itself nor a copy of it, by numpy's default_rng([S, index]), so
each example's shots depend only on the seed and its own position (a --limit run sees the
shots of the full run). A shot is prompt + target_delimiter + its answer; the prompt is the
shots joined by `separator`, then `separator`, then the example's prompt (lm-eval's
fewshot_delimiter, "\\n\\n").

A user's task: `--task=path/to/file.jsonl`, UTF-8, one JSON object a line (blank lines are
skipped); every line is one kind:

    {"context": "The capital of France is", "choices": ["Paris", "London"], "label": 0}
    {"context": "The capital of France is", "continuation": "Paris"}

Multiple choice needs `choices` (non-empty strings) and `label` (the index of the right one);
completion needs `continuation`, scored as LAMBADA is (acc, acc_last_token, perplexity). The
first line may instead be a configuration, all fields optional:

    {"config": {"prompt": "Q: {question}\\nA:", "target_delimiter": " ", "separator": "\\n\\n",
                "train": "train.jsonl"}}

`prompt` is a str.format template over each record's fields (default "{context}"; a record
then needs the fields it names), `target_delimiter` goes between the prompt and each answer
(default " ", so write answers without their leading space), `separator` between shots, and
`train` names a file of the same kind (relative to this one) to draw shots from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import string
from collections.abc import Callable
from typing import Any

import numpy as np

from llm_jax.evaluation import lm_scoring
from llm_jax.evaluation.detokenizers import DETOKENIZERS

KINDS = ("perplexity", "completion", "multiple_choice")
CONFIG_KEYS = ("prompt", "target_delimiter", "separator", "train")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str
    kind: str  # one of KINDS
    prompt: str = "{context}"  # str.format over a record's fields
    target_delimiter: str = " "  # between a prompt and its answer (lm-eval's target_delimiter)
    separator: str = "\n\n"  # between shots (lm-eval's fewshot_delimiter)
    choices: tuple[str, ...] = ()  # the same answers for every record; (): its "choices"
    detokenizer: str = ""  # perplexity tasks: a key of DETOKENIZERS, or ""


@dataclasses.dataclass
class Task:
    config: TaskConfig
    examples: list  # records (dicts); a perplexity task: one string, the original text
    train: list | None  # records to draw shots from; None: the examples themselves
    sources: list[str]  # the files read


# ------------------------------------------------------------------ built-in tasks


def _read_text(dataset: str, filename: str, limit: int | None) -> tuple[str, str]:
    from llm_jax.data.paths import require_file
    path = require_file(dataset, filename)
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.readlines() if limit else [f.read()]
    return "".join(lines[:limit] if limit else lines), str(path)


def _wikitext2(limit):
    text, path = _read_text("wikitext-2", "wiki.test.tokens", limit)
    return [text], None, [path]


def _ptb(limit):
    text, path = _read_text("ptb", "ptb.test.txt", limit)
    return [text], None, [path]


def _lambada(limit):
    from llm_jax.data.paths import require_file
    path = require_file("lambada", "lambada_test.jsonl")
    records = []
    for n, record in _jsonl_lines(str(path)):
        text = record.get("text")
        # lm-eval: context = text.split(' ')[:-1] joined by ' ', target = ' ' + the last piece
        context, _, word = text.rpartition(" ") if isinstance(text, str) else ("", "", "")
        if not context or not word:
            raise ValueError(f"{path}:{n}: field 'text' must be a string of two or more "
                             f"space-separated words, got {text!r}")
        records.append({"context": context, "continuation": word})
    return records, None, [str(path)]


def _sst2(limit):
    from llm_jax.data.paths import require_file
    from llm_jax.data.sst2 import SPLITS, read_sst2

    def records(split):
        data = read_sst2(split)
        return [{"sentence": " ".join(s), "label": int(y)} for s, y in zip(data.sentences,
                                                                           data.labels)]
    return (records("dev"), records("train"),
            [str(require_file("glue/SST-2", SPLITS[s])) for s in ("dev", "train")])


BUILTIN: dict[str, tuple[TaskConfig, Callable]] = {
    "wikitext2": (TaskConfig("wikitext2", "perplexity", detokenizer="wikitext"), _wikitext2),
    "ptb": (TaskConfig("ptb", "perplexity", detokenizer="ptb"), _ptb),
    "lambada": (TaskConfig("lambada", "completion"), _lambada),
    "sst2": (TaskConfig("sst2", "multiple_choice",
                        prompt="{sentence}\nQuestion: Is this sentence positive or negative?\n"
                               "Answer:", choices=("negative", "positive")), _sst2),
}


def load_task(name: str, limit: int | None = None) -> Task:
    """A built-in task by name, or a JSONL file's (module docstring). Every example is read
    (shots may come from them); `limit` only cuts a perplexity task's text to N lines."""
    if name in BUILTIN:
        config, read = BUILTIN[name]
        examples, train, sources = read(limit)
        return Task(config, examples, train, sources)
    if name.endswith(".jsonl") or os.path.sep in name or os.path.exists(name):
        return read_jsonl_task(name)
    raise ValueError(f"--task={name!r}: not a built-in task ({', '.join(sorted(BUILTIN))}) nor "
                     "a .jsonl file")


# ------------------------------------------------------------------ JSONL tasks


def _jsonl_lines(path: str):
    """(line number, object) of each non-blank line of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got "
                                 f"{type(record).__name__}")
            yield n, record


def prompt_fields(prompt: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(prompt) if field]


def _check_record(record: dict, kind: str, fields: list[str], where: str) -> dict:
    for field in fields:
        if field not in record:
            raise ValueError(f"{where}: missing field {field!r} (the prompt template names it)")
    if kind == "multiple_choice":
        for field in ("choices", "label"):
            if field not in record:
                raise ValueError(f"{where}: missing field {field!r} (a multiple-choice record "
                                 "has choices and label)")
        choices, label = record["choices"], record["label"]
        if not (isinstance(choices, list) and choices and
                all(isinstance(c, str) and c for c in choices)):
            raise ValueError(f"{where}: field 'choices' must be a list of non-empty strings, "
                             f"got {choices!r}")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
            raise ValueError(f"{where}: field 'label' must be an index into choices (0.."
                             f"{len(choices) - 1}), got {label!r}")
    else:
        if "continuation" not in record:
            raise ValueError(f"{where}: missing field 'continuation' (a completion record has "
                             "one)")
        if not isinstance(record["continuation"], str) or not record["continuation"]:
            raise ValueError(f"{where}: field 'continuation' must be a non-empty string, got "
                             f"{record['continuation']!r}")
    return record


def _kind_of(record: dict, where: str) -> str:
    if "choices" in record or "label" in record:
        return "multiple_choice"
    if "continuation" in record:
        return "completion"
    raise ValueError(f"{where}: a record needs 'choices' and 'label' (multiple choice) or "
                     f"'continuation' (completion); it has {sorted(record)}")


def _parse_settings(line: dict, where: str) -> dict:
    settings = line["config"]
    if set(line) != {"config"} or not isinstance(settings, dict):
        raise ValueError(f"{where}: a configuration line is {{\"config\": {{...}}}} alone")
    for key, value in settings.items():
        if key not in CONFIG_KEYS:
            raise ValueError(f"{where}: unknown config field {key!r}; expected some of "
                             f"{', '.join(CONFIG_KEYS)}")
        if not isinstance(value, str):
            raise ValueError(f"{where}: config field {key!r} must be a string, got {value!r}")
    return settings


def _read_jsonl(path: str, *, train_of: TaskConfig | None = None):
    """(settings of the config line or {}, kind, records) of a JSONL task file; `train_of`:
    read it as the train file of that task (its kind and prompt; no config line)."""
    settings, records = None, []
    kind = None if train_of is None else train_of.kind
    for n, record in _jsonl_lines(path):
        where = f"{path}:{n}"
        if "config" in record and not records and settings is None:
            if train_of is not None:
                raise ValueError(f"{where}: a configuration line belongs in the scored file, "
                                 "not in its train file")
            settings = _parse_settings(record, where)
            continue
        kind = kind or _kind_of(record, where)
        prompt = train_of.prompt if train_of else (settings or {}).get("prompt", "{context}")
        records.append(_check_record(record, kind, prompt_fields(prompt), where))
    if not records:
        raise ValueError(f"{path}: no records")
    return settings or {}, kind, records


def read_jsonl_task(path: str) -> Task:
    """A user's JSONL task (module docstring); shots from its config's train file if any."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--task={path}: no such file")
    settings, kind, examples = _read_jsonl(path)
    config = TaskConfig(os.path.basename(path), kind,
                        **{k: v for k, v in settings.items() if k != "train"})
    train, sources = None, [os.path.abspath(path)]
    if settings.get("train"):
        train_path = os.path.join(os.path.dirname(path), settings["train"])
        if not os.path.isfile(train_path):
            raise FileNotFoundError(f"{path}: config field 'train': no such file {train_path}")
        train = _read_jsonl(train_path, train_of=config)[2]
        sources.append(os.path.abspath(train_path))
    return Task(config, examples, train, sources)


# ------------------------------------------------------------------ prompts and shots


def render_prompt(config: TaskConfig, record: dict) -> str:
    return config.prompt.format(**record)


def answers(config: TaskConfig, record: dict) -> list[str]:
    """A multiple-choice record's choices (without the target delimiter)."""
    return list(config.choices or record["choices"])


def gold(config: TaskConfig, record: dict) -> str:
    if config.kind == "multiple_choice":
        return answers(config, record)[record["label"]]
    return record["continuation"]


def solved(config: TaskConfig, record: dict) -> str:
    """A record as a shot: its prompt, the delimiter and its right answer."""
    return render_prompt(config, record) + config.target_delimiter + gold(config, record)


def draw_shots(task: Task, index: int, shots: int, seed: int) -> list[int]:
    """Indices into the shot pool (task.train, else task.examples) for example `index`: `shots`
    of them without replacement, never the example itself nor a record equal to it."""
    own = task.train is None
    pool = task.examples if own else task.train
    record = task.examples[index]
    picks = []
    for j in np.random.default_rng([seed, index]).permutation(len(pool)):
        j = int(j)
        if (own and j == index) or pool[j] == record:
            continue
        picks.append(j)
        if len(picks) == shots:
            return picks
    raise ValueError(f"--shots={shots}: task {task.config.name} has only {len(picks)} other "
                     f"examples to draw shots from")


def fewshot_context(task: Task, index: int, shots: int, seed: int) -> str:
    """The text scored before example `index`'s answers: its shots, then its prompt."""
    config, record = task.config, task.examples[index]
    prompt = render_prompt(config, record)
    if not shots:
        return prompt
    pool = task.examples if task.train is None else task.train
    parts = [solved(config, pool[j]) for j in draw_shots(task, index, shots, seed)]
    return config.separator.join(parts) + config.separator + prompt


# ------------------------------------------------------------------ evaluation


def _mean(values) -> tuple[float, float | None]:
    """The mean and its standard error (sample std / sqrt(n), lm-eval's mean_stderr)."""
    x = np.asarray(values, np.float64)
    return float(x.mean()), (float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None)


def _exp(x: float) -> float:
    return math.exp(x) if x < 709 else math.inf  # a perplexity past float64's range


def _with_stderr(metrics: dict, name: str, values) -> None:
    metrics[name], metrics[f"{name}_stderr"] = _mean(values)


def evaluate(model, tokenizer, task: Task, *, shots: int = 0, seed: int = 0,
             limit: int | None = None, stride: int | None = None, batch_size: int = 16,
             progress: bool = False) -> tuple[dict[str, Any], list[dict]]:
    """(metrics, one dict per example) of `task` under `model`: see the module docstring.
    `limit`: score the first N examples (a perplexity task's text is cut by load_task);
    `stride`: perplexity tasks' window step (default half of model.max_len)."""
    config = task.config
    if shots < 0:
        raise ValueError(f"--shots={shots}: must be >= 0")
    if config.kind == "perplexity":
        if shots:
            raise ValueError(f"--shots={shots}: task {config.name} scores a text's perplexity; "
                             "it has no prompts to put shots before")
        return _perplexity(model, tokenizer, task, stride, batch_size, progress), []
    if stride is not None:
        raise ValueError(f"--stride={stride}: only perplexity tasks (wikitext2, ptb) use it")
    n = len(task.examples) if limit is None else min(limit, len(task.examples))
    contexts = [fewshot_context(task, i, shots, seed) for i in range(n)]
    metrics: dict[str, Any] = {"task": config.name, "kind": config.kind, "shots": shots,
                               "seed": seed, "examples": n}
    if shots:  # no train split: the scored examples, each one's own left out
        metrics["shots_from"] = "train" if task.train is not None else "examples"
    if config.kind == "multiple_choice":
        metrics_, details = _multiple_choice(model, tokenizer, task, contexts, batch_size, progress)
    else:
        metrics_, details = _completion(model, tokenizer, task, contexts, batch_size, progress)
    if details:
        details[0]["prompt"] = contexts[0]
    return {**metrics, **metrics_}, details


def _completion(model, tokenizer, task, contexts, batch_size, progress):
    config = task.config
    pairs = [(c, config.target_delimiter + task.examples[i]["continuation"])
             for i, c in enumerate(contexts)]
    scored = lm_scoring.loglikelihood(model, tokenizer, pairs, batch_size=batch_size,
                                      progress=progress)
    ll = np.array([s.logprob for s in scored])
    tokens = sum(s.num_tokens for s in scored)
    metrics: dict[str, Any] = {}
    _with_stderr(metrics, "acc", [s.greedy for s in scored])
    _with_stderr(metrics, "acc_last_token", [bool(s.token_greedy[-1]) for s in scored])
    metrics.update(perplexity=_exp(-ll.mean()), token_perplexity=_exp(-ll.sum() / tokens),
                   loglikelihood=float(ll.mean()), continuation_tokens=tokens)
    details = [{"index": i, "loglikelihood": s.logprob, "tokens": s.num_tokens,
                "greedy": s.greedy, "last_token_greedy": bool(s.token_greedy[-1])}
               for i, s in enumerate(scored)]
    return metrics, details


def _multiple_choice(model, tokenizer, task, contexts, batch_size, progress):
    config = task.config
    options = [answers(config, task.examples[i]) for i in range(len(contexts))]
    pairs = [(c, config.target_delimiter + a) for c, opts in zip(contexts, options) for a in opts]
    scored = iter(lm_scoring.loglikelihood(model, tokenizer, pairs, batch_size=batch_size,
                                           progress=progress))
    acc, acc_norm, details = [], [], []
    for i, opts in enumerate(options):
        ll = np.array([next(scored).logprob for _ in opts])
        # lm-eval's acc_norm: the choice's length in characters, the delimiter left out
        lengths = np.array([float(len(a)) for a in opts])
        label = task.examples[i]["label"]
        pred, pred_norm = int(np.argmax(ll)), int(np.argmax(ll / lengths))
        acc.append(pred == label)
        acc_norm.append(pred_norm == label)
        details.append({"index": i, "label": label, "loglikelihoods": ll.tolist(),
                        "pred": pred, "pred_norm": pred_norm})
    metrics: dict[str, Any] = {}
    _with_stderr(metrics, "acc", acc)
    _with_stderr(metrics, "acc_norm", acc_norm)
    return metrics, details


def _perplexity(model, tokenizer, task, stride, batch_size, progress):
    config, original = task.config, task.examples[0]
    text = DETOKENIZERS[config.detokenizer](original) if config.detokenizer else original
    window = int(model.max_len)
    stride = stride or max(1, window // 2)
    nll, tokens = lm_scoring.stride_nll(model, tokenizer.encode(text), stride=stride,
                                        prefix=lm_scoring.prefix_id(tokenizer),
                                        batch_size=batch_size, progress=progress)
    if not tokens:
        raise ValueError(f"task {config.name}: the text has no tokens to score")
    words, size = len(original.split()), len(original.encode("utf-8"))
    return {"task": config.name, "kind": config.kind, "window": window, "stride": stride,
            "tokens": tokens, "words": words, "bytes": size, "nll": nll,
            "token_perplexity": _exp(nll / tokens),
            "word_perplexity": _exp(nll / words) if words else None,
            "byte_perplexity": _exp(nll / size), "bits_per_byte": nll / size / math.log(2)}
