"""Power laws of final loss in non-embedding parameters, and of loss in compute, over a sweep.

  python experiments/scaling/fit.py --sweep_dir=runs/scaling --out=runs/scaling

Reads every finished run under --sweep_dir (config.json and summary.json; metrics.jsonl for the
learning curves) and writes scaling.json, scaling.md and scaling.png under --out.

  N  non-embedding parameters, counted exactly from the config: every block's weights, biases
     and norms and the final norm; not the token embedding, the position table or an untied
     output head (Kaplan et al. 2020, section 2.1). N + those tables must equal the run's own
     parameter count (summary.json "params"), else the script stops: a model shape it does not
     know.
  D  training tokens: train.steps * train.batch_size * data.seq_len.
  C  6 N D FLOPs, Kaplan et al.'s estimate (forward + backward, no attention or embedding
     terms); also in PF-days (8.64e19 FLOPs).

Fits, by least squares on log-log axes:
  L(N) = (N_c / N)^alpha_N   over the runs' final eval/loss (the whole validation split).
  L(C) = (C_c / C)^alpha_C   over the compute frontier of the learning curves: each periodic
     eval (its first train.eval_batches batches, the same ones in every run) at C = 6 N x
     tokens so far, keeping the points no cheaper point beats. With one D for all runs, the
     final points alone would give C proportional to N and so alpha_C = alpha_N by construction.
"""

import argparse
import json
import math
import os
import pathlib

import numpy as np

PF_DAY = 8.64e19  # FLOPs: 1e15 FLOP/s for a day
KAPLAN = {"alpha_N": 0.076, "N_c": 8.8e13,  # eq. 1.1 / Table 5: WebText2 BPE tokens, nats
          "source": "Kaplan et al. 2020, Scaling Laws for Neural Language Models, eq. 1.1"}
DEFAULT_DIR = os.path.join("runs", "scaling")


