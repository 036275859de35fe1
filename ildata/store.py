"""The ildata trajectory store (format version 1): writing, memory-mapped loading, subsets.

Layout (see docs/format.md):
    meta/info.json         spaces, features, totals, provenance, fingerprint
    meta/episodes.parquet  one row per episode
    meta/stats.json        per-feature and return/length statistics
    data/shard-NNNNN.arrow Arrow IPC files, one row per transition, one record batch per shard

Each row carries both `obs` and `next_obs` (as D4RL does): it doubles observation storage but
makes `transitions()` a set of zero-copy views of the memory-mapped files, and keeps the final
observation of every episode (the `next_obs` of its last row).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ildata import __version__
from ildata.episode import (
    DataError,
    Episode,
    EpisodeBatch,
    Obs,
    flatten_obs,
    unflatten_obs,
)
from ildata.spaces import (
    check_matches,
    infer_action_space,
    infer_obs_space,
    space_from_dict,
    space_to_dict,
)

FORMAT_NAME = "ildata"
FORMAT_VERSION = 1
INFO_FILE = "meta/info.json"
EPISODES_FILE = "meta/episodes.parquet"
STATS_FILE = "meta/stats.json"
DATA_DIR = "data"
# Shard file formats: Arrow IPC (memory-mapped, zero-copy; the default) or parquet (compressed,
# readable by every parquet tool and by `datasets.load_dataset("parquet")`, decoded on load).
DATA_FORMATS: dict[str, str] = {"arrow": ".arrow", "parquet": ".parquet"}
# A shard is one record batch; beyond this size a dataset is split at episode boundaries.
# transitions() over several shards has to concatenate (copy), so shards are large.
SHARD_BYTES = 4 << 30


# --------------------------------------------------------------------------- arrow <-> numpy


def _to_arrow(array: np.ndarray) -> pa.Array:
    """(N, *shape) numpy -> (nested) fixed-size-list Arrow array, zero-copy for contiguous data."""
    flat = np.ascontiguousarray(array).reshape(-1)
    arrow: pa.Array = pa.array(flat)
    for size in reversed(array.shape[1:]):
        arrow = pa.FixedSizeListArray.from_arrays(arrow, int(size))
    return arrow


def _to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Inverse of `_to_arrow`; zero-copy when the column is a single chunk without nulls."""
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    shape: list[int] = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()  # respects slice offsets, still zero-copy
    if pa.types.is_boolean(array.type):
        values = array.to_numpy(zero_copy_only=False)
    else:
        values = array.to_numpy(zero_copy_only=True)
    return values.reshape(shape)


# --------------------------------------------------------------------------- writing


@dataclass
class Provenance:
    """Where a dataset came from: recorded in meta/info.json."""

    source_path: str | None = None
    source_format: str | None = None
    source_sha256: str | None = None
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "source_path": self.source_path,
            "source_format": self.source_format,
            "source_sha256": self.source_sha256,
            "tool": f"ildata {__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if self.extra:
            out.update(self.extra)
        return out


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()


def _xxh3_file(path: Path) -> str:
    import xxhash  # a dependency of `datasets`; ~20x faster than sha256 on multi-GB shards

    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def content_files(root: Path) -> list[Path]:
    """The files the fingerprint covers: the episode table and every data shard."""
    shards = [f for f in (root / DATA_DIR).iterdir() if f.suffix in DATA_FORMATS.values()] if (root / DATA_DIR).is_dir() else []
    return sorted([root / EPISODES_FILE, *shards])


def compute_fingerprint(root: Path) -> tuple[str, dict[str, str]]:
    """Content fingerprint: xxh3-128 over the data shards and the episode table, by relative path.

    meta/info.json (which stores the fingerprint) and meta/stats.json (derived) are excluded.
    """
    import xxhash

    files = content_files(root)
    hashes = {str(f.relative_to(root)): _xxh3_file(f) for f in files}
    digest = xxhash.xxh3_128()
    for name, value in hashes.items():
        digest.update(f"{name}\0{value}\n".encode())
    return f"xxh3_128:{digest.hexdigest()}", hashes


