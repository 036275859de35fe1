"""Writing a store: episodes -> Arrow shards, episode table, info.json and stats.json, atomically.

Each row carries both `obs` and `next_obs` (as D4RL does): it doubles observation storage but
makes `transitions()` a set of zero-copy views of the memory-mapped files, and keeps the final
observation of every episode (the `next_obs` of its last row).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, EpisodeBatch, flatten_obs
from ildata.fsutil import atomic_output, os_path
from ildata.spaces import check_matches, infer_action_space, infer_obs_space, space_to_dict
from ildata.store import layout
from ildata.store.columns import episode_ordinals, infos_to_json, single_chunk, split_obs, to_arrow, to_numpy
from ildata.store.declared_spaces import declared_space_problems
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


def _feature(array: np.ndarray) -> Feature:
    return Feature(str(array.dtype), tuple(int(s) for s in array.shape[1:]))


def chunk_table(batch: EpisodeBatch, first_episode: int) -> tuple[pa.Table, dict[str, Feature], list[str]]:
    """One batch of episodes as transition rows (episode indices counted from `first_episode`),
    its features, and the observation keys ("" for a plain observation)."""
    lengths = batch.lengths
    obs_flat = flatten_obs(batch.obs)
    columns: dict[str, pa.Array] = {}
    features: dict[str, Feature] = {}
    for key, array in obs_flat.items():
        obs, next_obs = split_obs(array, lengths)
        name = f"obs.{key}" if key else "obs"
        columns[name] = to_arrow(obs)
        columns[f"next_{name}"] = to_arrow(next_obs)
        features[name] = _feature(array)
    columns["acts"] = to_arrow(batch.acts)
    features["acts"] = _feature(batch.acts)
    if batch.rews is not None:
        columns["rews"] = to_arrow(batch.rews)
        features["rews"] = _feature(batch.rews)
    columns[layout.EPISODE_INDEX] = pa.array(episode_ordinals(lengths) + first_episode)
    last_row = np.cumsum(lengths) - 1
    for flag in layout.FLAG_COLUMNS:
        per_step = np.zeros(batch.num_transitions, dtype=bool)
        per_step[last_row] = getattr(batch, flag)
        columns[flag] = pa.array(per_step)
    if batch.infos is not None:
        columns[layout.INFOS] = infos_to_json(batch.infos)
        features[layout.INFOS] = Feature("json")
    return pa.table(columns), features, list(obs_flat)


def _row_width(kind: pa.DataType) -> int:
    """Bytes per row of a fixed-width column (booleans counted as one byte): a function of the
    type alone, so shard boundaries do not depend on how the source was cut into chunks."""
    if pa.types.is_fixed_size_list(kind):
        return kind.list_size * _row_width(kind.value_type)
    return 1 if pa.types.is_boolean(kind) else kind.bit_width // 8


def _episode_bytes(table: pa.Table, lengths: np.ndarray) -> np.ndarray:
    """Approximate stored bytes of every episode of a chunk table (what shards are cut by)."""
    width = sum(_row_width(f.type) for f in table.schema if f.name != layout.INFOS)
    sizes = lengths.astype(np.int64) * width
    if layout.INFOS in table.column_names:
        infos = single_chunk(table.column(layout.INFOS))
        offsets = np.frombuffer(infos.buffers()[1], dtype=np.int64)[infos.offset : infos.offset + len(infos) + 1]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        sizes += offsets[bounds[1:]] - offsets[bounds[:-1]] + 8 * lengths
    return sizes


def _exact(array: pa.Array) -> pa.Array:
    """`array` with offset 0 and buffers of exactly the size its rows need. The IPC writer writes
    a buffer larger than needed cut to a padded size, and an exact one as it is: without this a
    shard's bytes (and the fingerprint) would depend on whether its rows were sliced out of a
    larger chunk, i.e. on how the source was read. Zero-copy except bitmaps and string offsets."""
    kind, n, offset = array.type, len(array), array.offset
    buffers = array.buffers()
    validity = None
    if array.null_count:
        bits = np.unpackbits(np.frombuffer(buffers[0], np.uint8), bitorder="little", count=offset + n)[offset:]
        validity = pa.py_buffer(np.packbits(bits, bitorder="little"))
    if pa.types.is_fixed_size_list(kind):
        values = array.values.slice(offset * kind.list_size, n * kind.list_size)
        return pa.FixedSizeListArray.from_arrays(_exact(values), kind.list_size)
    if pa.types.is_boolean(kind):
        bits = np.unpackbits(np.frombuffer(buffers[1], np.uint8), bitorder="little", count=offset + n)[offset:]
        return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(np.packbits(bits, bitorder="little"))])
    if pa.types.is_large_string(kind):
        offsets = np.frombuffer(buffers[1], np.int64)[offset : offset + n + 1]
        data = buffers[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])) if buffers[2] is not None else pa.py_buffer(b"")
        return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets - offsets[0]), data])
    width = kind.bit_width // 8
    return pa.Array.from_buffers(kind, n, [validity, buffers[1].slice(offset * width, n * width)])


def shard_name(number: int, data_format: str) -> str:
    """The store-relative name of shard `number` (data/shard-00000.arrow, ...)."""
    return f"{DATA_DIR}/shard-{number:05d}{DATA_FORMATS[data_format]}"


def write_shard(shard: pa.Table, path: Path, data_format: str) -> None:
    """One shard file: Arrow IPC as a single record batch (memory-mapped as one chunk on load),
    or zstd-compressed parquet."""
    if data_format == "parquet":
        import pyarrow.parquet as pq

        with pa.OSFile(os_path(path), "wb") as sink:
            pq.write_table(shard, sink, compression="zstd")
    else:
        with pa.OSFile(os_path(path), "wb") as sink:
            with pa.ipc.new_file(sink, shard.schema) as writer:
                writer.write_table(shard, max_chunksize=shard.num_rows or None)


class ShardPacker:
    """Packs episodes, as chunks of them arrive, into shards of whole episodes of at most
    SHARD_BYTES (one episode alone may exceed it), each written as soon as it is full. The cuts
    depend only on the sequence of episode sizes, so a source read whole or in chunks gives the
    same shard files; at most one shard's rows plus one chunk are held."""

    def __init__(
        self, folder: Path, data_format: str, on_shard: Callable[[pa.Table], None], shard_bytes: int | None = None, first_shard: int = 0
    ):
        self.folder = folder
        self.first_shard = first_shard  # the number of the first shard written (an append continues a store)
        self.data_format = data_format
        self.on_shard = on_shard
        self.budget = shard_bytes or layout.SHARD_BYTES  # read at call time: tests lower it
        self.pending: list[pa.Table] = []
        self.pending_bytes = 0
        self.names: list[str] = []

    def add(self, table: pa.Table, lengths: np.ndarray) -> None:
        cum = np.cumsum(_episode_bytes(table, lengths))
        rows = np.concatenate([[0], np.cumsum(lengths)])
        n, first, base = len(lengths), 0, 0
        while first < n:
            last = int(np.searchsorted(cum, base + self.budget - self.pending_bytes, side="right")) - 1
            if last < first:
                if self.pending:  # the next episode does not fit: close this shard
                    self.flush()
                    continue
                last = first  # an episode larger than a shard is a shard of its own
            self.pending.append(table.slice(int(rows[first]), int(rows[last + 1] - rows[first])))
            self.pending_bytes += int(cum[last]) - base
            first, base = last + 1, int(cum[last])
            if first < n:
                self.flush()

    def flush(self) -> None:
        """Write the pending rows as one shard: one record batch (zero-copy mapped columns)."""
        if not self.pending:
            return
        pieces, self.pending, self.pending_bytes = self.pending, [], 0
        names = pieces[0].column_names
        columns = [[single_chunk(p.column(i)) for p in pieces] for i in range(len(names))]
        del pieces
        merged = []
        for i in range(len(names)):  # several pieces: one copy, column by column, releasing each column's pieces
            merged.append(_exact(columns[i][0] if len(columns[i]) == 1 else pa.concat_arrays(columns[i])))
            columns[i] = []
        shard = pa.Table.from_arrays(merged, names=names)
        name = shard_name(self.first_shard + len(self.names), self.data_format)
        self.on_shard(shard)
        write_shard(shard, self.folder / Path(name).name, self.data_format)
        self.names.append(name)


