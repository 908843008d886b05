"""Sweeps: lists of config overrides, one workdir per run, one table and plot of the results.

A sweep file defines `get_sweep()` returning a list of {"dotted.field": value} dicts, built with
`grid`, `zip_` or `random_search` below.
"""

import csv
import hashlib
import importlib.util
import itertools
import json
import math
import os
import random
import re

from llm_jax.training.experiment import CONFIG_FILE, SUMMARY_FILE
from llm_jax.training.init_from import model_from_init_from

MAX_NAME_LEN = 96  # well under the 255 bytes a path component may have, and readable in `ls`
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]")


def grid(**axes) -> list[dict]:
    """Every combination: grid(**{"optimizer.lr": [1e-3, 3e-4], "model.num_layers": [2, 4]})."""
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def zip_(**axes) -> list[dict]:
    """Values taken together, position by position; all lists must have one length."""
    lengths = {len(v) for v in axes.values()}
    if len(lengths) > 1:
        raise ValueError(f"zip_ needs lists of one length, got {({k: len(v) for k, v in axes.items()})}")
    return [dict(zip(axes, values)) for values in zip(*axes.values())]


def random_search(n: int, seed: int = 0, **samplers) -> list[dict]:
    """n draws; each sampler is a list (uniform choice) or a callable taking a random.Random."""
    rng = random.Random(seed)
    draw = lambda s: s(rng) if callable(s) else rng.choice(list(s))  # noqa: E731
    return [{k: draw(s) for k, s in samplers.items()} for _ in range(n)]


def load_sweep(path) -> list[dict]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"--sweep={path}: file not found")
    spec = importlib.util.spec_from_file_location("llm_jax_sweep", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise ValueError(f"--sweep={path}: defines no get_sweep() function")
    runs = module.get_sweep()
    if not runs or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"--sweep={path}: get_sweep() must return a non-empty list of dicts")
    names = [run_name(r) for r in runs]
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"--sweep={path}: two runs have the same overrides ({dup})")
    return runs


def run_name(overrides: dict) -> str:
    """The run's workdir name: its full overrides, e.g. "optimizer.lr=0.001,model.num_layers=4".

    Characters a path should not hold become "_"; when that loses information (two override
    sets could then share a name) or the name would pass MAX_NAME_LEN, a readable prefix is
    kept and a hash of the exact overrides makes it unique.
    """
    text = ",".join(f"{k}={v}" for k, v in overrides.items()) or "base"
    safe = _UNSAFE.sub("_", text)
    if safe == text and len(safe) <= MAX_NAME_LEN:
        return safe
    exact = json.dumps(sorted((k, repr(v)) for k, v in overrides.items()))
    digest = hashlib.sha1(exact.encode()).hexdigest()[:10]
    return f"{safe[:MAX_NAME_LEN - len(digest) - 1].rstrip('_,.=')}-{digest}"


def apply_overrides(config, overrides: dict):
    config = config.copy_and_resolve_references()
    for key, value in overrides.items():
        try:
            config.update_from_flattened_dict({key: value})
        except (KeyError, AttributeError) as e:
            raise KeyError(f"sweep override {key!r}: unknown config field ({e})") from None
    return config


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


# Fields a run fills in itself when the config leaves them 0 (the tokenizer's vocabulary;
# word2vec's output rows). Listed, not guessed from "0 means unset": a base config that changed
# warmup_steps from 0 to 100 must not pass for the same run. A field missing here shows up as
# a rerun whose printed reason names it; never as a stale result.
FILLED_WHEN_ZERO = ("model.vocab_size", "model.output_rows")


def _filled_at_run_time(key, wanted, stored_cfg) -> bool:
    if key in FILLED_WHEN_ZERO and wanted == 0:
        return True
    # an epoch-based run derives train.steps from train.epochs and the data
    return key == "train.steps" and (stored_cfg.get("train.epochs") or 0) > 0