def non_embedding_params(model: dict) -> int:
    """Parameters of a GPT's blocks and final norm, from its `model` config section."""
    if model.get("name", "gpt") != "gpt":
        raise ValueError(f"model.name={model.get('name')!r}: fit.py counts GPT parameters only")
    d, layers, heads = model["embed_dim"], model["num_layers"], model["num_heads"]
    inner = heads * (model.get("head_dim") or d // heads)  # all heads together
    mlp = model.get("mlp_dim") or 4 * d
    bias = bool(model.get("use_bias", True))
    norm = d * (2 if bias else 1)  # LayerNorm: scale (and bias)
    attention = 4 * d * inner + (3 * inner + d if bias else 0)  # qkv and output projection
    block = attention + 2 * d * mlp + (mlp + d if bias else 0) + 2 * norm
    final_norm = norm if model.get("variant", "gpt2") == "gpt2" else 0
    return layers * block + final_norm


def embedding_params(model: dict) -> int:
    """Token table, position table and (untied) output head."""
    d, vocab = model["embed_dim"], model["vocab_size"]
    return vocab * d + model["max_len"] * d + (0 if model.get("tie_embeddings", True) else d * vocab)


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: unreadable ({e})") from None


def _curve(run_dir, final_step):
    """(step, eval/loss) of the periodic evals in metrics.jsonl, not the final whole-split one."""
    path, pts = run_dir / "metrics.jsonl", []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a killed run
                continue
            loss = row.get("eval/loss")
            if isinstance(loss, (int, float)) and math.isfinite(loss) and 0 < row.get("step", 0) < final_step:
                pts.append((row["step"], float(loss)))
    return sorted(dict(pts).items())  # a resumed run may have logged a step twice


def load_runs(sweep_dir) -> tuple[list[dict], list[str]]:
    """(one row per finished run, sorted by N; a note for each run directory left out)."""
    root = pathlib.Path(sweep_dir)
    if not root.is_dir():
        raise SystemExit(f"--sweep_dir={sweep_dir}: not a directory")
    rows, skipped = [], []
    for run_dir in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
        summary_path, config_path = run_dir / "summary.json", run_dir / "config.json"
        cfg = _read_json(config_path)
        try:
            steps = cfg["train"]["steps"]
        except (KeyError, TypeError):
            raise SystemExit(f"{config_path}: no train.steps, not a training run's config") from None
        if not summary_path.is_file():
            skipped.append(f"{run_dir.name}: no summary.json (not finished)")
            continue
        if summary_path.stat().st_mtime_ns < config_path.stat().st_mtime_ns:
            skipped.append(f"{run_dir.name}: config.json is newer than summary.json (a rerun)")
            continue
        summary = _read_json(summary_path)
        loss = summary.get("eval/loss")
        if summary.get("step") != steps or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            skipped.append(f"{run_dir.name}: summary.json has step {summary.get('step')} of "
                           f"{steps}, eval/loss {loss}")
            continue
        try:
            model = cfg["model"]
            n, emb = non_embedding_params(model), embedding_params(model)
            per_step = cfg["train"]["batch_size"] * cfg["data"]["seq_len"]
        except KeyError as e:
            raise SystemExit(f"{config_path}: no field {e}") from None
        except ValueError as e:
            raise SystemExit(f"{config_path}: {e}") from None
        if "params" in summary and n + emb != summary["params"]:
            raise SystemExit(f"{run_dir}: {n:,} non-embedding + {emb:,} embedding parameters "
                             f"counted from config.json, but summary.json has {summary['params']:,}:"
                             " fit.py does not know this model's shape")
        d = steps * per_step
        rows.append({
            "run": run_dir.name, "layers": model["num_layers"], "width": model["embed_dim"],
            "heads": model["num_heads"], "N": n,
            "N_12Ld2": 12 * model["num_layers"] * model["embed_dim"] ** 2,
            "embedding_params": emb, "D": d, "C": 6.0 * n * d, "C_pf_days": 6.0 * n * d / PF_DAY,
            "lr": cfg["optimizer"]["lr"], "eval_loss": float(loss),
            "eval_bits_per_token": float(loss) / math.log(2),
            "wall_time_sec": summary.get("wall_time_sec"), "steps": steps,
            "corpus": cfg["data"]["corpus"], "tokenizer": cfg["data"]["tokenizer"],
            "seq_len": cfg["data"]["seq_len"], "batch_size": cfg["train"]["batch_size"],
            "curve": [{"step": s, "tokens": s * per_step, "C": 6.0 * n * s * per_step, "eval_loss": v}
                      for s, v in _curve(run_dir, steps)],
        })
    if not rows:
        raise SystemExit(f"--sweep_dir={sweep_dir}: no finished runs (a run is a directory "
                         "holding config.json and a summary.json of its last step)"
                         + "".join(f"; left out {s}" for s in skipped))
    settings = {(r["D"], r["corpus"], r["tokenizer"], r["seq_len"]) for r in rows}
    if len(settings) > 1:
        raise SystemExit(f"--sweep_dir={sweep_dir}: runs of {len(settings)} different (tokens, "
                         f"corpus, tokenizer, seq_len) settings {sorted(settings)}: one fit needs "
                         "one setting; give each sweep its own --workdir")
    return sorted(rows, key=lambda r: r["N"]), skipped


def fit_power_law(x, y) -> dict:
    """y = (x_c / x)^alpha = a x^-alpha by least squares of log y on log x; r2 on the log scale.

    x_c is None where it does not fit in a float (alpha near 0); log_a = log(a) always does.
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        return {"alpha": None, "x_c": None, "log_a": None, "r2": None, "points": int(len(lx))}
    slope, intercept = (float(v) for v in np.polyfit(lx, ly, 1))
    resid = ly - (intercept + slope * lx)
    total = float(np.sum((ly - ly.mean()) ** 2))
    alpha = -slope
    try:
        x_c = math.exp(intercept / alpha) if alpha else None
    except OverflowError:
        x_c = None
    return {"alpha": alpha, "x_c": x_c, "log_a": intercept, "points": int(len(lx)),
            "r2": 1.0 - float(np.sum(resid**2)) / total if total else 1.0}


def compute_frontier(rows) -> list[tuple[float, float]]:
    """(C, loss) of the learning-curve points that no point of lower or equal C beats."""
    pts = sorted((p["C"], p["eval_loss"]) for r in rows for p in r["curve"])
    frontier, best = [], math.inf
    for c, loss in pts:
        if loss < best:
            frontier.append((c, loss))
            best = loss
    return frontier


def fits(rows) -> dict:
    by_n = fit_power_law([r["N"] for r in rows], [r["eval_loss"] for r in rows])
    frontier = compute_frontier(rows)
    by_c = fit_power_law(*zip(*frontier)) if frontier else fit_power_law([], [])
    return {"alpha_N": by_n["alpha"], "N_c": by_n["x_c"], "r2_N": by_n["r2"], "runs": by_n["points"],
            "log_a_N": by_n["log_a"], "alpha_C": by_c["alpha"], "C_c": by_c["x_c"],
            "C_c_pf_days": by_c["x_c"] / PF_DAY if by_c["x_c"] else None, "r2_C": by_c["r2"],
            "log_a_C": by_c["log_a"], "frontier": [{"C": c, "eval_loss": v} for c, v in frontier]}


def _g(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}g}"


def markdown(rows, fit) -> str:
    lines = ["| layers | width | heads | N (non-embedding) | D (tokens) | C = 6ND (FLOPs) | C (PF-days) "
             "| lr | final eval loss | bits/token | wall time (s) |", "|" + "---|" * 11]
    for r in rows:
        wall = "n/a" if r["wall_time_sec"] is None else f"{r['wall_time_sec']:.0f}"
        lines.append(f"| {r['layers']} | {r['width']} | {r['heads']} | {r['N']:,} | {r['D']:,} | "
                     f"{r['C']:.3g} | {r['C_pf_days']:.3g} | {r['lr']:.4g} | {r['eval_loss']:.4f} "
                     f"| {r['eval_bits_per_token']:.4f} | {wall} |")
    lines += ["", f"L(N) = (N_c / N)^alpha_N: alpha_N = {_g(fit['alpha_N'])}, N_c = {_g(fit['N_c'])}, "
              f"R^2 = {_g(fit['r2_N'])} ({fit['runs']} runs)",
              f"L(C) on the compute frontier: alpha_C = {_g(fit['alpha_C'])}, C_c = {_g(fit['C_c'])} "
              f"FLOPs ({_g(fit['C_c_pf_days'])} PF-days), R^2 = {_g(fit['r2_C'])} "
              f"({len(fit['frontier'])} points)",
              f"Reference (not a target): alpha_N = {KAPLAN['alpha_N']}, N_c = {KAPLAN['N_c']:.2g} "
              f"({KAPLAN['source']})"]
    return "\n".join(lines) + "\n"


def plot(rows, fit, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (ax_n, ax_c) = plt.subplots(1, 2, figsize=(11, 4.2))
    n = np.array([r["N"] for r in rows], float)
    ax_n.plot(n, [r["eval_loss"] for r in rows], "o", label="final eval loss")
    if fit["alpha_N"] is not None:
        grid = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
        ax_n.plot(grid, np.exp(fit["log_a_N"]) * grid ** -fit["alpha_N"], "--",
                  label=f"$(N_c/N)^{{\\alpha_N}}$, $\\alpha_N$ = {fit['alpha_N']:.3f}")
    ax_n.set(xscale="log", yscale="log", xlabel="non-embedding parameters N",
             ylabel="eval loss (nats/token)", title=f"loss vs size at D = {rows[0]['D']:,} tokens")
    for r in rows:
        label = f"{r['layers']}x{r['width']} ({r['N'] / 1e6:.3g}M)"
        if r["curve"]:
            line, = ax_c.plot([p["C"] / PF_DAY for p in r["curve"]],
                              [p["eval_loss"] for p in r["curve"]], "-", lw=1, alpha=0.7, label=label)
            color = line.get_color()
        else:
            color = None
        ax_c.plot(r["C_pf_days"], r["eval_loss"], "o", color=color,
                  label=None if r["curve"] else label)
    if fit["alpha_C"] is not None:
        c = np.array([p["C"] for p in fit["frontier"]])
        grid = np.geomspace(c.min(), c.max(), 50)
        ax_c.plot(grid / PF_DAY, np.exp(fit["log_a_C"]) * grid ** -fit["alpha_C"], "k--",
                  label=f"frontier fit, $\\alpha_C$ = {fit['alpha_C']:.3f}")
    ax_c.set(xscale="log", yscale="log", xlabel="compute C = 6ND (PF-days)",
             ylabel="eval loss (nats/token)",
             title="learning curves (lines), final whole-split loss (dots)")
    loss_ticks = FuncFormatter(lambda v, _: f"{v:.3g}")  # losses span less than a decade
    for ax in (ax_n, ax_c):
        ax.yaxis.set_major_formatter(loss_ticks)
        ax.yaxis.set_minor_formatter(loss_ticks)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep_dir", default=DEFAULT_DIR, help="the sweep's --workdir")
    p.add_argument("--out", default=DEFAULT_DIR, help="directory for scaling.{json,md,png}")
    args = p.parse_args(argv)
    rows, skipped = load_runs(args.sweep_dir)
    for note in skipped:
        print(f"left out {note}")
    fit = fits(rows)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"sweep_dir": str(args.sweep_dir), "fit": fit, "reference": KAPLAN, "rows": rows}
    (out / "scaling.json").write_text(json.dumps(report, indent=1))
    table = markdown(rows, fit)
    (out / "scaling.md").write_text(table)
    plot(rows, fit, out / "scaling.png")
    print(table + f"\nwrote {out / 'scaling.json'}, {out / 'scaling.md'}, {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
