"""A sweep's summary: per configuration the normalised score over seeds (mean, IQM and the 95%
bootstrap interval of the IQM, rliable's method), env steps and wall time, a search's best
configuration; written as summary.json, summary.md and the plots of `algos.sweep.plots`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from algos.sweep.plan import Search, Sweep
from algos.sweep.plots import plot_curves, plot_scores
from algos.sweep.run_files import is_finished, read_eval, read_metrics
from ildata.fsutil import atomic_output

BOOTSTRAP_RESAMPLES = 50_000  # rliable's default number of bootstrap repetitions


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (rliable's aggregate, scipy's trim_mean)."""
    from scipy import stats

    return np.asarray(stats.trim_mean(values, 0.25, axis=axis))


def iqm_interval(values: np.ndarray, *, level: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the IQM over seeds.

    This is rliable's method (Agarwal et al. 2021, `rly.get_interval_estimates` with its default
    `method="percentile"`): resample the seeds with replacement, take the IQM of each resample,
    and report the 2.5 and 97.5 percentiles. None with fewer than two seeds.
    """
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,),
        iqm,
        vectorized=True,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def summarize(sweep: Sweep) -> dict[str, Any]:
    """Per configuration, from the finished run folders on disk (earlier invocations included)."""
    configs = []
    for label in sweep.labels():
        specs = [s for s in sweep.runs if s.label == label]
        finished = [s for s in specs if is_finished(s.run_dir)]
        scores, steps, walls = [], [], []
        for spec in finished:
            report = read_eval(spec.run_dir)
            score = report.get("normalized_score")
            if isinstance(score, (int, float)):
                scores.append(float(score))
            wall = report.get("train_seconds")
            walls.append(float(wall) if isinstance(wall, (int, float)) else math.nan)
            env_steps = read_metrics(spec.run_dir).get("env_steps")
            steps.append(float(np.nanmax(env_steps)) if env_steps is not None and np.isfinite(env_steps).any() else math.nan)
        values = np.asarray(scores)
        interval = iqm_interval(values)
        configs.append(
            {
                "config": label,
                "assignment": dict(specs[0].assignment),
                "seeds": [s.seed for s in finished],
                "unfinished_seeds": [s.seed for s in specs if s not in finished],
                "scores": scores,
                "score_mean": float(values.mean()) if len(values) else None,
                "score_iqm": float(iqm(values)) if len(values) else None,
                "score_ci95": list(interval) if interval is not None else None,
                "env_steps": _mean(steps),
                "wall_s": _mean(walls),
            }
        )
    summary: dict[str, Any] = {"sweep": sweep.record(), "configs": configs}
    if sweep.search is not None:
        summary["search"] = _rank(sweep, configs, sweep.search)
    return summary


def run_metric(run_dir: Path, metric: str) -> float | None:
    """A finished run's value of `metric`: eval.json's number, else metrics.csv's last finite value."""
    value = read_eval(run_dir).get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    column = read_metrics(run_dir).get(metric)
    if column is None or not np.isfinite(column).any():
        return None
    return float(column[np.isfinite(column)][-1])


def _rank(sweep: Sweep, configs: list[dict[str, Any]], search: Search) -> dict[str, Any]:
    """Each configuration's objective (the mean over its finished seeds of the search's metric)
    and the best one; a configuration without the metric is not ranked."""
    for c in configs:
        values = [run_metric(s.run_dir, search.metric) for s in sweep.runs if s.label == c["config"] and s.seed in c["seeds"]]
        c["objective"] = _mean([v for v in values if v is not None])
    ranked = [c for c in configs if c["objective"] is not None]
    best = (max if search.mode == "max" else min)(ranked, key=lambda c: c["objective"]) if ranked else None
    for c in configs:
        c["best"] = c is best
    return {
        **search.record(),
        "best": best["config"] if best else None,
        "best_assignment": best["assignment"] if best else None,
        "best_objective": best["objective"] if best else None,
    }


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_columns(summary: Mapping[str, Any]) -> list[str]:
    """COLUMNS, and for a search ranked by another metric than the normalised score, its mean."""
    search = summary.get("search")
    if search and search["metric"] != "normalized_score":
        return [*COLUMNS, f"{search['metric']} mean"]
    return list(COLUMNS)


def summary_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """The table's cells: config (`(best)` after a search's best), seeds, mean, IQM, 95% CI, env
    steps, wall s (and the search's metric, see `summary_columns`)."""
    extra = len(summary_columns(summary)) > len(COLUMNS)
    rows = []
    for c in summary["configs"]:
        ci = c["score_ci95"]
        seeds = f"{len(c['seeds'])}/{len(c['seeds']) + len(c['unfinished_seeds'])}"
        row = [
            c["config"] + (" (best)" if c.get("best") else ""),
            seeds,
            _fmt(c["score_mean"]),
            _fmt(c["score_iqm"]),
            f"{ci[0]:.3f} - {ci[1]:.3f}" if ci else "-",
            _fmt(c["env_steps"], ".0f"),
            _fmt(c["wall_s"], ".1f"),
        ]
        rows.append([*row, _fmt(c.get("objective"), ".4g")] if extra else row)
    return rows


COLUMNS = ["config", "seeds", "score mean", "score IQM", "IQM 95% CI", "env steps", "wall s"]


def summary_markdown(summary: Mapping[str, Any]) -> str:
    record = summary["sweep"]
    search = summary.get("search")
    columns = summary_columns(summary)
    varied = (
        f"search {record['search']['space']} ({record['search']['samples']} samples, seed {record['search']['seed']})"
        if search
        else f"grid {record['grid'] or '{}'}"
    )
    lines = [
        f"# Sweep of {record['recipe']}",
        "",
        f"seeds {record['seeds']}, {varied}, --set {record['set'] or '[]'}. "
        "Normalised score (0 random, 1 expert) over seeds: mean, interquartile mean and the 95% "
        "percentile-bootstrap interval of the IQM (rliable's method); env steps and wall time (train "
        "seconds) are means over seeds.",
        "",
    ]
    if search:
        lines += [search_line(search), ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(summary)]
    failed = summary.get("failed_runs") or []
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- {f['config']} seed {f['seed']}: {f['error']}" for f in failed]
    return "\n".join(lines) + "\n"


def search_line(search: Mapping[str, Any]) -> str:
    """`best (highest mean normalized_score over seeds): <config> = 0.912`."""
    how = f"{'highest' if search['mode'] == 'max' else 'lowest'} mean {search['metric']} over seeds"
    if search["best"] is None:
        return f"best ({how}): none (no finished run reports {search['metric']})"
    return f"best ({how}): {search['best']} = {search['best_objective']:.4g}"


def write_summary(sweep: Sweep, summary: Mapping[str, Any]) -> None:
    """summary.json, summary.md, scores.png and curves.png in SWEEP_DIR, each written atomically."""
    out = sweep.out
    with atomic_output(out / "summary.json", overwrite=True, folder=False) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    with atomic_output(out / "summary.md", overwrite=True, folder=False) as tmp:
        tmp.write_text(summary_markdown(summary))
    plot_scores(summary, out / "scores.png")
    plot_curves(sweep, out / "curves.png")
