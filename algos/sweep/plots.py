"""A sweep's two figures: scores.png (each configuration's score with its interval) and
curves.png (learning curves, mean over seeds with a min-max band); matplotlib, Agg backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from algos.sweep.plan import Sweep
from algos.sweep.run_files import is_finished, read_metrics
from ildata.fsutil import atomic_output

# Learning-curve metric: the first of these a configuration's runs log (returns before losses).
CURVE_METRICS = (
    "rollout_return_mean",
    "episode_return_mean",
    "rollout/ep_rew_mean",
    "return_mean",
    "expected_return",
    "loss",
)


def plot_scores(summary: Mapping[str, Any], path: Path) -> None:
    """One row per configuration: each seed's score, the IQM and its 95% interval, the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = summary["configs"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(configs) + 1.5))
    for y, c in enumerate(configs):
        if c["scores"]:
            ax.scatter(c["scores"], [y] * len(c["scores"]), color="grey", s=12, alpha=0.6, label="seeds" if y == 0 else None)
        if c["score_iqm"] is not None:
            ci = c["score_ci95"] or [c["score_iqm"], c["score_iqm"]]
            err = [[c["score_iqm"] - ci[0]], [ci[1] - c["score_iqm"]]]
            ax.errorbar([c["score_iqm"]], [y], xerr=err, fmt="o", color="C0", capsize=4, label="IQM, 95% CI" if y == 0 else None)
            ax.scatter([c["score_mean"]], [y], marker="x", color="C1", label="mean" if y == 0 else None)
    ax.set_yticks(range(len(configs)), [c["config"] + (" (best)" if c.get("best") else "") for c in configs], fontsize=8)
    ax.set_xlabel("normalised score (0 random, 1 expert)")
    ax.invert_yaxis()
    if configs:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_curves(sweep: Sweep, path: Path) -> None:
    """Learning curves from each run's metrics.csv: per configuration the mean over seeds, with a
    min-max band (runs interpolated onto the union of their steps, each within its own range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    shown: list[str] = []
    xlabel = "step"
    for i, label in enumerate(sweep.labels()):
        runs = [read_metrics(s.run_dir) for s in sweep.runs if s.label == label and is_finished(s.run_dir)]
        runs = [r for r in runs if r]
        metric = next((m for m in CURVE_METRICS if any(m in r and np.isfinite(r[m]).sum() >= 2 for r in runs)), None)
        if metric is None:
            continue
        online = all("env_steps" in r and np.isfinite(r["env_steps"]).all() for r in runs)
        xlabel = "env steps" if online else "step"
        series = []
        for r in runs:
            if metric not in r:
                continue
            x = r["env_steps"] if online else r["step"]
            keep = np.isfinite(r[metric])
            if keep.sum() >= 2:
                series.append((x[keep], r[metric][keep]))
        grid = np.unique(np.concatenate([x for x, _ in series]))
        ys = np.stack([np.where((grid >= x[0]) & (grid <= x[-1]), np.interp(grid, x, y), np.nan) for x, y in series])
        color = f"C{i % 10}"
        ax.plot(grid, np.nanmean(ys, axis=0), color=color, label=f"{label} ({len(series)} seeds)")
        ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=color, alpha=0.2)
        shown.append(metric)
    if shown:
        ax.set_ylabel(", ".join(dict.fromkeys(shown)))
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no learning curve in the finished runs' metrics.csv", ha="center", va="center")
    ax.set_xlabel(xlabel)
    ax.set_title("mean over seeds, band: min-max", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig: Any, path: Path) -> None:
    with atomic_output(path, overwrite=True, folder=False) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
