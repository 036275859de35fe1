"""Reading a store: `load` memory-maps the shards and checks the structure; TrajectoryDataset
gives episodes, transitions and subsets as views of the mapped data.

Opening a store imports pyarrow (and its IPC reader) but neither `pyarrow.parquet` nor pandas,
and reads only metadata: see ildata/store/episodes.py and benchmarks/cold_start.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, Episode, EpisodeBatch, Obs, flatten_obs, unflatten_obs
from ildata.fsutil import require_regular_file
from ildata.spaces import space_from_dict
from ildata.store.episodes import read_episodes
from ildata.store.layout import (
    DATA_FORMATS,
    EPISODES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INFO_FILE,
    INFOS,
    STATS_FILE,
    DatasetInfo,
    Provenance,
    is_store,
)

if TYPE_CHECKING:
    import polars as pl
    from gymnasium import Space


# pyarrow's own Array.to_numpy imports pandas (+0.3 s in a fresh process) even for plain numbers,
# so columns become numpy arrays straight from their buffers: zero-copy, read-only views.
_NUMPY_TYPES: dict[pa.DataType, np.dtype] = {
    pa.from_numpy_dtype(np.dtype(code)): np.dtype(code) for code in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
}


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """A bit-packed Arrow buffer (booleans, validity) as a numpy bool array (a copy, 1/8 the size)."""
    packed = np.frombuffer(buffer, dtype=np.uint8, count=(offset + length + 7) // 8)
    return np.unpackbits(packed, bitorder="little", count=offset + length)[offset:].view(np.bool_)


def _flat_numpy(array: pa.Array) -> np.ndarray:
    """A primitive or boolean Arrow array as numpy; nulls become NaN (in float64 for integers)."""
    length, offset = len(array), array.offset
    buffers = array.buffers()
    if pa.types.is_boolean(array.type):
        values = _bits(buffers[1], offset, length) if length else np.zeros(0, np.bool_)
    elif array.type in _NUMPY_TYPES:
        dtype = _NUMPY_TYPES[array.type]
        values = np.frombuffer(buffers[1], dtype=dtype, count=offset + length)[offset:] if length else np.zeros(0, dtype)
        values.flags.writeable = False  # a view of the (read-only) mapped file
    else:
        raise DataError(f"column of type {array.type} cannot be read as a numpy array")
    if array.null_count:
        valid = _bits(buffers[0], offset, length)
        values = np.where(valid, values, np.nan)
    return values


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Inverse of `write.to_arrow`; zero-copy (a read-only view) for a single-chunk numeric column
    without nulls, whatever its nesting of fixed-size lists."""
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    shape: list[int] = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        size = array.type.list_size
        # `.values` ignores the parent's slice offset, so slice it here (`flatten()` would do the
        # same but imports pyarrow.compute, ~30 ms cold); columns are checked to hold no nulls.
        array = array.values.slice(array.offset * size, len(array) * size)
    return _flat_numpy(array).reshape(shape)