def _merge_inferred(space: Space, other: Space) -> Space:
    """Action spaces inferred from two chunks as the one inferred from both (Discrete ranges
    and MultiDiscrete sizes grow; anything else must agree)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete) and isinstance(other, spaces.Discrete):
        start = min(int(space.start), int(other.start))
        stop = max(int(space.start) + int(space.n), int(other.start) + int(other.n))
        return spaces.Discrete(stop - start, start=start)
    if isinstance(space, spaces.MultiDiscrete) and isinstance(other, spaces.MultiDiscrete) and space.shape == other.shape:
        return spaces.MultiDiscrete(np.maximum(space.nvec, other.nvec), dtype=str(space.dtype))
    if space != other:
        raise DataError(f"episodes disagree on the action space ({space} then {other})")
    return space


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
    shard_bytes: int | None = None,
) -> Path:
    """Write `batch` as a store at `dst`, atomically (temporary folder, then rename): the
    one-chunk case of `write_chunks`."""
    return write_chunks(
        [batch],
        dst,
        observation_space=observation_space,
        action_space=action_space,
        env_id=env_id,
        provenance=provenance,
        overwrite=overwrite,
        extra_info=extra_info,
        data_format=data_format,
        total_transitions=batch.num_transitions,
        shard_bytes=shard_bytes,
    )


def write_chunks(
    chunks: Iterable[EpisodeBatch],
    dst: str | Path,
    *,
    observation_space: Space | None = None,
    action_space: Space | None = None,
    env_id: str | None = None,
    provenance: Provenance | Callable[[], Provenance] | None = None,
    overwrite: bool = False,
    extra_info: Mapping[str, Any] | None = None,
    data_format: str = "arrow",
    total_transitions: int | None = None,
    shard_bytes: int | None = None,
) -> Path:
    """Write episodes arriving as consecutive batches (a source read piece by piece) as a store
    at `dst`, with memory bounded by one shard plus one chunk: shards are written as they fill,
    statistics combined shard by shard, then the folder renamed into place (nothing is left at
    `dst` if a chunk fails). The store equals the one `write_dataset` makes from all episodes.

    `provenance` may be a function called once every chunk is read (a reader's notes are complete
    only then). `total_transitions`, when known in advance, lets statistics run beside the
    writing; otherwise they are computed from the written shards afterwards (same numbers).
    `shard_bytes` (default `layout.SHARD_BYTES`, 4 GiB) bounds a shard, and with it the memory
    used: about twice a shard plus one chunk."""
    if data_format not in DATA_FORMATS:
        raise DataError(f"unknown shard format {data_format!r} (choose from {', '.join(DATA_FORMATS)})")
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise DataError("already exists (pass --overwrite / overwrite=True to replace it)", subject=dst)
    from ildata.stats import FeatureStats, rollout_stats
    from ildata.store.shards import read_shard

    spaces_inferred = observation_space is None or action_space is None
    inferred_actions: Space | None = None
    features: dict[str, Feature] = {}
    obs_keys: list[str] = []
    schema: pa.Schema | None = None
    episode_parts: list[pa.Table] = []
    n_episodes = n_transitions = 0
    accumulators: dict[str, FeatureStats] = {}

    def start_stats(total: int) -> None:
        for name, feature in features.items():
            if name != layout.INFOS:
                accumulators[name] = FeatureStats(total, feature.shape)

    def add_stats(shard: pa.Table) -> None:
        for name, accumulator in accumulators.items():
            accumulator.add(to_numpy(shard.column(name)))

    # Statistics (numpy, releases the GIL) run beside the shard writing and hashing (I/O), one
    # shard at a time so that no more than one finished shard waits for them.
    with ThreadPoolExecutor(max_workers=1) as pool, atomic_output(dst, overwrite=overwrite) as tmp:
        (tmp / "meta").mkdir()
        (tmp / DATA_DIR).mkdir()
        pending_stats: Future[None] | None = None

        def on_shard(shard: pa.Table) -> None:
            nonlocal pending_stats
            if accumulators:
                if pending_stats is not None:
                    pending_stats.result()
                pending_stats = pool.submit(add_stats, shard)

        packer = ShardPacker(tmp / DATA_DIR, data_format, on_shard, shard_bytes)
        for index, batch in enumerate(chunks):
            batch.validate()
            if observation_space is None:
                observation_space = infer_obs_space(batch.obs)
            if action_space is None or inferred_actions is not None:
                chunk_space = infer_action_space(batch.acts)
                inferred_actions = chunk_space if inferred_actions is None else _merge_inferred(inferred_actions, chunk_space)
                action_space = inferred_actions
            check_matches(action_space, batch.acts, "actions")
            table, chunk_features, keys = chunk_table(batch, n_episodes)
            if schema is None:
                schema, features, obs_keys = table.schema, chunk_features, keys
                if total_transitions is not None:
                    start_stats(total_transitions)
            elif table.schema != schema:
                raise DataError(f"episodes of chunk {index} have other features than the first ({chunk_features} vs {features})")
            episode_parts.append(episode_table(batch, first_episode=n_episodes, first_row=n_transitions))
            n_episodes += batch.num_episodes
            n_transitions += batch.num_transitions
            packer.add(table, batch.lengths)
            del table, batch
        if schema is None:
            raise DataError("no episodes")
        packer.flush()
        if pending_stats is not None:
            pending_stats.result()
        if total_transitions is not None and total_transitions != n_transitions:
            raise DataError(f"expected {total_transitions} transitions, the source gave {n_transitions}")
        episodes = pa.concat_tables(episode_parts).combine_chunks()
        write_episodes(episodes, tmp / EPISODES_FILE)
        if not accumulators:  # totals were unknown: read the written shards back, one at a time
            start_stats(n_transitions)
            for name in packer.names:
                add_stats(read_shard(tmp / name))
        lengths = to_numpy(episodes.column("length"))
        returns = to_numpy(episodes.column("return")) if "rews" in features else None
        stats_future = pool.submit(
            lambda: {
                "episodes": rollout_stats(lengths, returns),
                "features": {name: acc.result() for name, acc in accumulators.items()},
            }
        )
        fingerprint, hashes = compute_fingerprint(tmp)
        assert observation_space is not None and action_space is not None
        info = DatasetInfo(
            env_id=env_id,
            observation_space=space_to_dict(observation_space),
            action_space=space_to_dict(action_space),
            spaces_inferred=spaces_inferred,
            observation_keys=None if obs_keys == [""] else obs_keys,
            features=features,
            totals=Totals(n_episodes, n_transitions, n_transitions + n_episodes),
            has_rewards="rews" in features,
            has_infos=layout.INFOS in features,
            data_format=data_format,
            data_files=packer.names,
            provenance=((provenance() if callable(provenance) else provenance) or Provenance()).stamped(),
            fingerprint=fingerprint,
            files_xxh3_128=hashes,
            extra=dict(extra_info or {}),
        )
        for problem in declared_space_problems(info):  # what `load` would refuse is never written
            raise DataError(problem.removeprefix(f"{INFO_FILE}: "), subject=dst)
        (tmp / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2))
        (tmp / STATS_FILE).write_text(json.dumps(stats_future.result(), indent=2))
    return dst