def _same_path(a, b) -> bool:
    """Two spellings of one existing file or directory (relative and absolute, or through a
    symlink), as a run's init_from given either way is the same run."""
    if not (isinstance(a, str) and isinstance(b, str) and a and b):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def unfinished_reason(config, run_dir) -> str | None:
    """Why `run_dir` does not hold a finished run of `config`, or None if it does.

    Finished means every loop's last act, summary.json, is there; and config.json, which the
    run writes when it starts, is this config: any field differing (an override, or the base
    config the sweep was given) makes it another run, except fields the run fills in itself
    and paths spelt another way to the same existing file or directory.
    summary.json must also be newer than config.json: a rerun that rewrote the config and then
    died leaves the summary of the run before it.
    """
    summary_path, config_path = os.path.join(run_dir, SUMMARY_FILE), os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isdir(run_dir):
        return "not run yet"
    for path in (summary_path, config_path):
        if not os.path.exists(path):
            return f"no {os.path.basename(path)}"
    if os.stat(summary_path).st_mtime_ns < os.stat(config_path).st_mtime_ns:
        return "config.json was rewritten after summary.json (an unfinished rerun)"
    try:
        with open(config_path) as f:
            stored = _flatten(json.load(f))
        with open(summary_path) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        return f"unreadable {e}"
    wanted = _flatten(json.loads(config.to_json_best_effort(sort_keys=True)))
    for key in sorted(set(wanted) | set(stored)):
        if key not in stored or key not in wanted:
            return f"config.json {'lacks' if key not in stored else 'has an unknown field'} {key}"
        if (stored[key] != wanted[key] and not _filled_at_run_time(key, wanted[key], stored)
                and not _same_path(stored[key], wanted[key])):
            return f"config.json has {key}={stored[key]!r}, this sweep wants {wanted[key]!r}"
    if not isinstance(summary, dict):
        return "summary.json is not a dict"
    if "step" in summary and summary["step"] != stored.get("train.steps", summary["step"]):
        return f"summary.json is of step {summary['step']}, not train.steps={stored['train.steps']}"
    return None


def final_metrics(summary: dict) -> dict:
    """Every numeric scalar of a summary (train/*, eval/*, test/*, step, wall_time_sec, ...)."""
    return {k: v for k, v in summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_sweep(config, sweep_path, workdir, train_fn) -> list[dict]:
    """Runs every override set (skipping finished runs) and writes results.{csv,md,png}."""
    runs = load_sweep(sweep_path)
    configs = [apply_overrides(config, overrides) for overrides in runs]  # typos fail first
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for i, (overrides, cfg) in enumerate(zip(runs, configs)):
        name = run_name(overrides)
        run_dir = os.path.join(workdir, name)
        # config.json holds the model init_from_model resolved: compare with that
        reason = unfinished_reason(model_from_init_from(cfg), run_dir)
        if reason is None:
            print(f"[sweep {i + 1}/{len(runs)}] {run_dir}: finished, not run again", flush=True)
            with open(os.path.join(run_dir, SUMMARY_FILE)) as f:
                summary = json.load(f)
        else:
            print(f"[sweep {i + 1}/{len(runs)}] {run_dir} ({reason})", flush=True)
            summary = train_fn(cfg, run_dir)
        rows.append({"run": name, **overrides, **final_metrics(summary)})
    leading = ["run", *dict.fromkeys(k for overrides in runs for k in overrides)]
    write_results(rows, workdir, [os.path.join(workdir, r["run"]) for r in rows], leading)
    return rows


def _columns(rows, leading):
    """`leading` (the run and its overrides), then eval/*, test/*, train/*, then the rest."""
    rest = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in leading]
    order = ("eval/", "test/", "train/")
    rank = lambda k: next((i for i, p in enumerate(order) if k.startswith(p)), len(order))  # noqa: E731
    return [*leading, *sorted(rest, key=rank)]


def write_results(rows, workdir, run_dirs, leading=("run",)):
    columns = _columns(rows, list(leading))
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_curves(run_dirs, os.path.join(workdir, "results.png"))


def _curve(run_dir, key):
    """(step, value) of `key` in metrics.jsonl; a line cut short by a killed run is skipped."""
    pts, path = [], os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                v = row.get(key)
                if isinstance(v, (int, float)) and math.isfinite(v) and "step" in row:
                    pts.append((row["step"], v))
    return pts


def plot_curves(run_dirs, path, key="eval/loss") -> str | None:
    """Plots `key` against step for every run that logged it at two or more steps.

    Runs that did not (an n-gram run scores once, word2vec logs no eval/loss) are left out,
    and said so; with none left no plot is written (and an old one is removed, as it would
    show other runs). Returns the path written, or None.
    """
    curves = {d: _curve(d, key) for d in run_dirs}
    missing = [os.path.basename(d) for d, pts in curves.items() if len(pts) < 2]
    if len(missing) == len(curves):
        print(f"{os.path.basename(path)}: not written, no run logged {key} at two or more steps "
              "(n-gram and word2vec runs log none)")
        if os.path.exists(path):
            os.remove(path)
        return None
    if missing:
        print(f"{os.path.basename(path)}: left out, no {key} curve: {', '.join(missing)}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for d, pts in curves.items():
        if len(pts) >= 2:
            ax.plot(*zip(*pts), marker="o", ms=3, label=os.path.basename(d))
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
