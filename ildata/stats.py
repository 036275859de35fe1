"""Dataset statistics: per-feature moments and quantiles, return/length stats.

Per-feature statistics reduce over every axis but the last one of the feature (a vector keeps one
number per dimension, an H x W x C image one per channel), which is what normalisers need.
Episode-level statistics use polars over the episode table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Exact quantiles over millions of rows cost more than the rest of a conversion; above this many
# rows they are taken on an evenly spaced subsample (moments and extremes stay exact).
QUANTILE_SAMPLE_ROWS = 200_000
# Moments of features larger than this many values (image datasets) are taken on evenly spaced
# steps, as LeRobot does for image stats: exact moments would dominate the conversion time.
MOMENT_SAMPLE_VALUES = 48_000_000


def _as_2d(array: np.ndarray) -> np.ndarray:
    """(N, *shape) -> (M, C): rows to reduce over, C = last feature axis (1 for scalars)."""
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array.reshape(-1, array.shape[-1])


def _moment_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum, sum of squares, min and max per column in one pass over row chunks.

    Hand-rolled rather than `ndarray.std` or polars: both materialise a float64 copy of the
    whole feature (3.4 GB for 20k 84x84x3 images) and took 2-4x longer on 2M x 17 floats. Chunks
    are converted to float64 so float16/float32 sums of millions of rows stay accurate. Sums (not
    means) so that pieces of a feature (shards) combine exactly.
    """
    rows, cols = values.shape
    chunk = max(1, (1 << 20) // max(1, cols))
    total = np.zeros(cols)
    total_sq = np.zeros(cols)
    low = np.full(cols, np.inf)
    high = np.full(cols, -np.inf)
    for start in range(0, rows, chunk):
        block = values[start : start + chunk].astype(np.float64)
        total += block.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", block, block)
        np.minimum(low, block.min(axis=0), out=low)
        np.maximum(high, block.max(axis=0), out=high)
    return total, total_sq, low, high


class FeatureStats:
    """Statistics of one per-step feature fed piece by piece (shards, in order), for a feature of
    `total_steps` steps of shape `step_shape` known in advance: the sampled steps and quantile
    rows are chosen by their position in the whole feature, so the result is the one-pass result
    (the sums differ only by float rounding where pieces split the summation blocks)."""

    def __init__(self, total_steps: int, step_shape: tuple[int, ...]):
        self.total_steps = total_steps
        size = total_steps * int(np.prod(step_shape, dtype=np.int64))
        # Moments of huge features on evenly spaced steps; quantiles on evenly spaced rows.
        self.step = -(-size // MOMENT_SAMPLE_VALUES) if size > MOMENT_SAMPLE_VALUES else 1
        self.sampled_steps = -(-total_steps // self.step)
        self.rows_per_step = int(np.prod(step_shape[:-1], dtype=np.int64)) if step_shape else 1
        rows = self.sampled_steps * self.rows_per_step
        self.rows = rows
        self.row_stride = max(1, rows // QUANTILE_SAMPLE_ROWS) if rows > QUANTILE_SAMPLE_ROWS else 1
        self.seen = 0
        self.sums: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.sample: list[np.ndarray] = []

    def add(self, piece: np.ndarray) -> None:
        """The next `len(piece)` steps of the feature."""
        first = -self.seen % self.step
        selected = piece[first :: self.step]
        row0 = (self.seen + first) // self.step * self.rows_per_step  # global row of selected[0]
        self.seen += len(piece)
        values = _as_2d(selected)
        if values.dtype == np.bool_:
            values = values.view(np.uint8)
        if values.shape[0] == 0:
            return
        sums = _moment_sums(values)
        if self.sums is None:
            self.sums = sums
        else:
            total, total_sq, low, high = self.sums
            self.sums = (total + sums[0], total_sq + sums[1], np.minimum(low, sums[2]), np.maximum(high, sums[3]))
        # a copy: a view would keep the whole piece (a shard's column) alive
        self.sample.append(values[-row0 % self.row_stride :: self.row_stride].copy())

    def result(self) -> dict[str, Any]:
        if self.seen != self.total_steps:
            raise ValueError(f"fed {self.seen} steps of {self.total_steps}")
        stats: dict[str, Any] = {"count": int(self.total_steps)}
        if self.step > 1:
            stats["sampled_steps"] = int(self.sampled_steps)
        if self.sums is None:
            return stats
        total, total_sq, low, high = self.sums
        mean = total / self.rows
        std = np.sqrt(np.maximum(total_sq / self.rows - mean**2, 0.0))
        stats.update(mean=mean.tolist(), std=std.tolist(), min=low.tolist(), max=high.tolist())
        # Column by column: the float64 copy and the partition of one column at a time, not of the
        # whole sample (up to 400k rows x every column).
        qs = np.empty((len(QUANTILES), len(total)))
        for column in range(len(total)):
            values = np.concatenate([piece[:, column] for piece in self.sample]).astype(np.float64, copy=False)
            qs[:, column] = np.quantile(values, QUANTILES)
        stats["quantiles"] = {f"q{int(q * 100):02d}": qs[i].tolist() for i, q in enumerate(QUANTILES)}
        stats["quantiles_exact"] = self.rows <= QUANTILE_SAMPLE_ROWS
        return stats


def feature_stats(array: np.ndarray | Sequence[np.ndarray]) -> dict[str, Any]:
    """Mean, std, min, max and quantiles of one per-step feature (lists, one entry per channel),
    given whole or as consecutive pieces (a multi-shard store's shards: never concatenated)."""
    pieces = [array] if isinstance(array, np.ndarray) else list(array)
    accumulator = FeatureStats(sum(len(p) for p in pieces), tuple(pieces[0].shape[1:]))
    for piece in pieces:
        accumulator.add(piece)
    return accumulator.result()


def rollout_stats(lengths: np.ndarray, returns: np.ndarray | None) -> dict[str, float]:
    """The keys of imitation's `rollout_stats`: n_traj, return_{min,mean,std,max}, len_{...}.

    The one place episode return/length statistics are computed (stores, `ildata collect`, the
    Hub card). std is the population std (ddof=0), as imitation's `rollout_stats` (np.std)."""
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


def dataset_stats(
    features: Mapping[str, np.ndarray | Sequence[np.ndarray]], lengths: np.ndarray, returns: np.ndarray | None
) -> dict[str, Any]:
    """Everything `meta/stats.json` holds (each feature whole or as consecutive pieces)."""
    return {
        "episodes": rollout_stats(lengths, returns),
        "features": {name: feature_stats(array) for name, array in features.items()},
    }
