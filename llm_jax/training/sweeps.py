"""Sweeps: lists of config overrides, one workdir per run, one table and plot of the results.

A sweep file defines `get_sweep()` returning a list of {"dotted.field": value} dicts, built with
`grid`, `zip_` or `random_search` below.
"""

import csv
import importlib.util
import itertools
import json
import os
import random
import re

from llm_jax.training.metrics import read_metrics


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
    return runs


def run_name(overrides: dict) -> str:
    text = ",".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items()) or "base"
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def apply_overrides(config, overrides: dict):
    config = config.copy_and_resolve_references()
    for key, value in overrides.items():
        try:
            config.update_from_flattened_dict({key: value})
        except (KeyError, AttributeError) as e:
            raise KeyError(f"sweep override {key!r}: unknown config field ({e})") from None
    return config


def run_sweep(config, sweep_path, workdir, train_fn) -> list[dict]:
    """Runs every override set (skipping finished runs) and writes results.{csv,md,png}."""
    runs = load_sweep(sweep_path)
    rows = []
    for i, overrides in enumerate(runs):
        run_dir = os.path.join(workdir, run_name(overrides))
        cfg = apply_overrides(config, overrides)
        summary_path = os.path.join(run_dir, "summary.json")
        print(f"[sweep {i + 1}/{len(runs)}] {run_dir}")
        summary = None
        if os.path.exists(summary_path):
            with open(summary_path) as f:
                summary = json.load(f)
            if summary.get("step") != cfg.train.steps:
                summary = None
        if summary is None:
            summary = train_fn(cfg, run_dir)
        rows.append({"run": run_name(overrides), **overrides,
                     **{k: v for k, v in summary.items() if k.startswith("eval/") or k in
                        ("train/loss", "step", "wall_time_sec")}})
    write_results(rows, workdir, [os.path.join(workdir, r["run"]) for r in rows])
    return rows


def write_results(rows, workdir, run_dirs):
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot_curves(run_dirs, os.path.join(workdir, "results.png"))
    print("\n".join(lines))


def plot_curves(run_dirs, path, key="eval/loss"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for d in run_dirs:
        pts = [(r["step"], r[key]) for r in read_metrics(os.path.join(d, "metrics.jsonl"))
               if isinstance(r.get(key), float)]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=os.path.basename(d))
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
