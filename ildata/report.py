"""`inspect` report: sizes, spaces, statistics, termination, horizon and validation problems.

Works on a store (per-feature statistics come from meta/stats.json) and straight on any source
`convert` reads, without writing anything. Episode-level numbers use polars; per-step checks are
vectorised numpy over the (memory-mapped) arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ildata.episode import flatten_obs
from ildata.horizon import verdict
from ildata.stats import feature_stats

# Beyond this many distinct values an integer action space is not shown as a histogram.
MAX_HISTOGRAM_BINS = 64


@dataclass
class _Input:
    """The arrays a report needs, whether they come from a store or a freshly read source."""

    path: Path
    format: str
    obs: dict[str, np.ndarray]  # per-step observations by feature name ("obs", "obs.key")
    acts: np.ndarray
    rews: np.ndarray | None
    episodes: pl.DataFrame  # length, return, terminated, truncated, termination_known
    observation_space: Any
    action_space: Any
    env_id: str | None
    feature_stats: dict[str, Any] | None  # precomputed (store) or None
    spaces_inferred: bool


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _obs_features(obs: Any) -> dict[str, np.ndarray]:
    return {("obs" if not k else f"obs.{k}"): v for k, v in flatten_obs(obs).items()}


def _from_store(path: Path) -> _Input:
    from ildata.store import STATS_FILE, load

    ds = load(path)
    tr = ds.transitions()
    stats_file = path / STATS_FILE
    precomputed = json.loads(stats_file.read_text())["features"] if stats_file.is_file() else None
    return _Input(
        path=path,
        format=f"ildata v{ds.info['format_version']} (from {ds.info['provenance'].get('source_format')})",
        obs=_obs_features(tr.obs),
        acts=tr.acts,
        rews=tr.rews,
        episodes=ds.episodes,
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        env_id=ds.env_id,
        feature_stats=precomputed,
        spaces_inferred=bool(ds.info.get("spaces_inferred")),
    )


def _from_source(path: str | Path, env_id: str | None) -> _Input:
    from ildata.conversion import read
    from ildata.spaces import infer_action_space, infer_obs_space
    from ildata.store import _split_obs

    source, path = read(path, env_id=env_id)
    batch = source.batch
    lengths = batch.lengths
    obs = {k: _split_obs(v, lengths)[0] for k, v in _obs_features(batch.obs).items()}
    returns = batch.returns()
    episodes = pl.DataFrame(
        {
            "length": lengths,
            "return": returns,
            "terminated": batch.terminated,
            "truncated": batch.truncated,
            "termination_known": batch.termination_known,
        }
    )
    return _Input(
        path=path,
        format=source.format,
        obs=obs,
        acts=batch.acts,
        rews=batch.rews,
        episodes=episodes,
        observation_space=source.observation_space or infer_obs_space(batch.obs),
        action_space=source.action_space or infer_action_space(batch.acts),
        env_id=source.env_id,
        feature_stats=None,
        spaces_inferred=source.observation_space is None or source.action_space is None,
    )


def _episode_stats(episodes: pl.DataFrame) -> dict[str, Any]:
    """imitation's rollout_stats keys, computed by polars."""
    has_returns = episodes["return"].null_count() < len(episodes)
    exprs = [pl.len().alias("n_traj")]
    columns = {"len": "length"} | ({"return": "return"} if has_returns else {})
    for prefix, column in columns.items():
        col = pl.col(column).cast(pl.Float64)
        exprs += [
            col.min().alias(f"{prefix}_min"),
            col.mean().alias(f"{prefix}_mean"),
            col.std(ddof=0).alias(f"{prefix}_std"),
            col.max().alias(f"{prefix}_max"),
        ]
    return episodes.select(exprs).row(0, named=True)


def _termination(episodes: pl.DataFrame) -> dict[str, int]:
    known = pl.col("termination_known")
    return episodes.select(
        (known & pl.col("terminated")).sum().alias("terminated"),
        (known & pl.col("truncated")).sum().alias("truncated"),
        (known & pl.col("terminated") & pl.col("truncated")).sum().alias("terminated_and_truncated"),
        (known & ~pl.col("terminated") & ~pl.col("truncated")).sum().alias("neither"),
        (~known).sum().alias("unknown"),
    ).row(0, named=True)


