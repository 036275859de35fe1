"""Writing a store: episodes -> Arrow shards, episode table, info.json and stats.json, atomically.

Each row carries both `obs` and `next_obs` (as D4RL does): it doubles observation storage but
makes `transitions()` a set of zero-copy views of the memory-mapped files, and keeps the final
observation of every episode (the `next_obs` of its last row).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, Episode, EpisodeBatch, flatten_obs
from ildata.fsutil import atomic_output
from ildata.spaces import check_matches, infer_action_space, infer_obs_space, space_to_dict
from ildata.store import layout
from ildata.store.episodes import episode_table, write_episodes
from ildata.store.fingerprint import compute_fingerprint
from ildata.store.layout import (
    DATA_DIR,
    DATA_FORMATS,
    EPISODES_FILE,
    INFO_FILE,
    STATS_FILE,
    DatasetInfo,
    Feature,
    Provenance,
    Totals,
)

if TYPE_CHECKING:
    from gymnasium import Space

    from ildata.store.read import TrajectoryDataset


def to_arrow(array: np.ndarray) -> pa.Array:
    """(N, *shape) numpy -> (nested) fixed-size-list Arrow array, zero-copy for contiguous data."""
    flat = np.ascontiguousarray(array).reshape(-1)
    arrow: pa.Array = pa.array(flat)
    for size in reversed(array.shape[1:]):
        arrow = pa.FixedSizeListArray.from_arrays(arrow, int(size))
    return arrow


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def infos_to_json(infos: Sequence[Any]) -> pa.Array:
    """Per-step infos -> JSON text (strings that already are text, e.g. jsonpickle, stay as-is)."""

    def encode(info: Any) -> str | None:
        if info is None:
            return None
        if isinstance(info, str):
            return info
        return json.dumps(info, default=_json_default)

    return pa.array([encode(i) for i in infos], type=pa.large_string())


def episode_ordinals(lengths: np.ndarray) -> np.ndarray:
    """Episode number of every transition row."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def split_obs(obs: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _feature(array: np.ndarray) -> Feature:
    return Feature(str(array.dtype), tuple(int(s) for s in array.shape[1:]))


def write_dataset(
    batch: EpisodeBatch,
    dst: str | Path,
    *,
    observation_space: Space | None = None,
    action_space: Space | None = None,
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
    features: dict[str, Feature] = {}
    stat_arrays: dict[str, np.ndarray] = {}
    for key, array in obs_flat.items():
        obs, next_obs = split_obs(array, lengths)
        name = f"obs.{key}" if key else "obs"
        columns[name] = to_arrow(obs)
        columns[f"next_{name}"] = to_arrow(next_obs)
        features[name] = _feature(array)
        stat_arrays[name] = obs
    columns["acts"] = to_arrow(batch.acts)
    features["acts"] = _feature(batch.acts)
    stat_arrays["acts"] = batch.acts
    if batch.rews is not None:
        columns["rews"] = to_arrow(batch.rews)
        features["rews"] = _feature(batch.rews)
        stat_arrays["rews"] = batch.rews
    columns[layout.EPISODE_INDEX] = pa.array(episode_ordinals(lengths))
    last_row = np.cumsum(lengths) - 1
    for flag in layout.FLAG_COLUMNS:
        per_step = np.zeros(batch.num_transitions, dtype=bool)
        per_step[last_row] = getattr(batch, flag)
        columns[flag] = pa.array(per_step)
    if batch.infos is not None:
        columns[layout.INFOS] = infos_to_json(batch.infos)
        features[layout.INFOS] = Feature("json")
    table = pa.table(columns)
    episodes = episode_table(batch)

    from ildata.stats import dataset_stats

    returns = episodes.column("return").to_numpy(zero_copy_only=False) if batch.rews is not None else None
    # Statistics (numpy, releases the GIL) run beside the shard writing and hashing (I/O).
    with ThreadPoolExecutor(max_workers=1) as pool, atomic_output(dst, overwrite=overwrite) as tmp:
        stats_future = pool.submit(dataset_stats, stat_arrays, lengths, returns)
        (tmp / "meta").mkdir()
        (tmp / DATA_DIR).mkdir()
        data_files = _write_shards(table, lengths, tmp / DATA_DIR, data_format)
        write_episodes(episodes, tmp / EPISODES_FILE)
        fingerprint, hashes = compute_fingerprint(tmp)
        info = DatasetInfo(
            env_id=env_id,
            observation_space=space_to_dict(observation_space),
            action_space=space_to_dict(action_space),
            spaces_inferred=spaces_inferred,
            observation_keys=None if set(obs_flat) == {""} else list(obs_flat),
            features=features,
            totals=Totals(batch.num_episodes, batch.num_transitions, batch.num_transitions + batch.num_episodes),
            has_rewards=batch.rews is not None,
            has_infos=batch.infos is not None,
            data_format=data_format,
            data_files=data_files,
            provenance=(provenance or Provenance()).stamped(),
            fingerprint=fingerprint,
            files_xxh3_128=hashes,
            extra=dict(extra_info or {}),
        )
        (tmp / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2))
        (tmp / STATS_FILE).write_text(json.dumps(stats_future.result(), indent=2))
    return dst


def _write_shards(table: pa.Table, lengths: np.ndarray, folder: Path, data_format: str = "arrow") -> list[str]:
    """One record batch per shard file; shards split at episode boundaries past SHARD_BYTES."""
    bytes_per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows_per_shard = max(1, layout.SHARD_BYTES // bytes_per_row)  # read at call time: tests lower it
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
            import pyarrow.parquet as pq

            pq.write_table(shard, folder / Path(name).name, compression="zstd")
        else:
            with pa.OSFile(str(folder / Path(name).name), "wb") as sink:
                with pa.ipc.new_file(sink, shard.schema) as writer:
                    writer.write_table(shard, max_chunksize=shard.num_rows or None)
        names.append(name)
        start = stop
    return names


def save(
    episodes: Sequence[Episode] | EpisodeBatch,
    dst: str | Path,
    *,
    observation_space: Space | None = None,
    action_space: Space | None = None,
    env_id: str | None = None,
    overwrite: bool = False,
    provenance: Provenance | None = None,
    extra_info: Mapping[str, Any] | None = None,
    data_format: str = "arrow",
) -> TrajectoryDataset:
    """Write episodes as a new store and open it."""
    from ildata.store.read import load

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
