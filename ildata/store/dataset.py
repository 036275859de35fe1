"""TrajectoryDataset: a store opened (memory-mapped, its structure checked: `TrajectoryDataset.open`,
what `ildata.store.load` calls), a subset of its episodes, or several stores read as one;
episodes, transitions and subsets are views of the mapped data.

Opening a store imports pyarrow (and its IPC reader) but neither `pyarrow.parquet` nor pandas,
and reads only metadata: see ildata/store/episodes.py and benchmarks/cold_start.py.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, Episode, EpisodeBatch, Obs, flatten_obs, unflatten_obs
from ildata.spaces import space_from_dict
from ildata.store.columns import Column, StoredColumn, decode_info, join_obs, numpy_column, to_numpy
from ildata.store.layout import EPISODE_INDEX, FORMAT_NAME, FORMAT_VERSION, INFOS, STATS_FILE, DatasetInfo, Provenance
from ildata.store.parts import CONCAT_FORMAT, Part, Piece, join, lineage
from ildata.store.selection import episode_positions, predicate_mask, split_positions
from ildata.store.shards import open_files, read_info
from ildata.store.transitions import Transitions, end_flags, episode_numbers, shard_spans
from ildata.store.transitions import transition_rows as stored_rows
from ildata.store.verify import content_problems, structure_problems, verify_store

if TYPE_CHECKING:
    import polars as pl
    from gymnasium import Space


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

    @classmethod
    def open(cls, root: Path, *, verify: bool = False, links_outside: bool = False) -> TrajectoryDataset:
        """The store at `root`, its structure checked (and its content, with `verify`): see `ildata.store.load`."""
        info = read_info(root)
        table, episodes = open_files(root, info, full=verify, links_outside=links_outside)
        for problem in structure_problems(info, table, episodes):
            raise DataError(problem, subject=root)
        if verify:
            for problem in content_problems(root, info, table, episodes):
                raise DataError(problem, subject=root)
        part = Part(root, info.fingerprint, info.provenance.to_dict(), episodes.num_rows, links_outside)
        return cls(root, info, table, episodes, parts=[part])

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
        if len(parts) == 1 and self.meta.fingerprint == self.parts[0].fingerprint:
            return (_reopen, (parts, self._subset))
        # A combination also carries its own info.json (its provenance lists every part), compressed:
        # the pickle stays about a kilobyte however long the paths.
        meta = zlib.compress(json.dumps(self.meta.to_dict()).encode())
        return (_reopen, (parts, self._subset, meta, self._table.column_names))

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
            self._columns[name] = numpy_column(self._table, name)
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
        return stored_rows(self._first_row, self._lengths)

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
        column = self._column("acts")
        shard_starts = column.starts if isinstance(column, StoredColumn) else np.array([0, len(column)])
        position = 0
        for rows in shard_spans(self._rows(), shard_starts):
            n = rows.stop - rows.start if isinstance(rows, slice) else len(rows)
            yield self._transitions(rows, slice(position, position + n))
            position += n

    def _transitions(self, rows: slice | np.ndarray, positions: slice) -> Transitions:
        """The transitions at stored `rows`, which are this (sub)set's transitions `positions`."""
        dones, terminated = end_flags(self._lengths, self.episode_column("terminated"))
        if len(self.parts) == 1:
            episode_index = self._column(EPISODE_INDEX)[rows]
        else:  # each part's stored column counts from 0: a concat numbers its episodes itself
            episode_index = episode_numbers(self._ids, self._lengths, positions)
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
        rows = self._rows()
        lengths = self._lengths
        flat = {
            key: join_obs(self._column(column)[rows], self._column(f"next_{column}")[rows], lengths)
            for key, column in self.meta.obs_columns("obs").items()
        }
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
        positions = episode_positions(indices, len(self))
        return TrajectoryDataset(self.path, self.meta, self._table, self._episodes_all, self._ids[positions], parts=self.parts)

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
            keep &= predicate_mask(self.episodes, predicate)
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

    def split(self, fractions: float | Sequence[float], *, seed: int = 0) -> tuple[TrajectoryDataset, ...]:
        """Random episode-level split; order inside each part is kept. A float f gives two parts
        (f, 1 - f); a sequence of fractions summing to 1 gives one part each
        (`ds.split([0.8, 0.1, 0.1], seed=0)`). Sizes are rounded at the cumulative cuts, so every
        episode is in exactly one part."""
        return tuple(self.select(part) for part in split_positions(len(self), fractions, seed))

    # ---- writing
    def lineage(self) -> list[dict[str, Any]]:
        """Where this (sub)set's episodes come from: per store, its path, fingerprint, provenance
        and the episodes taken ([start, stop) runs of its episode indices; null for all of them)."""
        return lineage(self.parts, self._ids)

    def save(self, dst: str | Path, *, overwrite: bool = False, data_format: str = "arrow") -> TrajectoryDataset:
        """Materialise this (sub)set as a new store, keeping what the data is: env id, the
        collection info (expert/random reference returns) and other info.json extras, and a
        provenance pointing at the parent store(s) (path, fingerprint, which episodes)."""
        from ildata.store.write import write_dataset  # the writer only when writing: `load` stays light

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
        path = write_dataset(
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
        return TrajectoryDataset.open(path)


def _reopen(
    parts: list[tuple[str, str, bool]], subset: np.ndarray | None, meta: bytes | None = None, columns: Sequence[str] = ()
) -> TrajectoryDataset:
    """Inverse of `TrajectoryDataset.__reduce__`: the same episodes of the same (unchanged) stores;
    a combination (`ildata.concat`) is joined again under its own `meta`."""
    opened = []
    for path, fingerprint, links_outside in parts:
        ds = TrajectoryDataset.open(Path(path), links_outside=links_outside)
        if ds.fingerprint != fingerprint:
            raise DataError(f"changed since it was opened (fingerprint {ds.fingerprint}, was {fingerprint})", subject=path)
        opened.append(ds)
    whole = opened[0]
    if meta is not None:
        joined = join([Piece(ds._table, ds._episodes_all, ds.episode_ids, ds.parts) for ds in opened], columns)
        info = DatasetInfo.from_dict(json.loads(zlib.decompress(meta)))
        whole = TrajectoryDataset(whole.path, info, joined.table, joined.episodes, parts=joined.parts)
    return whole if subset is None else whole.select(subset)
