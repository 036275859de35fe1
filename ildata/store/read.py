"""Reading a store: `load` memory-maps the shards and checks the structure; TrajectoryDataset
gives episodes, transitions and subsets as views of the mapped data.

Opening a store imports pyarrow (and its IPC reader) but neither `pyarrow.parquet` nor pandas,
and reads only metadata: see ildata/store/episodes.py and benchmarks/cold_start.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, Episode, EpisodeBatch, Obs, describe_array, describe_obs, flatten_obs, unflatten_obs
from ildata.fsutil import require_regular_file
from ildata.spaces import space_from_dict
from ildata.store.episodes import read_episodes
from ildata.store.layout import (
    DATA_FORMATS,
    EPISODE_INDEX,
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

# provenance `source_format` of a store written from several (`ildata.concat`, `ildata merge`)
CONCAT_FORMAT = "ildata-concat"

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


def single_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one array: its only chunk as it is (pyarrow's `combine_chunks` copies even
    then), else the chunks concatenated."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Inverse of `write.to_arrow`; zero-copy (a read-only view) for a single-chunk numeric column
    without nulls, whatever its nesting of fixed-size lists."""
    array = single_chunk(array)
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

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Transitions:
        """The transitions at `index` (an int, a slice, integer indices or a boolean mask), as a
        Transitions: a slice gives views, indices a gathered copy of just those rows."""
        rows: slice | np.ndarray = index if isinstance(index, slice) else np.asarray(index)
        if isinstance(rows, np.ndarray) and rows.ndim == 0:
            i = int(rows)
            if not -len(self) <= i < len(self):
                raise IndexError(f"transition {i} out of range for {len(self)} transitions")
            rows = slice(i, i + 1 or None)  # one transition stays a Transitions of length 1

        def take(obs: Obs) -> Obs:
            return unflatten_obs({k: v[rows] for k, v in flatten_obs(obs).items()})

        return Transitions(
            obs=take(self.obs),
            acts=self.acts[rows],
            next_obs=take(self.next_obs),
            dones=self.dones[rows],
            terminated=self.terminated[rows],
            rews=None if self.rews is None else self.rews[rows],
            episode_index=self.episode_index[rows],
        )

    def __repr__(self) -> str:
        fields = {"obs": describe_obs(self.obs), "acts": describe_array(self.acts)}
        if self.rews is not None:
            fields["rews"] = describe_array(self.rews)
        episodes = len(np.unique(self.episode_index)) if len(self) else 0
        body = ", ".join(f"{k}={v}" for k, v in fields.items())
        return f"Transitions({len(self)} from {episodes} episodes, {body})"


