"""Dataset statistics: per-feature moments and quantiles, return/length stats.

Per-feature statistics reduce over every axis but the last one of the feature (a vector keeps one
number per dimension, an H x W x C image one per channel), which is what normalisers need.
Episode-level statistics use polars over the episode table.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Exact quantiles over millions of rows cost more than the rest of a conversion; above this many
# rows they are taken on an evenly spaced subsample (moments and extremes stay exact).
QUANTILE_SAMPLE_ROWS = 200_000


def _as_2d(array: np.ndarray) -> np.ndarray:
    """(N, *shape) -> (M, C): rows to reduce over, C = last feature axis (1 for scalars)."""
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array.reshape(-1, array.shape[-1])


def feature_stats(array: np.ndarray) -> dict[str, Any]:
    """Mean, std, min, max and quantiles of one per-step feature (lists, one entry per channel)."""
    values = _as_2d(array)
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    stats: dict[str, Any] = {"count": int(array.shape[0])}
    if values.shape[0] == 0:
        return stats
    # Accumulate in float64 so float16/float32 sums of millions of rows stay accurate.
    mean = values.mean(axis=0, dtype=np.float64)
    stats["mean"] = mean.tolist()
    stats["std"] = values.std(axis=0, dtype=np.float64).tolist()
    stats["min"] = values.min(axis=0).astype(np.float64).tolist()
    stats["max"] = values.max(axis=0).astype(np.float64).tolist()
    rows = values.shape[0]
    sample = values[:: max(1, rows // QUANTILE_SAMPLE_ROWS)] if rows > QUANTILE_SAMPLE_ROWS else values
    qs = np.quantile(sample.astype(np.float64, copy=False), QUANTILES, axis=0)
    stats["quantiles"] = {f"q{int(q * 100):02d}": qs[i].tolist() for i, q in enumerate(QUANTILES)}
    stats["quantiles_exact"] = sample is values
    return stats


def rollout_stats(lengths: np.ndarray, returns: np.ndarray | None) -> dict[str, float]:
    """The keys of imitation's `rollout_stats`: n_traj, return_{min,mean,std,max}, len_{...}."""
    out: dict[str, float] = {"n_traj": int(len(lengths))}
    series = {"len": np.asarray(lengths, dtype=np.float64)}
    if returns is not None:
        series["return"] = np.asarray(returns, dtype=np.float64)
    for name, values in series.items():
        if len(values) == 0:
            continue
        out[f"{name}_min"] = float(values.min())
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_std"] = float(values.std())
        out[f"{name}_max"] = float(values.max())
    return out


def dataset_stats(features: Mapping[str, np.ndarray], lengths: np.ndarray, returns: np.ndarray | None) -> dict[str, Any]:
    """Everything `meta/stats.json` holds."""
    return {
        "episodes": rollout_stats(lengths, returns),
        "features": {name: feature_stats(array) for name, array in features.items()},
    }
