"""`inspect` report: sizes, spaces, statistics, termination, horizon and validation problems.

Works on a store (through `ildata.load`; per-feature statistics come from meta/stats.json) and
straight on any source `convert` reads, without writing anything. Episode-level numbers and
per-step checks are vectorised numpy over the (memory-mapped) arrays: no polars import, which
alone cost more than the rest of `ildata inspect`.

How spaces are shown lives in ildata/space_display.py and `ildata list`'s discovery in
ildata/catalog.py; both are re-exported here for callers of the old paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ildata.catalog import DatasetEntry, disk_bytes, find_datasets, hub_cache_root, store_bytes
from ildata.episode import DataError, flatten_obs
from ildata.horizon import verdict
from ildata.space_display import box_bounds, space_object, space_repr, space_text
from ildata.stats import feature_stats, rollout_stats

__all__ = [
    "MAX_HISTOGRAM_BINS",
    "Chunk",
    "DatasetEntry",
    "ReportInput",
    "find_datasets",
    "hub_cache_root",
    "read_input",
    "report",
    "report_from",
    "space_object",
    "space_repr",
    "space_text",
    "store_bytes",
]

# Beyond this many distinct values an integer action space is not shown as a histogram.
MAX_HISTOGRAM_BINS = 64

# Per-step arrays of a run of transitions: observations by feature name, actions, rewards.
Chunk = tuple[dict[str, np.ndarray], np.ndarray, "np.ndarray | None"]


@dataclass
class ReportInput:
    """The arrays a report needs, whether they come from a store or a freshly read source."""

    path: Path
    format: str
    # The per-step arrays (observations by feature name "obs", "obs.key"; actions; rewards), one
    # store shard at a time: a store larger than memory is reported with one shard resident.
    chunks: Callable[[], Iterator[Chunk]]
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
    disk_bytes: int = 0
    fingerprint: str | None = None
    provenance: dict[str, Any] | None = None
    collection: dict[str, Any] | None = None

    def first_chunk(self) -> Chunk:
        return next(self.chunks())

    @property
    def obs(self) -> dict[str, np.ndarray]:
        """Every step's observations (concatenated: for plots, which need all values)."""
        parts = [obs for obs, _, _ in self.chunks()]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    @property
    def acts(self) -> np.ndarray:
        return np.concatenate([acts for _, acts, _ in self.chunks()])


def _obs_features(obs: Any) -> dict[str, np.ndarray]:
    return {("obs" if not k else f"obs.{k}"): v for k, v in flatten_obs(obs).items()}


def _from_store(path: str | Path, env_id: str | None) -> ReportInput:
    """Through `ildata.load` (a folder or `hf://owner/name@rev`), whose structural checks make a
    damaged store a DataError."""
    from ildata.opener import load

    ds = load(path)

    def chunks() -> Iterator[Chunk]:
        try:
            parts = ds.transition_chunks() if ds.num_transitions else iter([ds.transitions()])
            for tr in parts:
                yield _obs_features(tr.obs), tr.acts, tr.rews
        except DataError:
            raise
        except Exception as exc:  # anything load's checks let through must still be one line
            raise DataError(f"damaged store ({type(exc).__name__}: {exc})") from None

    try:
        stats = ds.stats()
        data = ReportInput(
            path=ds.path,
            format=f"ildata v{ds.info['format_version']} (from {ds.info['provenance'].get('source_format')})",
            chunks=chunks,
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
            disk_bytes=store_bytes(ds.path, ds.info),
            fingerprint=ds.fingerprint,
            provenance=ds.info.get("provenance"),
            collection=ds.info.get("collection") if isinstance(ds.info.get("collection"), dict) else None,
        )
    except DataError:
        raise
    except Exception as exc:  # anything load's checks let through must still be one line
        raise DataError(f"damaged store ({type(exc).__name__}: {exc})") from None
    if env_id is not None:
        from ildata.conversion import check_env_fits

        for tr in ds.transition_chunks():
            check_env_fits(env_id, tr.obs, tr.acts, recorded=(ds.observation_space, ds.action_space))
        data.env_id = env_id
    return data


def _from_source(path: str | Path, env_id: str | None) -> ReportInput:
    from ildata.conversion import read
    from ildata.spaces import infer_action_space, infer_obs_space, space_to_dict
    from ildata.store import split_obs

    source, path = read(path, env_id=env_id)
    batch = source.batch
    lengths = batch.lengths
    chunk: Chunk = ({k: split_obs(v, lengths)[0] for k, v in _obs_features(batch.obs).items()}, batch.acts, batch.rews)
    return ReportInput(
        path=path,
        format=source.format,
        chunks=lambda: iter([chunk]),
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
        disk_bytes=disk_bytes(path),
        provenance={"source_path": str(path), "source_format": source.format, "notes": source.notes} if source.notes else None,
    )


