"""d3rlpy -> ildata: read a dump episode range by episode range (see the package docstring for
how a dump ildata wrote and one from d3rlpy itself are recovered)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, unflatten_obs
from ildata.formats import SourceChunks, SourceRead, chunk_ranges
from ildata.formats.d3rlpy_dump.layout import (
    COLUMNS,
    DATASET_VERSION,
    ILDATA,
    h5_data,
    h5_dataset,
    h5_member,
    h5_text,
    hdf5_errors,
    observation_names,
    open_dump_file,
    row_count,
)


def read(path: Path) -> SourceRead:
    """Read a d3rlpy h5 dump (episodes recovered as described in the package docstring): the
    one-chunk case of `read_chunks`."""
    with open_dump_file(path) as h5, hdf5_errors():
        dump = _open_dump(h5)
        batch = _read_range(dump, 0, dump.n_episodes)
        assert batch is not None  # `_open_dump` checked that some episode has a usable step
        return SourceRead(batch=batch, **dump.source_meta())


def read_chunks(path: Path) -> SourceChunks:
    """The dump a group of episodes of about CHUNK_BYTES at a time (each read with one h5py
    read per array and episode); the file stays open while the chunks are read. The notes and
    totals come from the episodes' shapes and flags, read before any data."""
    h5 = open_dump_file(path)
    try:
        with hdf5_errors():
            dump = _open_dump(h5)
        ranges = chunk_ranges(dump.sizes, _step_bytes(h5))
    except BaseException:
        h5.close()
        raise

    def chunks() -> Iterator[EpisodeBatch]:
        with h5:
            for start, stop in ranges:
                with hdf5_errors():
                    batch = _read_range(dump, start, stop)
                if batch is not None:
                    yield batch

    return SourceChunks(chunks=chunks(), total_transitions=int(dump.lengths.sum()), **dump.source_meta())


@dataclass
class _Dump:
    """An opened dump: what is known from its shapes and per-episode flags, before any data."""

    h5: Any
    n_episodes: int
    sizes: np.ndarray  # rows of each d3rlpy episode
    terminated: np.ndarray
    lengths: np.ndarray  # ildata steps of each episode (0: dropped)
    meta: dict[str, Any] | None  # ildata's metadata, for a dump ildata wrote
    padded: np.ndarray | None
    notes: list[str]

    def source_meta(self) -> dict[str, Any]:
        if self.meta is None:
            return dict(format="d3rlpy-h5", notes=list(self.notes))
        from ildata.spaces import space_from_dict

        return dict(
            format="d3rlpy-h5",
            observation_space=space_from_dict(self.meta["observation_space"]),
            action_space=space_from_dict(self.meta["action_space"]),
            env_id=self.meta.get("env_id"),
            notes=list(self.notes),
        )


def _open_dump(h5: Any) -> _Dump:
    import h5py

    if not all(h5.get(k, getlink=True) is not None for k in ("columns", "num_episodes", "version")):
        raise DataError("not a d3rlpy dump (no columns/num_episodes/version datasets)")
    version = h5_text(h5_data(h5, "version"))
    if version != DATASET_VERSION:
        raise DataError(f"d3rlpy dataset version {version} is not supported (expected {DATASET_VERSION})")
    columns = [h5_text(c) for c in h5_data(h5, "columns")]
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise DataError(f"d3rlpy dump has no {missing[0]!r} column")
    n_episodes = int(h5_data(h5, "num_episodes"))
    if n_episodes < 1:
        raise DataError("d3rlpy dump has no episodes")
    # Shapes and flags only (one small read per episode): what the chunks are cut by.
    sizes = np.array([row_count(h5_dataset(h5, f"actions_{i}")) for i in range(n_episodes)], dtype=np.int64)
    terminated = np.array([bool(h5_data(h5, f"terminated_{i}")) for i in range(n_episodes)], dtype=bool)
    extra = h5_member(h5, ILDATA)
    if isinstance(extra, h5py.Group) and "meta" in extra.attrs:
        padded = h5_data(extra, "padded").astype(bool)
        if len(padded) != n_episodes or (padded == terminated).any():
            raise DataError("ildata's episode table in the dump does not match its episodes")
        meta = json.loads(extra.attrs["meta"])
        notes = ["written by ildata: restored exactly"]
        return _Dump(h5, n_episodes, sizes, terminated, sizes - padded, meta, padded, notes)
    return _Dump(h5, n_episodes, sizes, terminated, *_foreign_plan(sizes, terminated))