def _action_histogram(acts: np.ndarray, action_space: Any) -> dict[str, int] | None:
    if acts.ndim != 1 or not np.issubdtype(acts.dtype, np.integer):
        return None
    counts = pl.Series("acts", acts).value_counts(sort=False).sort("acts")
    if counts.height > MAX_HISTOGRAM_BINS:
        return None
    return {str(a): int(c) for a, c in counts.iter_rows()}


def _out_of_space(values: np.ndarray, space: Any) -> int:
    """Number of steps whose value lies outside a Discrete, MultiDiscrete or Box space."""
    from gymnasium import spaces

    rows = values.reshape(values.shape[0], -1)
    if isinstance(space, spaces.Discrete):
        bad = (values < space.start) | (values >= space.start + space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(space.start).reshape(1, -1)
        bad = ((rows < start) | (rows >= start + space.nvec.reshape(1, -1))).any(axis=1)
    elif isinstance(space, spaces.Box):
        low = space.low.reshape(1, -1)
        high = space.high.reshape(1, -1)
        bad = ((rows < low) | (rows > high)).any(axis=1)
    else:
        return 0
    return int(np.count_nonzero(bad))


def _non_finite(values: np.ndarray) -> int:
    if not np.issubdtype(values.dtype, np.floating):
        return 0
    rows = values.reshape(values.shape[0], -1)
    return int(np.count_nonzero(~np.isfinite(rows).all(axis=1)))


def _problems(data: _Input) -> list[str]:
    problems = []
    arrays = dict(data.obs) | {"acts": data.acts} | ({"rews": data.rews} if data.rews is not None else {})
    for name, values in arrays.items():
        bad = _non_finite(values)
        if bad:
            problems.append(f"{name}: {bad} steps contain NaN or Inf")
    if not data.spaces_inferred:
        bad = _out_of_space(data.acts, data.action_space)
        if bad:
            problems.append(f"acts: {bad} steps outside the action space {data.action_space}")
        if set(data.obs) == {"obs"}:
            bad = _out_of_space(data.obs["obs"], data.observation_space)
            if bad:
                problems.append(f"obs: {bad} steps outside the observation space")
    lengths = data.episodes["length"].to_numpy()
    if (lengths < 1).any():
        problems.append(f"{int((lengths < 1).sum())} episodes have no actions")
    return problems


def report(path: str | Path, *, env_id: str | None = None) -> dict[str, Any]:
    """Everything `ildata inspect` shows, as plain JSON-able data."""
    from ildata.store import is_store

    spec = path  # may be a `minari:NAMESPACE/NAME-vN` spec, resolved by the source reader
    path = Path(path)
    data = _from_store(path) if path.is_dir() and is_store(path) else _from_source(spec, env_id)
    path = data.path
    features = {name: {"dtype": str(v.dtype), "shape": list(v.shape[1:])} for name, v in data.obs.items()}
    features["acts"] = {"dtype": str(data.acts.dtype), "shape": list(data.acts.shape[1:])}
    if data.rews is not None:
        features["rews"] = {"dtype": str(data.rews.dtype), "shape": list(data.rews.shape[1:])}
    if data.feature_stats is not None:
        per_feature = data.feature_stats
    else:
        arrays = dict(data.obs) | {"acts": data.acts} | ({"rews": data.rews} if data.rews is not None else {})
        per_feature = {name: feature_stats(values) for name, values in arrays.items()}
    return {
        "path": str(path),
        "format": data.format,
        "env_id": data.env_id,
        "episodes": data.episodes.height,
        "transitions": int(data.acts.shape[0]),
        "observation_space": str(data.observation_space),
        "action_space": str(data.action_space),
        "spaces_inferred": data.spaces_inferred,
        "features": features,
        "disk_bytes": _disk_bytes(path),
        "rollout_stats": _episode_stats(data.episodes),
        "feature_stats": per_feature,
        "action_histogram": _action_histogram(data.acts, data.action_space),
        "termination": _termination(data.episodes),
        "horizon": verdict(data.episodes["length"].to_numpy()).to_dict(),
        "problems": _problems(data),
    }