def _infos_to_json(infos: Sequence[Any]) -> pa.Array:
    """Per-step infos -> JSON text (strings that already are text, e.g. jsonpickle, stay as-is)."""

    def encode(info: Any) -> str | None:
        if info is None:
            return None
        if isinstance(info, str):
            return info
        return json.dumps(info, default=_json_default)

    return pa.array([encode(i) for i in infos], type=pa.large_string())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def _episode_ordinals(lengths: np.ndarray) -> np.ndarray:
    """Episode number of every transition row."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def _split_obs(obs: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum(T+1), ...) observations -> (obs, next_obs), each (sum(T), ...)."""
    obs_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    if len(lengths) * 64 > len(obs):
        # Many short episodes: one boolean-mask gather per output.
        is_final = np.zeros(obs.shape[0], dtype=bool)
        is_final[obs_start + lengths] = True
        is_first = np.zeros(obs.shape[0], dtype=bool)
        is_first[obs_start] = True
        return obs[~is_final], obs[~is_first]
    # Long episodes: one memcpy per episode is ~3x faster than a boolean gather (a loop over
    # episodes, never over steps).
    out_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    head = np.empty((int(lengths.sum()),) + obs.shape[1:], dtype=obs.dtype)
    tail = np.empty_like(head)
    for src, dst, n in zip(obs_start.tolist(), out_start.tolist(), lengths.tolist()):
        head[dst : dst + n] = obs[src : src + n]
        tail[dst : dst + n] = obs[src + 1 : src + n + 1]
    return head, tail


def _episode_table(batch: EpisodeBatch) -> pa.Table:
    lengths = batch.lengths
    first_row = batch.first_rows
    returns = batch.returns()
    seeds = batch.seeds
    return pa.table(
        {
            "episode_index": pa.array(np.arange(len(lengths), dtype=np.int64)),
            "length": pa.array(lengths),
            "return": pa.array(returns, type=pa.float64()) if returns is not None else pa.nulls(len(lengths), pa.float64()),
            "terminated": pa.array(batch.terminated),
            "truncated": pa.array(batch.truncated),
            "termination_known": pa.array(batch.termination_known),
            "first_row": pa.array(first_row),
            "seed": pa.array(seeds, mask=seeds < 0, type=pa.int64()) if seeds is not None else pa.nulls(len(lengths), pa.int64()),
        }
    )


def _feature_meta(array: np.ndarray) -> dict[str, Any]:
    return {"dtype": str(array.dtype), "shape": list(array.shape[1:])}