def _step_bytes(h5: Any) -> float:
    """Bytes of one step of episode 0's observations, actions and rewards (chunk sizing)."""
    names = [*observation_names(h5, 0), "actions_0", "rewards_0"]
    return float(sum(h5_dataset(h5, n).dtype.itemsize * int(np.prod(h5_dataset(h5, n).shape[1:], dtype=np.int64)) for n in names))


@dataclass
class _D3Episode:
    observations: list[np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray


def _read_episode(h5: Any, i: int) -> _D3Episode:
    observations = [h5_data(h5, name) for name in observation_names(h5, i)]
    episode = _D3Episode(observations, h5_data(h5, f"actions_{i}"), h5_data(h5, f"rewards_{i}"))
    n = len(episode.actions)
    if any(len(o) != n for o in observations) or len(episode.rewards) != n:
        raise DataError(f"episode {i}: observations, actions and rewards have different lengths")
    return episode


def _concat(episodes: list[_D3Episode], field: str) -> Any:
    if field == "observations":
        width = {len(e.observations) for e in episodes}
        if len(width) != 1:
            raise DataError("episodes have different numbers of observation arrays")
        return [np.concatenate([e.observations[j] for e in episodes]) for j in range(width.pop())]
    return np.concatenate([getattr(e, field) for e in episodes])


def _with_final_rows(obs_rows: list[np.ndarray], lengths: np.ndarray, terminated: np.ndarray, finals: list[np.ndarray]) -> list[np.ndarray]:
    """d3rlpy observation rows -> T+1 rows per episode: each terminated episode's final
    observation (absent from d3rlpy's rows) is taken from `finals`, one row per such episode."""
    n_obs = int(lengths.sum() + len(lengths))
    final_rows = (np.cumsum(lengths + 1) - 1)[terminated]
    from_d3 = np.ones(n_obs, dtype=bool)
    from_d3[final_rows] = False
    obs = []
    for rows, final in zip(obs_rows, finals):
        out = np.empty((n_obs, *rows.shape[1:]), dtype=rows.dtype)
        out[from_d3] = rows
        out[final_rows] = final
        obs.append(out)
    return obs


def _read_range(dump: _Dump, start: int, stop: int) -> EpisodeBatch | None:
    """Episodes `start` .. `stop` - 1 as ildata episodes (None when all of them are dropped)."""
    if dump.meta is not None:
        return _read_ildata([_read_episode(dump.h5, i) for i in range(start, stop)], dump, start, stop)
    kept = [i for i in range(start, stop) if dump.lengths[i] >= 1]  # a loop over episodes only
    if not kept:
        return None
    return _read_foreign([_read_episode(dump.h5, i) for i in kept], dump.terminated[kept], dump.lengths[kept])


def _read_ildata(episodes: list[_D3Episode], dump: _Dump, start: int, stop: int) -> EpisodeBatch:
    """Episodes of a dump ildata wrote: undo the padding and restore final observations exactly."""
    assert dump.meta is not None and dump.padded is not None
    extra, meta, rows = dump.h5[ILDATA], dump.meta, slice(start, stop)
    padded, terminated, lengths = dump.padded[rows], dump.terminated[rows], dump.lengths[rows]
    sizes = dump.sizes[rows]
    obs_rows = _concat(episodes, "observations")
    # Final observations are stored for terminated episodes only: those of this range.
    before = int(dump.terminated[:start].sum())
    final_rows = slice(before, before + int(terminated.sum()))
    finals = [h5_data(extra, f"final_observations_{j}", rows=final_rows) for j in range(len(obs_rows))]
    # Terminated episodes get their stored final observation back after their T rows.
    obs = _with_final_rows(obs_rows, lengths, terminated, finals)
    step = np.ones(int(sizes.sum()), dtype=bool)
    step[(np.cumsum(sizes) - 1)[padded]] = False  # drop padding steps
    actions = _concat(episodes, "actions")[step]
    actions = actions.reshape(len(actions), *meta["action_shape"])
    rewards = _concat(episodes, "rewards")[step].reshape(-1)
    keys = meta["observation_keys"] or [""]
    return EpisodeBatch(
        obs=unflatten_obs(dict(zip(keys, obs))),
        acts=actions,
        lengths=lengths,
        terminated=terminated,
        truncated=h5_data(extra, "truncated", rows=rows),
        termination_known=h5_data(extra, "termination_known", rows=rows),
        rews=rewards if meta["has_rewards"] else None,
        seeds=h5_data(extra, "seeds", required=False, rows=rows),
    )


def _foreign_plan(sizes: np.ndarray, terminated: np.ndarray) -> tuple[np.ndarray, None, None, list[str]]:
    """A dump from d3rlpy itself, from its episodes' sizes and flags: ildata steps per episode
    (0: dropped), and the notes (see the package docstring)."""
    notes: list[str] = []
    # A time-out episode of N rows holds N-1 usable steps; one of 1 row holds none.
    usable = np.where(terminated, sizes, sizes - 1)
    if (usable < 1).any():
        dropped = int((usable < 1).sum())
        notes.append(f"{dropped} time-out episode(s) of a single step dropped: d3rlpy keeps no observation after it")
        if (usable < 1).all():
            raise DataError("no episode has a usable step")
    kept = usable >= 1
    n_timeout = int((~terminated[kept]).sum())
    if n_timeout:
        notes.append(
            f"{n_timeout} time-out episode(s): d3rlpy does not store the observation after their last "
            "action, so that step was dropped and its observation kept as the final one (as d3rlpy samples them)"
        )
    if terminated[kept].any():
        notes.append(
            f"{int(terminated[kept].sum())} terminated episode(s): d3rlpy does not store the final observation; "
            "zeros stand in for it, as in d3rlpy's own transitions"
        )
    return np.maximum(usable, 0), None, None, notes


def _read_foreign(episodes: list[_D3Episode], terminated: np.ndarray, usable: np.ndarray) -> EpisodeBatch:
    """Kept episodes of a dump from d3rlpy itself: recover what it stores."""
    sizes = np.array([len(e.actions) for e in episodes])
    obs_rows = _concat(episodes, "observations")
    # Observation rows: d3rlpy's rows, plus a zero row after every terminated episode.
    obs = _with_final_rows(obs_rows, usable, terminated, [np.zeros((), o.dtype) for o in obs_rows])
    step = np.ones(int(sizes.sum()), dtype=bool)
    step[(np.cumsum(sizes) - 1)[~terminated]] = False
    actions = _concat(episodes, "actions")[step]
    if actions.ndim == 2 and actions.shape[1] == 1 and np.issubdtype(actions.dtype, np.integer):
        actions = actions[:, 0]  # d3rlpy's (N, 1) discrete actions
    rewards = _concat(episodes, "rewards")[step].reshape(len(actions), -1)
    if rewards.shape[1] != 1:
        raise DataError(f"rewards have {rewards.shape[1]} values per step (expected 1)")
    keys = [""] if len(obs) == 1 else [str(j) for j in range(len(obs))]
    return EpisodeBatch(
        obs=unflatten_obs(dict(zip(keys, obs))),
        acts=actions,
        lengths=usable,
        terminated=terminated,
        truncated=~terminated,
        termination_known=np.ones(len(usable), dtype=bool),
        rews=rewards[:, 0],
    )