def decode_info(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # kept verbatim (e.g. a jsonpickle payload that was not plain JSON)
    except RecursionError:
        raise DataError("an info's JSON is nested too deeply to decode") from None


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


class TrajectoryDataset:
    """A memory-mapped store, or a subset of one's episodes (`select`, `filter`, `split`).

    `info` is meta/info.json as read (a dict); `meta` is the same, typed (layout.DatasetInfo).
    """

    def __init__(self, root: Path, meta: DatasetInfo, table: pa.Table, episodes: pa.Table, subset: np.ndarray | None = None):
        self.path = root
        self.meta = meta
        self.info: dict[str, Any] = meta.to_dict()
        self._table = table
        self._episodes_all = episodes
        self._subset = subset
        all_lengths = to_numpy(episodes.column("length"))
        all_first = to_numpy(episodes.column("first_row"))
        ids = np.arange(len(all_lengths)) if subset is None else subset
        self._ids = ids
        self._lengths = all_lengths[ids]
        self._first_row = all_first[ids]
        self._columns: dict[str, np.ndarray] = {}
        self._infos_checked = False
        self._observation_space: Space | None = None
        self._action_space: Space | None = None

    # ---- metadata
    @property
    def observation_space(self) -> Space:
        if self._observation_space is None:
            self._observation_space = space_from_dict(self.meta.observation_space)
        return self._observation_space

    @property
    def action_space(self) -> Space:
        if self._action_space is None:
            self._action_space = space_from_dict(self.meta.action_space)
        return self._action_space

    @property
    def env_id(self) -> str | None:
        return self.meta.env_id

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the stored files (the whole store, even for a subset)."""
        return self.meta.fingerprint

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
    def episodes(self) -> pl.DataFrame:
        """The episode table of this (sub)set as a polars DataFrame."""
        import polars as pl

        table = self._episodes_all if self._subset is None else self._episodes_all.take(pa.array(self._ids))
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def episode_column(self, name: str) -> np.ndarray:
        """One column of the episode table for this (sub)set, as numpy."""
        return to_numpy(self._episodes_all.column(name))[self._ids]

    @property
    def returns(self) -> np.ndarray | None:
        return self.episode_column("return") if self.meta.has_rewards else None

    def __len__(self) -> int:
        return int(len(self._ids))

    def __repr__(self) -> str:
        return f"TrajectoryDataset({str(self.path)!r}, episodes={len(self)}, transitions={self.num_transitions})"

    # ---- columns
    def _column(self, name: str) -> np.ndarray:
        """A whole stored column as a (memory-mapped, zero-copy) numpy array."""
        if name not in self._columns:
            self._columns[name] = to_numpy(self._table.column(name))
        return self._columns[name]

    def _infos(self) -> pa.ChunkedArray:
        """The infos column, fully validated the first time it is decoded: its offsets index into
        the mapped file, and out-of-range ones would crash the process rather than raise. (The
        other columns are fixed-size, validated on load; validating this one costs ~14 ms per 2M
        rows, so `load` leaves it to the first episode that needs it.)"""
        column = self._table.column(INFOS)
        if not self._infos_checked:
            try:
                column.validate(full=True)
            except pa.ArrowException as exc:
                raise DataError(f"corrupted infos column ({exc})", subject=self.path) from None
            self._infos_checked = True
        return column

    def _obs(self, prefix: str, rows: slice | np.ndarray) -> Obs:
        return unflatten_obs({k: self._column(c)[rows] for k, c in self.meta.obs_columns(prefix).items()})

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
            k: np.concatenate([self._column(c)[rows], self._column(f"next_{c}")[last]]) for k, c in self.meta.obs_columns("obs").items()
        }
        record = self._episodes_all.slice(e, 1).to_pylist()[0]
        infos = None
        if self.meta.has_infos:
            infos = [decode_info(s) for s in self._infos().slice(rows.start, rows.stop - rows.start).to_pylist()]
        return Episode(
            obs=unflatten_obs(flat_obs),
            acts=self._column("acts")[rows],
            rews=self._column("rews")[rows] if self.meta.has_rewards else None,
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
            rews=self._column("rews")[rows] if self.meta.has_rewards else None,
            episode_index=self._column("episode_index")[rows],
        )

    def to_batch(self) -> EpisodeBatch:
        """Columnar episodes (obs with T+1 rows each), for writers of other formats."""
        from ildata.store.write import episode_ordinals

        rows = self._rows()
        lengths = self._lengths
        ordinal = episode_ordinals(lengths)
        ends = np.cumsum(lengths) - 1
        flat: dict[str, np.ndarray] = {}
        for key, column in self.meta.obs_columns("obs").items():
            obs = self._column(column)[rows]
            next_obs = self._column(f"next_{column}")[rows]
            out = np.empty((obs.shape[0] + len(lengths),) + obs.shape[1:], dtype=obs.dtype)
            out[np.arange(obs.shape[0]) + ordinal] = obs
            out[ends + np.arange(len(lengths)) + 1] = next_obs[ends]
            flat[key] = out
        infos = None
        if self.meta.has_infos:
            infos = [decode_info(s) for s in self._infos().take(pa.array(np.arange(self._table.num_rows)[rows])).to_pylist()]
        seeds = self.episode_column("seed").astype(np.float64)
        return EpisodeBatch(
            obs=unflatten_obs(flat),
            acts=np.asarray(self._column("acts")[rows]),
            lengths=lengths,
            terminated=self.episode_column("terminated"),
            truncated=self.episode_column("truncated"),
            termination_known=self.episode_column("termination_known"),
            rews=np.asarray(self._column("rews")[rows]) if self.meta.has_rewards else None,
            infos=infos,
            seeds=None if np.isnan(seeds).all() else np.nan_to_num(seeds, nan=-1).astype(np.int64),
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

    # ---- checks
    def verify(self, *, raise_errors: bool = False) -> list[str]:
        """Every problem of the whole store's files (fingerprint, shards against info.json and the
        episode table, flags, returns, spaces), one line each; [] when it is sound.
        `raise_errors=True` raises the first one as a DataError instead."""
        from ildata.store.verify import verify_store

        problems = verify_store(self.path)
        if problems and raise_errors:
            raise DataError(problems[0], subject=self.path)
        return problems

    # ---- subsets (no data copies: they share the memory-mapped table)
    def select(self, indices: Sequence[int] | np.ndarray) -> TrajectoryDataset:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"episode index out of range for {len(self)} episodes")
        return TrajectoryDataset(self.path, self.meta, self._table, self._episodes_all, self._ids[indices])

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
        from ildata.store.write import save

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


# --------------------------------------------------------------------------- opening


def read_info(root: Path) -> DatasetInfo:
    """meta/info.json of the store at `root`, parsed and type-checked."""
    if not is_store(root):
        raise DataError(f"{root} is not an ildata dataset (no {INFO_FILE}); use `ildata convert` first")
    path = require_regular_file(root / INFO_FILE)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON ({exc})", subject=path) from None
    return DatasetInfo.from_dict(data, subject=path)


def read_shard(path: Path, *, full: bool = False) -> pa.Table:
    """One shard as a single-chunk table: Arrow shards are memory-mapped (no copy), parquet ones
    decoded into memory. Validated before any buffer is touched: fixed-size columns fully (free:
    their layout has no offsets), the infos column structurally (fully with `full`, or when first
    decoded), so that corrupted offsets are a DataError, never a crash."""
    require_regular_file(path)
    try:
        if path.suffix == DATA_FORMATS["parquet"]:
            import pyarrow.parquet as pq

            table = pq.read_table(path).combine_chunks()
        else:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        for name, column in zip(table.column_names, table.columns):
            column.validate(full=full or name != INFOS)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"corrupted data ({exc})", subject=path) from None
    return table


def open_files(root: Path, info: DatasetInfo, *, full: bool = False, links_outside: bool = False) -> tuple[pa.Table, pa.Table]:
    """The shards (concatenated, zero-copy) and the episode table, each validated (`read_shard`)."""
    tables = [read_shard(path, full=full) for path in info.data_paths(root, links_outside=links_outside)]
    try:
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    except pa.ArrowException as exc:
        raise DataError(f"shards do not share one schema ({exc})", subject=root) from None
    return table, read_episodes(root / EPISODES_FILE)


def load(path: str | Path, *, verify: bool = False, links_outside: bool = False) -> TrajectoryDataset:
    """Open a store (memory-mapped; nothing is read into memory until used).

    Always checks the structure (row counts, columns and their types against info.json, episode
    table offsets and totals): a damaged store is a DataError, not wrong data. `verify=True` also
    re-hashes the files against the fingerprint and checks the content (`ildata verify`).
    `links_outside`: shards may be symlinks to elsewhere (a huggingface_hub cache snapshot).
    """
    if isinstance(path, str) and path.startswith("hf://"):
        from ildata.hub import load_hf

        return load_hf(path)
    from ildata.store.verify import content_problems, structure_problems

    root = Path(path)
    info = read_info(root)
    table, episodes = open_files(root, info, full=verify, links_outside=links_outside)
    for problem in structure_problems(info, table, episodes):
        raise DataError(problem, subject=root)
    if verify:
        for problem in content_problems(root, info, table, episodes):
            raise DataError(problem, subject=root)
    return TrajectoryDataset(root, info, table, episodes)
