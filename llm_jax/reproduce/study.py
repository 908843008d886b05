"""The study format: what an experiments/NAME/study.py declares, as plain frozen dataclasses.

A study is its runs (a config to train, or a script with its arguments) and its rows (one
measured number each, read from a run, checked against a reference with a tolerance). The
reference is a published constant with its source, or a number measured in the same study (a
peer such as gensim), so a row never compares numbers from two different machines or sessions
unless it says so. Nothing here runs anything; runner.py and report.py do.
"""

import dataclasses
import math
import string
from dataclasses import dataclass, field

DIRECTIONS = ("at_most", "at_least", "within")
RESERVED = ("out",)  # placeholders a script's arguments may use besides run names


@dataclass(frozen=True)
class Published:
    """A number from a paper (or a reference implementation's README), with where it is."""
    value: float
    paper: str
    table: str = ""
    row: str = ""

    @property
    def source(self) -> str:
        return ", ".join(p for p in (self.paper, self.table, self.row) if p)


@dataclass(frozen=True)
class Metric:
    """Where a measured number is: `key` of the run's summary.json, or of a JSON `file` it writes.

    A file may hold a list of records (at `records`, a top-level key, or the whole file): those
    matching every `where` field are read and their mean is taken (e.g. one record per seed);
    a string there is a shell-style pattern ("random init embeddings (*").
    `scale` converts units (100 turns a fraction into the points a tolerance is written in).
    """
    run: str
    key: str
    file: str = ""
    records: str = ""
    where: dict = field(default_factory=dict)
    scale: float = 1.0
    label: str = ""  # how the report names it when it is a reference ("gensim sg_neg")

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.where.items())
        text = f"run {self.run}: {self.file or 'summary.json'} {self.key}"
        return text + (f" where {where}" if where else "") + (f" x{self.scale:g}" if self.scale != 1 else "")


@dataclass(frozen=True)
class Tolerance:
    """measured vs reference: at_most ref + bound, at_least ref - bound, or within +-bound.

    The bound is `abs`, or `rel` times |reference| (0.02: 2%); exactly one of them is given.
    """
    direction: str
    abs: float | None = None
    rel: float | None = None

    def bound(self, reference: float) -> float:
        return self.abs if self.abs is not None else self.rel * abs(reference)

    def passes(self, measured: float, reference: float) -> bool:
        if not (math.isfinite(measured) and math.isfinite(reference)):
            return False
        b = self.bound(reference)
        if self.direction == "at_most":
            return measured <= reference + b
        if self.direction == "at_least":
            return measured >= reference - b
        return abs(measured - reference) <= b

    def describe(self, reference: float | None = None) -> str:
        amount = f"{self.rel * 100:g}%" if self.rel is not None else f"{self.abs:g}"
        zero = self.bound(1.0) == 0
        text = {"at_most": "<= reference" + ("" if zero else f" + {amount}"),
                "at_least": ">= reference" + ("" if zero else f" - {amount}"),
                "within": f"within {amount} of the reference"}[self.direction]
        if reference is None or not math.isfinite(reference):
            return text
        b = self.bound(reference)
        limits = {"at_most": f"<= {reference + b:.5g}", "at_least": f">= {reference - b:.5g}",
                  "within": f"{reference - b:.5g} to {reference + b:.5g}"}[self.direction]
        if zero and self.direction != "within":
            return limits
        return f"{text} ({limits})"


def at_most(abs=None, rel=None):  # noqa: A002  the field names read best at the call site
    return Tolerance("at_most", abs, rel)


def at_least(abs=None, rel=None):  # noqa: A002
    return Tolerance("at_least", abs, rel)


def within(abs=None, rel=None):  # noqa: A002
    return Tolerance("within", abs, rel)


@dataclass(frozen=True)
class Row:
    """One checked number. `gpu=True`: skipped, with the reason, on a machine without one."""
    name: str
    measured: Metric
    reference: Published | Metric
    tolerance: Tolerance
    gpu: bool = False
    note: str = ""

    @property
    def runs(self) -> tuple[str, ...]:
        refs = [self.reference.run] if isinstance(self.reference, Metric) else []
        return tuple(dict.fromkeys([self.measured.run, *refs]))