def write_dataset(
    batch: EpisodeBatch,
    dst: str | Path,
    *,
    observation_space: Any = None,
    action_space: Any = None,
    env_id: str | None = None,
    provenance: Provenance | None = None,
    overwrite: bool = False,
    extra_info: Mapping[str, Any] | None = None,
    data_format: str = "arrow",
) -> Path:
    """Write `batch` as a store at `dst`, atomically (temporary folder, then rename)."""
    if data_format not in DATA_FORMATS:
        raise DataError(f"unknown shard format {data_format!r} (choose from {', '.join(DATA_FORMATS)})")
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise DataError("already exists (pass --overwrite / overwrite=True to replace it)", subject=dst)
    batch.validate()
    spaces_inferred = observation_space is None or action_space is None
    if observation_space is None:
        observation_space = infer_obs_space(batch.obs)
    if action_space is None:
        action_space = infer_action_space(batch.acts)
    check_matches(action_space, batch.acts, "actions")

    lengths = batch.lengths
    obs_flat = flatten_obs(batch.obs)
    columns: dict[str, pa.Array] = {}
    features: dict[str, Any] = {}
    stat_arrays: dict[str, np.ndarray] = {}
    for key, array in obs_flat.items():
        obs, next_obs = _split_obs(array, lengths)
        name = f"obs.{key}" if key else "obs"
        columns[name] = _to_arrow(obs)
        columns[f"next_{name}"] = _to_arrow(next_obs)
        features[name] = _feature_meta(array)
        stat_arrays[name] = obs
    columns["acts"] = _to_arrow(batch.acts)
    features["acts"] = _feature_meta(batch.acts)
    stat_arrays["acts"] = batch.acts
    if batch.rews is not None:
        columns["rews"] = _to_arrow(batch.rews)
        features["rews"] = _feature_meta(batch.rews)
        stat_arrays["rews"] = batch.rews
    ordinals = _episode_ordinals(lengths)
    columns["episode_index"] = pa.array(ordinals)
    last_row = np.cumsum(lengths) - 1
    for flag in ("terminated", "truncated"):
        per_step = np.zeros(batch.num_transitions, dtype=bool)
        per_step[last_row] = getattr(batch, flag)
        columns[flag] = pa.array(per_step)
    if batch.infos is not None:
        columns["infos"] = _infos_to_json(batch.infos)
        features["infos"] = {"dtype": "json", "shape": []}
    table = pa.table(columns)
    episodes = _episode_table(batch)

    from ildata.stats import dataset_stats

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    returns = episodes.column("return").to_numpy(zero_copy_only=False) if batch.rews is not None else None
    # Statistics (numpy, releases the GIL) run beside the shard writing and hashing (I/O).
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        stats_future = pool.submit(dataset_stats, stat_arrays, lengths, returns)
        (tmp / "meta").mkdir()
        (tmp / DATA_DIR).mkdir()
        data_files = _write_shards(table, lengths, tmp / DATA_DIR, data_format)
        pq.write_table(episodes, tmp / EPISODES_FILE)
        fingerprint, hashes = compute_fingerprint(tmp)
        stats = stats_future.result()
        info = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "env_id": env_id,
            "observation_space": space_to_dict(observation_space),
            "action_space": space_to_dict(action_space),
            "spaces_inferred": spaces_inferred,
            "observation_keys": None if set(obs_flat) == {""} else list(obs_flat),
            "features": features,
            "totals": {
                "episodes": batch.num_episodes,
                "transitions": batch.num_transitions,
                "observations": batch.num_transitions + batch.num_episodes,
            },
            "has_rewards": batch.rews is not None,
            "has_infos": batch.infos is not None,
            "data_format": data_format,
            "data_files": data_files,
            "provenance": (provenance or Provenance()).to_dict(),
            "fingerprint": fingerprint,
            "files_xxh3_128": hashes,
        }
        if extra_info:
            info.update(extra_info)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2))
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2))
        _replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return dst