class StoredColumn:
    """A stored column that spans several Arrow chunks (shards, or the parts of `concat`), indexed
    like a numpy array without concatenating it: a slice inside one chunk is a view, anything
    else gathers only the rows asked for (one fancy index per chunk touched)."""

    def __init__(self, chunks: Sequence[np.ndarray]):
        self.chunks = list(chunks)
        sizes = np.array([len(c) for c in self.chunks], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.shape: tuple[int, ...] = (int(self.starts[-1]),) + tuple(self.chunks[0].shape[1:])
        self.dtype = self.chunks[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step != 1:
                return self[np.arange(start, stop, step)]
            if stop <= start:
                return self.chunks[0][0:0]
            first = int(np.searchsorted(self.starts, start, side="right")) - 1
            last = int(np.searchsorted(self.starts, stop, side="left")) - 1
            pieces = [self.chunks[c][max(start - self.starts[c], 0) : stop - self.starts[c]] for c in range(first, last + 1)]
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            rows = np.flatnonzero(rows)
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        chunk = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty(rows.shape + self.shape[1:], dtype=self.dtype)
        for c in np.unique(chunk).tolist():
            mask = chunk == c
            out[mask] = self.chunks[c][rows[mask] - self.starts[c]]
        return out


Column = np.ndarray | StoredColumn


@dataclass(frozen=True)
class Part:
    """One store a dataset reads from: its folder, fingerprint, provenance, and how many episode
    rows of the combined episode table are its (in order)."""

    path: Path
    fingerprint: str
    provenance: dict[str, Any]
    episodes: int
    links_outside: bool = False  # as `load` was told (a Hub cache snapshot)


def episode_ranges(ids: np.ndarray) -> list[list[int]]:
    """Episode indices as [start, stop) runs (compact provenance for a subset)."""
    if len(ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = ids[np.concatenate([[0], breaks])]
    stops = ids[np.concatenate([breaks - 1, [len(ids) - 1]])] + 1
    return np.stack([starts, stops], axis=1).tolist()


class TrajectoryDataset:
    """A memory-mapped store, a subset of one's episodes (`ds[2:5]`, `select`, `filter`, `split`),
    or several stores read as one (`ildata.concat`): always views of the mapped files.

    `info` is meta/info.json as read (a dict); `meta` is the same, typed (layout.DatasetInfo); for
    a concat, both describe the combination (provenance lists the parts). `path` is the store's
    folder (for a concat, the first part's; `parts` lists them all).
    """

    def __init__(
        self,
        root: Path,
        meta: DatasetInfo,
        table: pa.Table,
        episodes: pa.Table,
        subset: np.ndarray | None = None,
        *,
        parts: Sequence[Part] | None = None,
    ):
        self.path = root
        self.meta = meta
        self.info: dict[str, Any] = meta.to_dict()
        self.parts: tuple[Part, ...] = (
            tuple(parts) if parts is not None else (Part(root, meta.fingerprint, meta.provenance.to_dict(), episodes.num_rows),)
        )
        self._table = table
        self._episodes_all = episodes
        self._subset = subset
        all_lengths = to_numpy(episodes.column("length"))
        all_first = to_numpy(episodes.column("first_row"))
        ids = np.arange(len(all_lengths)) if subset is None else subset
        self._ids = ids
        self._lengths = all_lengths[ids]
        self._first_row = all_first[ids]
        self._columns: dict[str, Column] = {}
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
        """Content fingerprint of the stored files (the whole store, even for a subset; for a
        concat, a hash of its parts' fingerprints and episodes)."""
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
    def first_rows(self) -> np.ndarray:
        """Stored row (in `column(...)`) of each episode's first transition."""
        return self._first_row

    @property
    def episode_ids(self) -> np.ndarray:
        """Index of each episode of this (sub)set in the store's (or concat's) episode table."""
        return self._ids

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

    @property
    def collection(self) -> dict[str, Any] | None:
        """How the data was collected (`ildata collect`): policy, the expert's and a random
        policy's mean returns (the ends of the normalised score), or None."""
        value = self.meta.extra.get("collection")
        return value if isinstance(value, dict) else None

    def __len__(self) -> int:
        return int(len(self._ids))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by reference (the stores' paths and fingerprints, the episodes taken), never by
        value: a DataLoader worker started by spawn re-maps the files instead of receiving a copy."""
        parts = [(str(p.path), p.fingerprint, p.links_outside) for p in self.parts]
        return (_reopen, (parts, self._subset))

    def __repr__(self) -> str:
        where = repr(str(self.path)) if len(self.parts) == 1 else f"concat of {len(self.parts)} stores"
        subset = f" (subset of {self._episodes_all.num_rows})" if self.is_subset else ""
        lines = [f"TrajectoryDataset({where}, env={self.env_id})", f"  {len(self)} episodes{subset}, {self.num_transitions} transitions"]
        returns = self.returns
        if returns is not None and len(returns):
            lines[-1] += f", return {returns.mean():.6g} ± {returns.std():.3g} [{returns.min():.6g}, {returns.max():.6g}]"
        features = ", ".join(f"{k}: {f.dtype}{list(f.shape)}" for k, f in self.meta.features.items())
        lines.append(f"  features: {features}")
        return "\n".join(lines)

    # ---- columns
    def _column(self, name: str) -> Column:
        """A whole stored column as (memory-mapped, zero-copy) numpy: one array for a single
        shard, a StoredColumn over the chunks of several shards or parts."""
        if name not in self._columns:
            chunks = self._table.column(name).chunks
            arrays = [to_numpy(chunk) for chunk in chunks if len(chunk)]
            self._columns[name] = arrays[0] if len(arrays) == 1 else StoredColumn(arrays or [to_numpy(chunks[0])])
        return self._columns[name]

    def column(self, name: str) -> Column:
        """A stored per-transition column ("obs", "obs.key", "next_obs", "acts", "rews", ...)
        over every row of the store(s): index it with `transition_rows()` (zero-copy)."""
        if name not in self._table.column_names or name == INFOS:
            raise KeyError(f"no column {name!r} (columns: {', '.join(c for c in self._table.column_names if c != INFOS)})")
        return self._column(name)

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

    def transition_rows(self) -> slice | np.ndarray:
        """Stored row of every transition of this (sub)set, in order: a slice (views) when its
        episodes are contiguous in order, else an index array."""
        starts, lengths = self._first_row, self._lengths
        if len(starts) == 0:
            return slice(0, 0)
        if np.array_equal(starts[1:], (starts + lengths)[:-1]):
            return slice(int(starts[0]), int(starts[-1] + lengths[-1]))
        offsets = np.cumsum(lengths) - lengths
        return np.arange(int(lengths.sum())) - np.repeat(offsets - starts, lengths)

    _rows = transition_rows

    # ---- access
    @overload
    def __getitem__(self, index: int | np.integer) -> Episode: ...

    @overload
    def __getitem__(self, index: slice | Sequence[int] | np.ndarray) -> TrajectoryDataset: ...

    def __getitem__(self, index: int | np.integer | slice | Sequence[int] | np.ndarray) -> Episode | TrajectoryDataset:
        """`ds[i]` is an Episode; `ds[2:5]`, `ds[[0, 3]]` or a boolean mask a subset (shares the
        mapped data)."""
        if isinstance(index, slice):
            return self.select(np.arange(len(self))[index])
        if not isinstance(index, (int, np.integer)):
            return self.select(index)
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
        """All transitions as numpy arrays: views of the memory-mapped data for a whole store of
        one shard (several shards are concatenated: see `transition_chunks` for bounded memory)."""
        return self._transitions(self._rows(), slice(0, self.num_transitions))

    def transition_chunks(self) -> Iterator[Transitions]:
        """All transitions, in order, one Transitions per shard touched: views of the mapped
        shard for a whole store, so a store larger than memory is read with one shard's pages
        resident at most (`transitions()` would concatenate the shards)."""
        position = 0
        for rows in self._shard_spans():
            n = rows.stop - rows.start if isinstance(rows, slice) else len(rows)
            yield self._transitions(rows, slice(position, position + n))
            position += n

    def _shard_spans(self) -> Iterator[slice | np.ndarray]:
        """This (sub)set's stored transition rows, in order, cut where they change shard."""
        column = self._column("acts")
        starts = column.starts if isinstance(column, StoredColumn) else np.array([0, len(column)])
        rows = self._rows()
        if isinstance(rows, slice):
            for c in range(len(starts) - 1):
                start, stop = max(rows.start, int(starts[c])), min(rows.stop, int(starts[c + 1]))
                if start < stop:
                    yield slice(start, stop)
            return
        chunk = np.searchsorted(starts, rows, side="right") - 1
        yield from np.split(rows, np.flatnonzero(np.diff(chunk)) + 1) if len(rows) else []

    def _transitions(self, rows: slice | np.ndarray, positions: slice) -> Transitions:
        """The transitions at stored `rows`, which are this (sub)set's transitions `positions`."""
        n = self.num_transitions
        ends = np.cumsum(self._lengths) - 1
        dones = np.zeros(n, dtype=bool)
        dones[ends] = True
        terminated = np.zeros(n, dtype=bool)
        terminated[ends] = self.episode_column("terminated")
        if len(self.parts) == 1:
            episode_index = self._column(EPISODE_INDEX)[rows]
        else:  # each part's stored column counts from 0: a concat numbers its episodes itself
            first = int(np.searchsorted(ends, positions.start))
            last = int(np.searchsorted(ends, max(positions.start, positions.stop - 1))) + 1
            local = np.repeat(self._ids[first:last], self._lengths[first:last])
            offset = positions.start - (int(ends[first - 1]) + 1 if first else 0)
            episode_index = local[offset : offset + positions.stop - positions.start]
        return Transitions(
            obs=self._obs("obs", rows),
            acts=self._column("acts")[rows],
            next_obs=self._obs("next_obs", rows),
            dones=dones[positions],
            terminated=terminated[positions],
            rews=self._column("rews")[rows] if self.meta.has_rewards else None,
            episode_index=episode_index,
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
            column = self._infos()
            texts = column.slice(rows.start, rows.stop - rows.start) if isinstance(rows, slice) else column.take(pa.array(rows))
            infos = [decode_info(s) for s in texts.to_pylist()]
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
        from ildata.stats import FeatureStats, rollout_stats

        out: dict[str, Any] = rollout_stats(self._lengths, self.returns)
        out["n_transitions"] = self.num_transitions
        if self._subset is None and len(self.parts) == 1 and (self.path / STATS_FILE).is_file():
            out["features"] = json.loads((self.path / STATS_FILE).read_text())["features"]
        else:
            # Shard by shard: the same numbers as over the concatenation, which is never built.
            accumulators: dict[str, FeatureStats] = {}
            for tr in self.transition_chunks():
                arrays = {("obs" if not k else f"obs.{k}"): v for k, v in flatten_obs(tr.obs).items()}
                arrays["acts"] = tr.acts
                if tr.rews is not None:
                    arrays["rews"] = tr.rews
                for name, array in arrays.items():
                    accumulators.setdefault(name, FeatureStats(self.num_transitions, array.shape[1:])).add(array)
            empty = {name: {"count": 0} for name in self.meta.features if name != INFOS}  # an empty subset
            out["features"] = {name: accumulator.result() for name, accumulator in accumulators.items()} or empty
        return out

    # ---- checks
    def verify(self, *, raise_errors: bool = False) -> list[str]:
        """Every problem of the whole store's files (fingerprint, shards against info.json and the
        episode table, flags, returns, spaces), one line each; [] when it is sound. A concat
        checks every part (its lines then start with the part's path).
        `raise_errors=True` raises the first one as a DataError instead."""
        from ildata.store.verify import verify_store

        if len(self.parts) == 1:
            problems = verify_store(self.path)
        else:
            problems = [f"{part.path}: {problem}" for part in self.parts for problem in verify_store(part.path)]
        if problems and raise_errors:
            raise DataError(problems[0], subject=self.path if len(self.parts) == 1 else None)
        return problems

    # ---- subsets (no data copies: they share the memory-mapped table)
    def select(self, indices: Sequence[int] | np.ndarray) -> TrajectoryDataset:
        """The episodes at `indices` (positions in this (sub)set, negative ones from the end, or a
        boolean mask of len(self)), in that order."""
        array = np.asarray(indices)
        if array.dtype == np.bool_:
            if array.shape != (len(self),):
                raise IndexError(f"a boolean episode mask needs {len(self)} values, got {array.shape}")
            array = np.flatnonzero(array)
        elif array.size and array.dtype.kind not in "iu":
            raise TypeError(f"episode indices must be integers, got {array.dtype}")
        array = array.astype(np.int64).reshape(-1)
        if len(array) and (array.min() < -len(self) or array.max() >= len(self)):
            raise IndexError(f"episode index out of range for {len(self)} episodes")
        return TrajectoryDataset(self.path, self.meta, self._table, self._episodes_all, self._ids[array], parts=self.parts)

    def filter(
        self,
        predicate: pl.Expr | Callable[[dict[str, Any]], bool] | None = None,
        *,
        min_return: float | None = None,
        max_return: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        terminated: bool | None = None,
        truncated: bool | None = None,
    ) -> TrajectoryDataset:
        """Episodes meeting every given condition, in order.

        `predicate` is a polars expression over the episode table (`pl.col("return") > 400`;
        columns: episode_index, length, return, terminated, truncated, termination_known,
        first_row, seed; evaluated vectorised), or a function called with each episode's row
        as a dict and returning a bool."""
        keep = np.ones(len(self), dtype=bool)
        if predicate is not None:
            keep &= self._predicate_mask(predicate)
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

    def _predicate_mask(self, predicate: pl.Expr | Callable[[dict[str, Any]], bool]) -> np.ndarray:
        import polars as pl

        table = self.episodes
        if isinstance(predicate, pl.Expr):
            try:
                result = table.select(predicate.alias("keep")).to_series()
            except pl.exceptions.PolarsError as exc:
                raise DataError(f"cannot filter episodes by {predicate} ({str(exc).splitlines()[0]})") from None
            if result.dtype != pl.Boolean or len(result) != len(self):
                raise DataError(f"a filter expression must give one boolean per episode, {predicate} gives {len(result)} {result.dtype}")
            return result.fill_null(False).to_numpy().astype(bool)
        if not callable(predicate):
            raise TypeError(f"filter takes a polars expression or a function of an episode row, not {type(predicate).__name__}")
        return np.fromiter((bool(predicate(row)) for row in table.iter_rows(named=True)), dtype=bool, count=len(self))

    def split(self, fractions: float | Sequence[float], *, seed: int = 0) -> tuple[TrajectoryDataset, ...]:
        """Random episode-level split; order inside each part is kept. A float f gives two parts
        (f, 1 - f); a sequence of fractions summing to 1 gives one part each
        (`ds.split([0.8, 0.1, 0.1], seed=0)`). Sizes are rounded at the cumulative cuts, so every
        episode is in exactly one part."""
        shares = [fractions, 1.0 - fractions] if isinstance(fractions, (int, float)) else list(fractions)
        if isinstance(fractions, (int, float)) and not 0.0 < fractions < 1.0:
            raise ValueError("fraction must be strictly between 0 and 1")
        if len(shares) < 2 or any(not 0.0 < f < 1.0 for f in shares) or not np.isclose(sum(shares), 1.0):
            raise ValueError(f"split fractions must be at least two numbers in (0, 1) that sum to 1, got {shares}")
        order = np.random.default_rng(seed).permutation(len(self))
        cuts = np.round(np.cumsum(shares)[:-1] * len(self)).astype(np.int64)
        return tuple(self.select(np.sort(part)) for part in np.split(order, cuts))

    # ---- writing
    def lineage(self) -> list[dict[str, Any]]:
        """Where this (sub)set's episodes come from: per store, its path, fingerprint, provenance
        and the episodes taken ([start, stop) runs of its episode indices; null for all of them)."""
        out = []
        offset = 0
        for part in self.parts:
            mine = self._ids[(self._ids >= offset) & (self._ids < offset + part.episodes)] - offset
            whole = len(mine) == part.episodes and np.array_equal(mine, np.arange(part.episodes))
            out.append(
                {
                    "path": str(part.path.absolute()),
                    "fingerprint": part.fingerprint,
                    "episodes": None if whole else episode_ranges(mine),
                    "provenance": part.provenance,
                }
            )
            offset += part.episodes
        return out

    def save(self, dst: str | Path, *, overwrite: bool = False, data_format: str = "arrow") -> TrajectoryDataset:
        """Materialise this (sub)set as a new store, keeping what the data is: env id, the
        collection info (expert/random reference returns) and other info.json extras, and a
        provenance pointing at the parent store(s) (path, fingerprint, which episodes)."""
        from ildata.store.write import save

        parents = self.lineage()
        extra: dict[str, Any] = {"parents": parents}
        if len(parents) == 1:
            extra["source_fingerprint"] = parents[0]["fingerprint"]
            extra["source_episodes"] = parents[0]["episodes"]
        provenance = Provenance(
            source_path=str(self.path) if len(parents) == 1 else None,
            source_format=f"{FORMAT_NAME}-v{FORMAT_VERSION}" if len(parents) == 1 else CONCAT_FORMAT,
            extra=extra,
        )
        return save(
            self.to_batch(),
            dst,
            observation_space=None if self.meta.spaces_inferred else self.observation_space,
            action_space=None if self.meta.spaces_inferred else self.action_space,
            env_id=self.env_id,
            overwrite=overwrite,
            provenance=provenance,
            extra_info=self.meta.extra,
            data_format=data_format,
        )


# --------------------------------------------------------------------------- opening


def _reopen(parts: list[tuple[str, str, bool]], subset: np.ndarray | None) -> TrajectoryDataset:
    """Inverse of `TrajectoryDataset.__reduce__`: the same episodes of the same (unchanged) stores."""
    opened = []
    for path, fingerprint, links_outside in parts:
        ds = load(path, links_outside=links_outside)
        if ds.fingerprint != fingerprint:
            raise DataError(f"changed since it was opened (fingerprint {ds.fingerprint}, was {fingerprint})", subject=path)
        opened.append(ds)
    if len(opened) > 1:
        from ildata.combine import concat

        whole = concat(opened)
    else:
        whole = opened[0]
    return whole if subset is None else whole.select(subset)


def read_info(root: Path) -> DatasetInfo:
    """meta/info.json of the store at `root`, parsed and type-checked."""
    if not root.exists():
        raise DataError("no such file or directory", subject=root)
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
    part = Part(root, info.fingerprint, info.provenance.to_dict(), episodes.num_rows, links_outside)
    return TrajectoryDataset(root, info, table, episodes, parts=[part])