def _termination(data: ReportInput) -> dict[str, int]:
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


def _action_histogram(data: ReportInput) -> dict[str, int] | None:
    """Counts of each integer action, summed shard by shard; None for other actions or too many values."""
    total: dict[int, int] = {}
    for _, acts, _ in data.chunks():
        if acts.ndim != 1 or not np.issubdtype(acts.dtype, np.integer):
            return None
        values, counts = np.unique(acts, return_counts=True)
        for a, c in zip(values.tolist(), counts.tolist()):
            total[a] = total.get(a, 0) + c
        if len(total) > MAX_HISTOGRAM_BINS:
            return None
    return {str(a): total[a] for a in sorted(total)}


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
        low, high = box_bounds(space)
        bad = ((rows < low.reshape(1, -1)) | (rows > high.reshape(1, -1))).any(axis=1)
    else:
        return 0
    return int(np.count_nonzero(bad))


def _non_finite(values: np.ndarray) -> int:
    if not np.issubdtype(values.dtype, np.floating):
        return 0
    rows = values.reshape(values.shape[0], -1)
    return int(np.count_nonzero(~np.isfinite(rows).all(axis=1)))


def _arrays(chunk: Chunk) -> dict[str, np.ndarray]:
    obs, acts, rews = chunk
    return dict(obs) | {"acts": acts} | ({"rews": rews} if rews is not None else {})


def _problems(data: ReportInput) -> list[str]:
    non_finite: dict[str, int] = {}
    bad_acts = bad_obs = 0
    for chunk in data.chunks():
        for name, values in _arrays(chunk).items():
            non_finite[name] = non_finite.get(name, 0) + _non_finite(values)
        if not data.spaces_inferred:
            obs, acts, _ = chunk
            bad_acts += _out_of_space(acts, data.action_space)
            if set(obs) == {"obs"}:
                bad_obs += _out_of_space(obs["obs"], data.observation_space)
    problems = [f"{name}: {bad} steps contain NaN or Inf" for name, bad in non_finite.items() if bad]
    if bad_acts:
        problems.append(f"acts: {bad_acts} steps outside the action space {space_repr(data.action_space)}")
    if bad_obs:
        problems.append(f"obs: {bad_obs} steps outside the observation space")
    empty = int(np.count_nonzero(data.lengths < 1))
    if empty:
        problems.append(f"{empty} episodes have no actions")
    return problems


def read_input(path: str | Path, *, env_id: str | None = None) -> tuple[ReportInput, str]:
    """The arrays and metadata of a store (a folder or `hf://owner/name@rev`) or of any source
    `convert` reads, plus the name to show for it."""
    from ildata.store import INFO_FILE

    if isinstance(path, str) and path.startswith("hf://"):
        return _from_store(path, env_id), path
    folder = Path(path)
    # `path` may be a `minari:NAMESPACE/NAME-vN` spec, resolved by the source reader
    data = _from_store(folder, env_id) if folder.is_dir() and (folder / INFO_FILE).is_file() else _from_source(path, env_id)
    return data, str(data.path)


def report(path: str | Path, *, env_id: str | None = None) -> dict[str, Any]:
    """Everything `ildata inspect` shows, as plain JSON-able data.

    A folder with meta/info.json is a store and goes through `ildata.load` (so a damaged one is
    refused as `convert` refuses it); anything else is read as a conversion source."""
    data, shown = read_input(path, env_id=env_id)
    return report_from(data, shown)


def report_from(data: ReportInput, shown: str) -> dict[str, Any]:
    """`report` of arrays already read (`read_input`), named `shown`."""
    first = _arrays(data.first_chunk())
    features = {name: {"dtype": str(v.dtype), "shape": list(v.shape[1:])} for name, v in first.items()}
    if data.feature_stats is not None:
        per_feature = data.feature_stats
    else:  # a source: read whole, one chunk
        per_feature = {name: feature_stats(values) for name, values in first.items()}
    return {
        "path": shown,
        "format": data.format,
        "env_id": data.env_id,
        "fingerprint": data.fingerprint,
        "provenance": data.provenance,
        "collection": data.collection,
        "episodes": len(data.lengths),
        "transitions": int(data.lengths.sum()),
        "observation_space": space_object(data.observation_space),
        "action_space": space_object(data.action_space),
        "spaces_inferred": data.spaces_inferred,
        "features": features,
        "disk_bytes": data.disk_bytes,
        "rollout_stats": rollout_stats(data.lengths, data.returns),
        "feature_stats": per_feature,
        "action_histogram": _action_histogram(data),
        "termination": _termination(data),
        "horizon": verdict(data.lengths).to_dict(),
        "problems": _problems(data),
    }