def _write_shards(table: pa.Table, lengths: np.ndarray, folder: Path, data_format: str = "arrow") -> list[str]:
    """One record batch per shard file; shards split at episode boundaries past SHARD_BYTES."""
    bytes_per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows_per_shard = max(1, SHARD_BYTES // bytes_per_row)
    ends = np.cumsum(lengths)
    names: list[str] = []
    start = 0
    while start < table.num_rows:
        # Last episode end that keeps the shard within budget (at least one episode).
        limit = start + rows_per_shard
        idx = np.searchsorted(ends, limit, side="right") - 1
        stop = int(ends[idx]) if idx >= 0 and ends[idx] > start else int(ends[np.searchsorted(ends, start, side="right")])
        name = f"{DATA_DIR}/shard-{len(names):05d}{DATA_FORMATS[data_format]}"
        shard = table.slice(start, stop - start)  # zero-copy; every column is one chunk
        if data_format == "parquet":
            pq.write_table(shard, folder / Path(name).name, compression="zstd")
        else:
            with pa.OSFile(str(folder / Path(name).name), "wb") as sink:
                with pa.ipc.new_file(sink, shard.schema) as writer:
                    writer.write_table(shard, max_chunksize=shard.num_rows or None)
        names.append(name)
        start = stop
    return names


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Rename `tmp` onto `dst`; an existing `dst` is moved aside first and removed afterwards."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)


def save(
    episodes: Sequence[Episode] | EpisodeBatch,
    dst: str | Path,
    *,
    observation_space: Any = None,
    action_space: Any = None,
    env_id: str | None = None,
    overwrite: bool = False,
    provenance: Provenance | None = None,
    extra_info: Mapping[str, Any] | None = None,
    data_format: str = "arrow",
) -> TrajectoryDataset:
    """Write episodes as a new store and open it."""
    batch = episodes if isinstance(episodes, EpisodeBatch) else EpisodeBatch.from_episodes(list(episodes))
    path = write_dataset(
        batch,
        dst,
        observation_space=observation_space,
        action_space=action_space,
        env_id=env_id,
        provenance=provenance or Provenance(source_format="python"),
        overwrite=overwrite,
        extra_info=extra_info,
        data_format=data_format,
    )
    return load(path)


# --------------------------------------------------------------------------- reading


@dataclass
class Transitions:
    """Flat transitions; obs/next_obs are dicts of arrays for Dict observation spaces.

    `dones` marks the last step of every episode (terminated or truncated, as in imitation);
    `terminated` marks real terminations only, which is what bootstrapping should use.
    """

    obs: Obs
    acts: np.ndarray
    next_obs: Obs
    dones: np.ndarray
    terminated: np.ndarray
    rews: np.ndarray | None
    episode_index: np.ndarray

    def __len__(self) -> int:
        return int(self.acts.shape[0])


def is_store(path: Path) -> bool:
    return (path / INFO_FILE).is_file() and (path / EPISODES_FILE).is_file()


class TrajectoryDataset:
    """A memory-mapped store, or a subset of one's episodes (`select`, `filter`, `split`)."""

    def __init__(self, root: Path, info: dict[str, Any], table: pa.Table, episodes: pa.Table, subset: np.ndarray | None = None):
        self.path = root
        self.info = info
        self._table = table
        self._episodes_all = episodes
        self._subset = subset
        all_lengths = episodes.column("length").to_numpy()
        all_first = episodes.column("first_row").to_numpy()
        ids = np.arange(len(all_lengths)) if subset is None else subset
        self._ids = ids
        self._lengths = all_lengths[ids]
        self._first_row = all_first[ids]
        self._columns: dict[str, np.ndarray] = {}
        self._observation_space = None
        self._action_space = None

    # ---- metadata
    @property
    def observation_space(self) -> Any:
        if self._observation_space is None:
            self._observation_space = space_from_dict(self.info["observation_space"])
        return self._observation_space

    @property
    def action_space(self) -> Any:
        if self._action_space is None:
            self._action_space = space_from_dict(self.info["action_space"])
        return self._action_space

    @property
    def env_id(self) -> str | None:
        return self.info.get("env_id")

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the stored files (the whole store, even for a subset)."""
        return self.info["fingerprint"]

    @property
    def is_subset(self) -> bool:
        return self._subset is not None

    @property
    def num_transitions(self) -> int:
        return int(self._lengths.sum())

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    @property
    def episodes(self):
        """The episode table of this (sub)set as a polars DataFrame."""
        import polars as pl

        table = self._episodes_all if self._subset is None else self._episodes_all.take(pa.array(self._ids))
        return pl.from_arrow(table)

    def episode_column(self, name: str) -> np.ndarray:
        """One column of the episode table for this (sub)set, as numpy."""
        column = self._episodes_all.column(name)
        values = column.to_numpy(zero_copy_only=False)
        return values[self._ids]

    @property
    def returns(self) -> np.ndarray | None:
        return self.episode_column("return") if self.info.get("has_rewards") else None

    def __len__(self) -> int:
        return int(len(self._ids))

    def __repr__(self) -> str:
        return f"TrajectoryDataset({str(self.path)!r}, episodes={len(self)}, transitions={self.num_transitions})"

    # ---- columns
    def _column(self, name: str) -> np.ndarray:
        """A whole stored column as a (memory-mapped, zero-copy) numpy array."""
        if name not in self._columns:
            self._columns[name] = _to_numpy(self._table.column(name))
        return self._columns[name]

    def _obs_columns(self, prefix: str) -> dict[str, str]:
        keys = self.info.get("observation_keys")
        if keys is None:
            return {"": prefix}
        return {key: f"{prefix}.{key}" for key in keys}

    def _obs(self, prefix: str, rows: slice | np.ndarray) -> Obs:
        return unflatten_obs({k: self._column(c)[rows] for k, c in self._obs_columns(prefix).items()})

    def _rows(self) -> slice | np.ndarray:
        """Row selector of this (sub)set: a slice (views) when its episodes are contiguous in order."""
        starts, lengths = self._first_row, self._lengths
        if len(starts) == 0:
            return slice(0, 0)
        if np.array_equal(starts[1:], (starts + lengths)[:-1]):
            return slice(int(starts[0]), int(starts[-1] + lengths[-1]))
        offsets = np.cumsum(lengths) - lengths
        return np.arange(int(lengths.sum())) - np.repeat(offsets - starts, lengths)

    # ---- access
    def __getitem__(self, index: int) -> Episode:
        if not -len(self) <= index < len(self):
            raise IndexError(f"episode {index} out of range for {len(self)} episodes")
        e = int(self._ids[index])
        start = int(self._first_row[index])
        rows = slice(start, start + int(self._lengths[index]))
        last = slice(rows.stop - 1, rows.stop)
        flat_obs = {
            k: np.concatenate([self._column(c)[rows], self._column(f"next_{c}")[last]]) for k, c in self._obs_columns("obs").items()
        }
        record = self._episodes_all.slice(e, 1).to_pylist()[0]
        infos = None
        if self.info.get("has_infos"):
            infos = [_decode_info(s) for s in self._table.column("infos").slice(rows.start, rows.stop - rows.start).to_pylist()]
        return Episode(
            obs=unflatten_obs(flat_obs),
            acts=self._column("acts")[rows],
            rews=self._column("rews")[rows] if self.info.get("has_rewards") else None,
            terminated=bool(record["terminated"]),
            truncated=bool(record["truncated"]),
            infos=infos,
            termination_known=bool(record["termination_known"]),
            seed=record["seed"],
        )

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self[i]

    def transitions(self) -> Transitions:
        """All transitions as numpy arrays: views of the memory-mapped data for a whole store."""
        rows = self._rows()
        n = self.num_transitions
        ends = np.cumsum(self._lengths) - 1
        dones = np.zeros(n, dtype=bool)
        dones[ends] = True
        terminated = np.zeros(n, dtype=bool)
        terminated[ends] = self.episode_column("terminated")
        return Transitions(
            obs=self._obs("obs", rows),
            acts=self._column("acts")[rows],
            next_obs=self._obs("next_obs", rows),
            dones=dones,
            terminated=terminated,
            rews=self._column("rews")[rows] if self.info.get("has_rewards") else None,
            episode_index=self._column("episode_index")[rows],
        )

    def to_batch(self) -> EpisodeBatch:
        """Columnar episodes (obs with T+1 rows each), for writers of other formats."""
        rows = self._rows()
        lengths = self._lengths
        ordinal = _episode_ordinals(lengths)
        ends = np.cumsum(lengths) - 1
        flat: dict[str, np.ndarray] = {}
        for key, column in self._obs_columns("obs").items():
            obs = self._column(column)[rows]
            next_obs = self._column(f"next_{column}")[rows]
            out = np.empty((obs.shape[0] + len(lengths),) + obs.shape[1:], dtype=obs.dtype)
            out[np.arange(obs.shape[0]) + ordinal] = obs
            out[ends + np.arange(len(lengths)) + 1] = next_obs[ends]
            flat[key] = out
        infos = None
        if self.info.get("has_infos"):
            infos = [_decode_info(s) for s in self._table.column("infos").take(pa.array(np.arange(self._table.num_rows)[rows])).to_pylist()]
        seeds = self.episode_column("seed")
        seeds = None if np.isnan(seeds.astype(np.float64)).all() else np.nan_to_num(seeds.astype(np.float64), nan=-1).astype(np.int64)
        return EpisodeBatch(
            obs=unflatten_obs(flat),
            acts=np.asarray(self._column("acts")[rows]),
            lengths=lengths,
            terminated=self.episode_column("terminated"),
            truncated=self.episode_column("truncated"),
            termination_known=self.episode_column("termination_known"),
            rews=np.asarray(self._column("rews")[rows]) if self.info.get("has_rewards") else None,
            infos=infos,
            seeds=seeds,
        )

    # ---- statistics
    def stats(self) -> dict[str, Any]:
        """imitation's rollout_stats keys plus per-feature statistics (from meta/stats.json for a whole store)."""
        from ildata.stats import feature_stats, rollout_stats

        out: dict[str, Any] = rollout_stats(self._lengths, self.returns)
        out["n_transitions"] = self.num_transitions
        if self._subset is None and (self.path / STATS_FILE).is_file():
            out["features"] = json.loads((self.path / STATS_FILE).read_text())["features"]
        else:
            tr = self.transitions()
            arrays = {("obs" if not k else f"obs.{k}"): v for k, v in flatten_obs(tr.obs).items()}
            arrays["acts"] = tr.acts
            if tr.rews is not None:
                arrays["rews"] = tr.rews
            out["features"] = {name: feature_stats(array) for name, array in arrays.items()}
        return out

    # ---- subsets (no data copies: they share the memory-mapped table)
    def select(self, indices: Sequence[int] | np.ndarray) -> TrajectoryDataset:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"episode index out of range for {len(self)} episodes")
        return TrajectoryDataset(self.path, self.info, self._table, self._episodes_all, self._ids[indices])

    def filter(
        self,
        *,
        min_return: float | None = None,
        max_return: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        terminated: bool | None = None,
        truncated: bool | None = None,
    ) -> TrajectoryDataset:
        """Episodes meeting every given condition."""
        keep = np.ones(len(self), dtype=bool)
        if min_return is not None or max_return is not None:
            returns = self.returns
            if returns is None:
                raise DataError("this dataset has no rewards, so it cannot be filtered by return")
            if min_return is not None:
                keep &= returns >= min_return
            if max_return is not None:
                keep &= returns <= max_return
        if min_length is not None:
            keep &= self._lengths >= min_length
        if max_length is not None:
            keep &= self._lengths <= max_length
        if terminated is not None:
            keep &= self.episode_column("terminated") == terminated
        if truncated is not None:
            keep &= self.episode_column("truncated") == truncated
        return self.select(np.flatnonzero(keep))

    def split(self, fraction: float, *, seed: int = 0) -> tuple[TrajectoryDataset, TrajectoryDataset]:
        """Random episode-level split into (fraction, 1 - fraction); order inside each part is kept."""
        if not 0.0 < fraction < 1.0:
            raise ValueError("fraction must be strictly between 0 and 1")
        order = np.random.default_rng(seed).permutation(len(self))
        cut = int(round(fraction * len(self)))
        return self.select(np.sort(order[:cut])), self.select(np.sort(order[cut:]))

    def save(self, dst: str | Path, *, overwrite: bool = False) -> TrajectoryDataset:
        """Materialise this (sub)set as a new store."""
        provenance = Provenance(
            source_path=str(self.path),
            source_format=f"{FORMAT_NAME}-v{FORMAT_VERSION}",
            extra={"source_fingerprint": self.fingerprint},
        )
        return save(
            self.to_batch(),
            dst,
            observation_space=self.observation_space,
            action_space=self.action_space,
            env_id=self.env_id,
            overwrite=overwrite,
            provenance=provenance,
        )


