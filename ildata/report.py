"""`inspect` report: sizes, spaces, statistics, termination, horizon and validation problems.

Works on a store (through `ildata.load`; per-feature statistics come from meta/stats.json) and
straight on any source `convert` reads, without writing anything. Episode-level numbers and
per-step checks are vectorised numpy over the (memory-mapped) arrays: no polars import, which
alone cost more than the rest of `ildata inspect`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ildata.episode import DataError, flatten_obs
from ildata.horizon import verdict
from ildata.stats import feature_stats, rollout_stats

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
    lengths: np.ndarray  # per episode, as are the next four
    returns: np.ndarray | None
    terminated: np.ndarray
    truncated: np.ndarray
    termination_known: np.ndarray
    observation_space: dict[str, Any]  # spaces in their JSON layout (ildata.spaces): no gymnasium
    action_space: dict[str, Any]
    env_id: str | None
    feature_stats: dict[str, Any] | None  # precomputed (store) or None
    spaces_inferred: bool


def _disk_bytes(path: Path) -> int:
    """Bytes of the regular files at or under `path` (symlinks are not followed out of it)."""
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def _obs_features(obs: Any) -> dict[str, np.ndarray]:
    return {("obs" if not k else f"obs.{k}"): v for k, v in flatten_obs(obs).items()}


def _from_store(path: Path, env_id: str | None) -> _Input:
    """Through `ildata.load`, whose structural checks make a damaged store a DataError."""
    from ildata.store import load

    ds = load(path)
    try:
        tr = ds.transitions()
        stats = ds.stats()
        data = _Input(
            path=path,
            format=f"ildata v{ds.info['format_version']} (from {ds.info['provenance'].get('source_format')})",
            obs=_obs_features(tr.obs),
            acts=tr.acts,
            rews=tr.rews,
            lengths=ds.lengths,
            returns=ds.returns,
            terminated=ds.episode_column("terminated"),
            truncated=ds.episode_column("truncated"),
            termination_known=ds.episode_column("termination_known"),
            observation_space=ds.info["observation_space"],
            action_space=ds.info["action_space"],
            env_id=ds.env_id,
            feature_stats=stats.get("features"),
            spaces_inferred=bool(ds.info.get("spaces_inferred")),
        )
    except DataError:
        raise
    except Exception as exc:  # anything load's checks let through must still be one line
        raise DataError(f"damaged store ({type(exc).__name__}: {exc})") from None
    if env_id is not None:
        from ildata.conversion import check_env_fits

        check_env_fits(env_id, tr.obs, tr.acts, recorded=(ds.observation_space, ds.action_space))
        data.env_id = env_id
    return data


def _from_source(path: str | Path, env_id: str | None) -> _Input:
    from ildata.conversion import read
    from ildata.spaces import infer_action_space, infer_obs_space, space_to_dict
    from ildata.store import split_obs

    source, path = read(path, env_id=env_id)
    batch = source.batch
    lengths = batch.lengths
    return _Input(
        path=path,
        format=source.format,
        obs={k: split_obs(v, lengths)[0] for k, v in _obs_features(batch.obs).items()},
        acts=batch.acts,
        rews=batch.rews,
        lengths=lengths,
        returns=batch.returns(),
        terminated=batch.terminated,
        truncated=batch.truncated,
        termination_known=batch.termination_known,
        observation_space=space_to_dict(source.observation_space or infer_obs_space(batch.obs)),
        action_space=space_to_dict(source.action_space or infer_action_space(batch.acts)),
        env_id=source.env_id,
        feature_stats=None,
        spaces_inferred=source.observation_space is None or source.action_space is None,
    )


def _termination(data: _Input) -> dict[str, int]:
    known = data.termination_known.astype(bool)
    terminated = data.terminated.astype(bool)
    truncated = data.truncated.astype(bool)
    counts = {
        "terminated": known & terminated,
        "truncated": known & truncated,
        "terminated_and_truncated": known & terminated & truncated,
        "neither": known & ~terminated & ~truncated,
        "unknown": ~known,
    }
    return {name: int(np.count_nonzero(mask)) for name, mask in counts.items()}


def _action_histogram(acts: np.ndarray) -> dict[str, int] | None:
    if acts.ndim != 1 or not np.issubdtype(acts.dtype, np.integer):
        return None
    values, counts = np.unique(acts, return_counts=True)
    if len(values) > MAX_HISTOGRAM_BINS:
        return None
    return {str(a): int(c) for a, c in zip(values.tolist(), counts.tolist())}


def space_repr(space: Mapping[str, Any]) -> str:
    """gymnasium's `str(space)`, from the space's JSON layout: `inspect` of a store never imports
    gymnasium (a tenth of its run time). Kept equal to gymnasium's by a test."""
    kind = space["type"]
    if kind == "Box":
        low, high = _bounds(space)
        return f"Box({_short_repr(low)}, {_short_repr(high)}, {tuple(space['shape'])}, {np.dtype(space['dtype'])})"
    if kind == "Discrete":
        start = int(space.get("start", 0))
        return f"Discrete({int(space['n'])}{f', start={start}' if start else ''})"
    if kind == "MultiDiscrete":
        dtype = np.dtype(space.get("dtype", "int64"))
        nvec = np.array(space["nvec"], dtype=dtype)
        starts = np.broadcast_to(np.array(space.get("start", 0), dtype=dtype), nvec.shape)
        return f"MultiDiscrete({nvec}{f', start={starts}' if starts.any() else ''})"
    if kind == "MultiBinary":
        n = space["n"]
        return f"MultiBinary({n if isinstance(n, int) else tuple(n)})"
    if kind == "Dict":
        return "Dict(" + ", ".join(f"{k!r}: {space_repr(s)}" for k, s in space["subspaces"].items()) + ")"
    if kind == "Tuple":
        return "Tuple(" + ", ".join(space_repr(s) for s in space["subspaces"]) + ")"
    return str(kind)


