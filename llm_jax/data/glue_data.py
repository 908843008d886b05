"""GLUE tasks' TSV files as GLUE's `download_glue_data.py` writes them: strings and labels.

    read_glue("rte", "dev")               # $LLM_JAX_DATA_DIR/glue/RTE/dev.tsv
    read_glue("RTE", "train", path=...)   # a user's own TSV with the same columns

Tasks are named as Hugging Face's `glue` data set and `evaluation/glue_metrics.py` name them
(cola, sst2, mrpc, stsb, qnli, rte, wnli); the folder names (CoLA, SST-2, STS-B, ...) work too.
Splits are "train", "dev" ("valid" and "validation" are read as "dev") and "test".

Lines are split on tabs and nothing else, with no quote handling (csv.QUOTE_NONE, as GLUE's
and Hugging Face's loaders read these files): MRPC, RTE and STS-B sentences hold `"`
characters that a quoting reader would take as field delimiters and merge lines over. Which
columns a file has is read from its header: a labelled file (train, dev) has the label
column, GLUE's test files have none and give `labels=None` (a train or dev
file without labels is an error). CoLA's train and dev files have
no header (columns source, label, original mark, sentence); its test.tsv has `index sentence`.
SST-2's "test" is `test_labeled.tsv` (the SST test set with its labels, as `sst2.py` reads
it) where that file exists, else GLUE's unlabelled `test.tsv`.

Label ids follow Hugging Face's `glue` ClassLabel order (LABEL_NAMES), so ids, metrics and
checkpoints line up with theirs; STS-B labels are the float similarity score (0-5) and it has
no label names.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib

from llm_jax.data.paths import MissingDataError, data_dir, read_lines, require_file_in_layout

# Hugging Face `glue` ClassLabel names, in id order.
LABEL_NAMES: dict[str, tuple[str, ...] | None] = {
    "cola": ("unacceptable", "acceptable"),
    "sst2": ("negative", "positive"),
    "mrpc": ("not_equivalent", "equivalent"),
    "stsb": None,
    "qnli": ("entailment", "not_entailment"),
    "rte": ("entailment", "not_entailment"),
    "wnli": ("not_entailment", "entailment"),
}
FOLDERS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qnli": "QNLI",
           "rte": "RTE", "wnli": "WNLI"}
TASKS = tuple(FOLDERS)
SPLITS = ("train", "dev", "test")
_SPLIT_ALIASES = {"valid": "dev", "validation": "dev"}


@dataclasses.dataclass(frozen=True)
class _Layout:
    header: tuple[str, ...] | None  # of the labelled files; None: they have no header (CoLA)
    test_header: tuple[str, ...]  # of GLUE's unlabelled test.tsv
    text_a: str
    text_b: str | None
    label: str
    raw_labels: tuple[str, ...] | None  # label column values in id order; None: a float score


_ENTAILMENT = ("entailment", "not_entailment")
_LAYOUTS = {
    "cola": _Layout(None, ("index", "sentence"), "sentence", None, "label", ("0", "1")),
    "sst2": _Layout(("sentence", "label"), ("index", "sentence"), "sentence", None, "label",
                    ("0", "1")),
    "mrpc": _Layout(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
                    ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"),
                    "#1 String", "#2 String", "Quality", ("0", "1")),
    "stsb": _Layout(("index", "genre", "filename", "year", "old_index", "source1", "source2",
                     "sentence1", "sentence2", "score"),
                    ("index", "genre", "filename", "year", "old_index", "source1", "source2",
                     "sentence1", "sentence2"),
                    "sentence1", "sentence2", "score", None),
    "qnli": _Layout(("index", "question", "sentence", "label"), ("index", "question", "sentence"),
                    "question", "sentence", "label", _ENTAILMENT),
    "rte": _Layout(("index", "sentence1", "sentence2", "label"), ("index", "sentence1", "sentence2"),
                   "sentence1", "sentence2", "label", _ENTAILMENT),
    # WNLI's files say 1 for entailment, which is also Hugging Face's id for it.
    "wnli": _Layout(("index", "sentence1", "sentence2", "label"), ("index", "sentence1", "sentence2"),
                    "sentence1", "sentence2", "label", ("0", "1")),
}
_COLA_COLUMNS = ("source", "label", "original_mark", "sentence")
STSB_RANGE = (0.0, 5.0)


@dataclasses.dataclass
class GlueSplit:
    """One GLUE file: text_a (and text_b for pair tasks) with labels in LABEL_NAMES id order."""

    task: str  # Hugging Face's name: cola, sst2, mrpc, stsb, qnli, rte, wnli
    split: str  # train, dev or test
    text_a: list[str]
    text_b: list[str] | None  # None for the single-sentence tasks (CoLA, SST-2)
    labels: list[int] | list[float] | None  # class ids; STS-B: scores; None: an unlabelled file
    label_names: tuple[str, ...] | None  # id -> name; None for STS-B (a regression task)
    path: pathlib.Path

    def __len__(self) -> int:
        return len(self.text_a)


def glue_task(task: str) -> str:
    """Hugging Face's name of a GLUE task given that name or its folder's ("SST-2" -> "sst2")."""
    key = task.lower().replace("-", "")
    if key not in FOLDERS:
        raise ValueError(f"GLUE task {task!r}: expected one of {', '.join(TASKS)} "
                         f"(or a folder name: {', '.join(FOLDERS.values())})")
    return key


def _header_text(columns: tuple[str, ...]) -> str:
    return "<TAB>".join(columns)


def layout(task: str) -> str:
    """The files and columns that read_glue expects for `task`, in words."""
    task = glue_task(task)
    spec = _LAYOUTS[task]
    folder = f"glue/{FOLDERS[task]}"
    test = "test_labeled.tsv (or GLUE's test.tsv)" if task == "sst2" else "test.tsv"
    labelled = (f"no header, columns {_header_text(_COLA_COLUMNS)}" if spec.header is None
                else f"header {_header_text(spec.header)}")
    return (f"{folder}/train.tsv and dev.tsv ({labelled}) and {folder}/{test} (header "
            f"{_header_text(spec.test_header)}), tab-separated UTF-8 as GLUE's "
            "download_glue_data.py writes them")


def _file_in_data_dir(task: str, split: str) -> pathlib.Path:
    folder = f"glue/{FOLDERS[task]}"
    name = f"{split}.tsv"
    if (task, split) == ("sst2", "test"):
        name = "test_labeled.tsv"
        if not (data_dir() / folder / name).is_file() and (data_dir() / folder / "test.tsv").is_file():
            return data_dir() / folder / "test.tsv"
    return require_file_in_layout(folder, name, layout(task))


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def read_glue(task: str, split: str, path: str | os.PathLike | None = None,
              encoding: str = "utf-8") -> GlueSplit:
    """A GLUE split from $LLM_JAX_DATA_DIR/glue/<Task>/, or the TSV at `path` (same columns).

    MissingDataError (a FileNotFoundError) names a missing file and the expected layout; a
    malformed line raises ValueError("FILE:LINE: field 'NAME': ...").
    """
    task = glue_task(task)
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"GLUE split {split!r}: expected one of {', '.join(SPLITS)}")
    if path is None:
        file = _file_in_data_dir(task, split)
    else:
        file = pathlib.Path(path).expanduser()
        if not file.is_file():
            raise MissingDataError(f"{file}: no such file (GLUE {task} {split}); expected a file "
                                   f"like those of {layout(task)}")
    spec = _LAYOUTS[task]
    lines = read_lines(file, encoding)
    while lines and not lines[-1]:  # blank lines at the very end of a TSV
        lines.pop()
    if not lines:
        raise ValueError(f"{file}:1: field 'header': the file is empty; expected {layout(task)}")
    first = tuple(lines[0].split("\t"))
    if first == spec.test_header:
        if split != "test":
            raise ValueError(f"{file}:1: field 'header': a {split} file needs its {spec.label!r} "
                             f"column, got the unlabelled test header {_short(lines[0])}")
        columns, labelled, start = spec.test_header, False, 1
    elif spec.header is None:
        columns, labelled, start = _COLA_COLUMNS, True, 0
    elif first == spec.header:
        columns, labelled, start = spec.header, True, 1
    else:
        raise ValueError(f"{file}:1: field 'header': expected {_header_text(spec.header)!r} (or, "
                         f"unlabelled, {_header_text(spec.test_header)!r}), got {_short(lines[0])}")
    col = {name: i for i, name in enumerate(columns)}
    label_ids = {raw: i for i, raw in enumerate(spec.raw_labels or ())}
    text_a, text_b, labels = [], [], []
    for n, line in enumerate(lines[start:], start=start + 1):
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise ValueError(f"{file}:{n}: field 'columns': expected {len(columns)} tab-separated "
                             f"columns ({', '.join(columns)}), got {len(fields)}")
        text_a.append(fields[col[spec.text_a]])
        if spec.text_b is not None:
            text_b.append(fields[col[spec.text_b]])
        if not labelled:
            continue
        raw = fields[col[spec.label]]
        if spec.raw_labels is None:
            labels.append(_score(raw, file, n, spec.label))
        elif raw in label_ids:
            labels.append(label_ids[raw])
        else:
            raise ValueError(f"{file}:{n}: field {spec.label!r}: expected one of "
                             f"{', '.join(map(repr, spec.raw_labels))}, got {_short(raw)}")
    return GlueSplit(task, split, text_a, text_b if spec.text_b is not None else None,
                     labels if labelled else None, LABEL_NAMES[task], file)


def _score(raw: str, file: pathlib.Path, n: int, field: str) -> float:
    lo, hi = STSB_RANGE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not lo <= value <= hi:  # also rejects nan and inf
        raise ValueError(f"{file}:{n}: field {field!r}: expected a number from {lo:g} to {hi:g}, "
                         f"got {_short(raw)}")
    return value
