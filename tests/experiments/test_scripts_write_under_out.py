"""Experiment scripts write under their --out by default, never into a tracked file (DESIGN.md).

Every experiments/**/*.py that writes a file (found by reading its source) must take --out, and
that default must be neither a tracked file nor a directory holding any. Each script's own
argument parser is read by running its main() up to parse_args (stopped there: nothing trains);
tracked copies of published results are written only with an explicit flag (--update_results,
--update_readme), off by default.
"""

import argparse
import ast
import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Experiment definitions read by other commands (the `reproduce` and `sweep` commands), not
# scripts with a command line of their own.
NOT_SCRIPTS = {"study.py", "sweep.py"}
WRITE_ATTRS = {"write_text", "write_bytes", "savefig", "savez", "to_csv", "dump"}


def _scripts():
    out = []
    for root, _, files in os.walk(REPO / "experiments"):
        out += [os.path.relpath(os.path.join(root, f), REPO) for f in files
                if f.endswith(".py") and f not in NOT_SCRIPTS]
    return sorted(out)


def _calls(path):
    return [n for n in ast.walk(ast.parse((REPO / path).read_text())) if isinstance(n, ast.Call)]


def _writes_files(path) -> bool:
    """Whether the source opens a file for writing or calls a writer (json.dump, write_text...)."""
    for node in _calls(path):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in WRITE_ATTRS:
            return True
        if isinstance(f, ast.Name) and f.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax"):
                return True
    return False


def _has_out_flag(path) -> bool:
    return any(isinstance(n.func, ast.Attribute) and n.func.attr == "add_argument" and n.args
               and isinstance(n.args[0], ast.Constant) and n.args[0].value == "--out"
               for n in _calls(path))


WRITERS = [s for s in _scripts() if _writes_files(s)]


def test_the_known_writers_are_found():
    for path in ("experiments/glue/report.py", "experiments/ptb_baselines/ngram_table.py",
                 "experiments/ptb_baselines/bench_nltk.py", "experiments/word2vec/compare.py",
                 "experiments/shakespeare_char/bench/bench_train.py"):
        assert path in WRITERS


class _Parsed(Exception):
    pass


def _parse_defaults(path, monkeypatch):
    """The namespace the script's parser gives with only its required arguments (dummies)."""
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        argv = []
        for a in self._actions:
            if a.required:
                argv += [a.option_strings[0], "x"] if a.option_strings else ["x"]
        raise _Parsed(original(self, argv))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(sys, "path", [str((REPO / path).parent), *sys.path])
    monkeypatch.setattr(sys, "argv", [str(REPO / path)])
    name = "script_" + path.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, "main"), f"{path} writes files but has no main() with an argparse --out"
    with pytest.raises(_Parsed) as e:
        module.main()
    return e.value.args[0]


def _tracked_under(path) -> list[str]:
    proc = subprocess.run(["git", "ls-files", "--", path], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return proc.stdout.split()


@pytest.fixture(scope="module")
def git_checkout():
    if subprocess.run(["git", "rev-parse"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("not a git checkout: no tracked files to compare with")


@pytest.mark.parametrize("path", WRITERS)
def test_default_output_is_not_tracked(path, monkeypatch, git_checkout):
    # Checked in the source first: main() of a script without --out would run for real.
    assert _has_out_flag(path), f"{path} writes files but has no --out flag"
    monkeypatch.chdir(REPO)  # relative defaults (runs/...) resolve against the repository
    if "\nimport torch" in (REPO / path).read_text() and importlib.util.find_spec("torch") is None:
        pytest.skip(f"{path} imports torch, which only `make install-bench` installs")
    args = _parse_defaults(path, monkeypatch)
    for flag in ("update_results", "update_readme"):
        assert not getattr(args, flag, False), f"{path}: --{flag} must be off by default"
    if args.out is None:  # prints only unless --out is given
        return
    out = os.path.abspath(args.out)
    if os.path.commonpath([out, str(REPO)]) != str(REPO):
        return  # outside the repository: nothing tracked there
    rel = os.path.relpath(out, REPO)
    assert not _tracked_under(rel), f"{path}: default --out={args.out} is (or holds) tracked files"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", rel], cwd=REPO)
    assert ignored.returncode == 0, f"{path}: default --out={args.out} is not an ignored path"