def _decode_info(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # kept verbatim (e.g. a jsonpickle payload that was not plain JSON)


def _read_shard(path: Path) -> pa.Table:
    """Arrow shards are memory-mapped (no copy); parquet shards are decoded into memory."""
    if path.suffix == DATA_FORMATS["parquet"]:
        return pq.read_table(path).combine_chunks()
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def load(path: str | Path) -> TrajectoryDataset:
    """Open a store (memory-mapped; nothing is read into memory until used)."""
    if isinstance(path, str) and path.startswith("hf://"):
        from ildata.hub import load_hf

        return load_hf(path)
    root = Path(path)
    if not is_store(root):
        raise DataError(f"{root} is not an ildata dataset (no {INFO_FILE}); use `ildata convert` first")
    try:
        info = json.loads((root / INFO_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{root / INFO_FILE}: invalid JSON ({exc})") from None
    if info.get("format") != FORMAT_NAME or info.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{root}: unsupported format {info.get('format')} v{info.get('format_version')} (this ildata reads v{FORMAT_VERSION})"
        )
    try:
        tables = [_read_shard(root / name) for name in info["data_files"]]
        episodes = pq.read_table(root / EPISODES_FILE)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{root}: corrupted data ({exc})") from None
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if table.num_rows != info["totals"]["transitions"]:
        raise DataError(f"{root}: {table.num_rows} rows in data/ but info.json says {info['totals']['transitions']}")
    return TrajectoryDataset(root, info, table, episodes)
