"""Reproductions as checks: `python -m llm_jax reproduce NAME` runs a study and says pass/fail.

A study is declared in experiments/NAME/study.py with the dataclasses below (see study.py and
experiments/ptb_baselines/study.py for an example); `main(args)` is the command.
"""

from llm_jax.reproduce.cli import main
from llm_jax.reproduce.study import (
    ConfigRun,
    Metric,
    Published,
    Row,
    ScriptRun,
    Study,
    Tolerance,
    at_least,
    at_most,
    within,
)

__all__ = ["ConfigRun", "Metric", "Published", "Row", "ScriptRun", "Study", "Tolerance", "at_least",
           "at_most", "main", "within"]