def _short_repr(array: np.ndarray) -> str:
    if array.size and array.min() == array.max():
        return str(array.min())
    return str(array)


def _bounds(space: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A Box's (low, high) in its dtype; JSON writes infinities as strings, which float() reads."""
    shape, dtype = tuple(space["shape"]), np.dtype(space["dtype"])

    def bound(key: str) -> np.ndarray:
        return np.array([float(v) for v in space[key]], dtype=np.float64).reshape(shape).astype(dtype)

    return bound("low"), bound("high")


def _out_of_space(values: np.ndarray, space: Mapping[str, Any]) -> int:
    """Number of steps whose value lies outside a Discrete, MultiDiscrete or Box space."""
    rows = values.reshape(values.shape[0], -1)
    kind = space["type"]
    bad: np.ndarray | np.bool_
    if kind == "Discrete":
        start = int(space.get("start", 0))
        bad = (values < start) | (values >= start + int(space["n"]))
    elif kind == "MultiDiscrete":
        nvec = np.asarray(space["nvec"])
        starts = np.broadcast_to(np.asarray(space.get("start", 0)), nvec.shape).reshape(1, -1)
        bad = ((rows < starts) | (rows >= starts + nvec.reshape(1, -1))).any(axis=1)
    elif kind == "Box":
        low, high = _bounds(space)
        bad = ((rows < low.reshape(1, -1)) | (rows > high.reshape(1, -1))).any(axis=1)
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
            problems.append(f"acts: {bad} steps outside the action space {space_repr(data.action_space)}")
        if set(data.obs) == {"obs"}:
            bad = _out_of_space(data.obs["obs"], data.observation_space)
            if bad:
                problems.append(f"obs: {bad} steps outside the observation space")
    empty = int(np.count_nonzero(data.lengths < 1))
    if empty:
        problems.append(f"{empty} episodes have no actions")
    return problems


def report(path: str | Path, *, env_id: str | None = None) -> dict[str, Any]:
    """Everything `ildata inspect` shows, as plain JSON-able data.

    A folder with meta/info.json is a store and goes through `ildata.load` (so a damaged one is
    refused as `convert` refuses it); anything else is read as a conversion source."""
    from ildata.store import INFO_FILE

    spec = path  # may be a `minari:NAMESPACE/NAME-vN` spec, resolved by the source reader
    path = Path(path)
    data = _from_store(path, env_id) if path.is_dir() and (path / INFO_FILE).is_file() else _from_source(spec, env_id)
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
        "episodes": len(data.lengths),
        "transitions": int(data.acts.shape[0]),
        "observation_space": space_repr(data.observation_space),
        "action_space": space_repr(data.action_space),
        "spaces_inferred": data.spaces_inferred,
        "features": features,
        "disk_bytes": _disk_bytes(path),
        "rollout_stats": rollout_stats(data.lengths, data.returns),
        "feature_stats": per_feature,
        "action_histogram": _action_histogram(data.acts),
        "termination": _termination(data),
        "horizon": verdict(data.lengths).to_dict(),
        "problems": _problems(data),
    }