def placeholders(texts) -> tuple[str, ...]:
    """The run names "{NAME}" fields of `texts` refer to ("{{" is a literal brace)."""
    names = [f for t in texts for _, f, _, _ in string.Formatter().parse(t) if f]
    return tuple(n for n in dict.fromkeys(names) if n not in RESERVED)


@dataclass(frozen=True)
class ConfigRun:
    """`python -m llm_jax train --config=CONFIG --workdir=... --config.K=V` for each override.

    `config` is "path[:variant]", relative to the repository root (or absolute). A string
    override may hold "{NAME}", the directory of the earlier run NAME (a pre-trained workdir as
    init_from), which this run then depends on. Minutes are
    the expected time of this run alone on the project's 2-core CPU and on one GPU (None: not
    measured there, or not sensible to run there).
    """
    name: str
    config: str
    overrides: dict = field(default_factory=dict)
    cpu_minutes: float | None = None
    gpu_minutes: float | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        """The runs whose directories the overrides name ("{bert_mini}" as init_from)."""
        return placeholders(v for v in self.overrides.values() if isinstance(v, str))


@dataclass(frozen=True)
class ScriptRun:
    """`python ARGV...` from the repository root; finished once it exited 0 and wrote `outputs`.

    Arguments may hold "{out}" (this run's directory, where `outputs` are looked for) and
    "{NAME}" (the directory of the earlier run NAME, which this run then depends on).
    """
    name: str
    argv: tuple[str, ...]
    outputs: tuple[str, ...]
    cpu_minutes: float | None = None
    gpu_minutes: float | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        return placeholders(self.argv)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    runs: tuple[ConfigRun | ScriptRun, ...]
    rows: tuple[Row, ...]
    readme: str = ""      # the experiment's README, relative to the repository root
    time_note: str = ""   # where the expected times come from (measured, or an estimate)
    path: str = ""        # the study.py it came from; filled in when loaded

    def run(self, name):
        return next(r for r in self.runs if r.name == name)

    def needed_runs(self, rows) -> list:
        """The runs `rows` read, with every run those depend on, in declared order."""
        wanted, todo = set(), [n for row in rows for n in row.runs]
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo.extend(self.run(name).needs)
        return [r for r in self.runs if r.name in wanted]

    def minutes(self, rows, hardware: str) -> float | None:
        """Expected minutes of everything `rows` need on "cpu" or "gpu"; None if any is unknown."""
        times = [getattr(r, f"{hardware}_minutes") for r in self.needed_runs(rows)]
        return None if any(t is None for t in times) else sum(times)

    def with_path(self, path):
        return dataclasses.replace(self, path=path)


def validate(study: Study) -> None:
    """A declaration error as one ValueError naming the study file, the field and the value."""
    where = f"{study.path or 'study'} ({study.name})"
    if not study.name.isidentifier():
        raise ValueError(f"{where}: study name {study.name!r} must be a Python identifier")
    names = [r.name for r in study.runs]
    for kind, items in (("run", names), ("row", [r.name for r in study.rows])):
        dup = {n for n in items if items.count(n) > 1}
        if dup:
            raise ValueError(f"{where}: two {kind}s are named {sorted(dup)[0]!r}")
    for i, run in enumerate(study.runs):
        if run.name in RESERVED or not run.name.isidentifier():
            raise ValueError(f"{where}: run name {run.name!r} must be an identifier other than {RESERVED}")
        for need in run.needs:
            if need not in names[:i]:
                raise ValueError(f"{where}: run {run.name} uses {{{need}}}, which is no run declared "
                                 f"before it (earlier runs: {names[:i] or 'none'})")
        if isinstance(run, ScriptRun) and not run.outputs:
            raise ValueError(f"{where}: script run {run.name} declares no outputs, so it would never "
                             "count as finished")
    for row in study.rows:
        for metric in (row.measured, row.reference):
            if isinstance(metric, Metric) and metric.run not in names:
                raise ValueError(f"{where}: row {row.name} reads run {metric.run!r}, which the study "
                                 f"does not declare (runs: {names})")
        t = row.tolerance
        if t.direction not in DIRECTIONS or (t.abs is None) == (t.rel is None):
            raise ValueError(f"{where}: row {row.name}: tolerance {t} needs a direction in "
                             f"{DIRECTIONS} and exactly one of abs= or rel=")
    if not study.rows:
        raise ValueError(f"{where}: declares no rows")
