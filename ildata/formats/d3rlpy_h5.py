"""d3rlpy datasets: its h5 dump format (`ReplayBuffer.dump`, version 2.1), read and written.

d3rlpy keeps, per episode, `observations_i` (T rows, one per action: no final observation),
`actions_i` (2-D), `rewards_i` (T, 1) and a scalar `terminated_i`; tuple observations are
`observations_i_j`. Its transition picker uses all T steps of a terminated episode (with a zero
next observation) but only T-1 of any other episode, whose last observation serves as the
final next observation.

Writing (lossless; extra `ildata/...` datasets, which d3rlpy ignores, carry what it cannot hold):
- a terminated episode becomes T rows with `terminated=True` (terminal wins when gymnasium also
  reported truncation); its final observation goes to `ildata/final_observations`;
- any other episode becomes T+1 rows: its real final observation plus one padding step (its
  last action repeated, reward 0), so d3rlpy samples exactly its T real transitions.
Reading a dump written elsewhere (no `ildata/` group) recovers what d3rlpy itself uses:
- time-out episodes: the last step is dropped (its next observation was never stored, and d3rlpy
  never samples it) and its observation becomes the final one;
- terminated episodes: the final observation is unknown and is set to zeros, as d3rlpy's own
  transition picker does.
d3rlpy stores dtypes as given (it casts to float32 only when sampling), so they round-trip; infos
have no place in the format and are not written.

Files are read and written with h5py directly (the layout is four datasets per episode): going
through `d3rlpy.dataset.io` would import torch and d3rlpy into the data layer for no gain.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, flatten_obs, unflatten_obs
from ildata.formats import SourceChunks, SourceRead, chunk_ranges
from ildata.formats.hdf5_links import refuse_external_storage, refuse_links
from ildata.fsutil import atomic_output, check_destination

if TYPE_CHECKING:
    from ildata.store import TrajectoryDataset

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
DATASET_VERSION = "2.1"  # d3rlpy.dataset.io.DATASET_VERSION
COLUMNS = ("observations", "actions", "rewards", "terminated")
ILDATA = "ildata"  # group of extra datasets d3rlpy does not read


# --------------------------------------------------------------------------- ildata -> d3rlpy


@dataclass
class D3rlpyArrays:
    """Episodes laid out as d3rlpy wants them, all episodes concatenated (see module docstring).

    `observations` is one array per observation leaf (d3rlpy's tuple observations for Dict/Tuple
    spaces, in `keys` order); `terminals`/`timeouts` are the flags `d3rlpy.dataset.MDPDataset`
    takes; `sizes` the rows of each d3rlpy episode; `padded` whether it ends with a padding step.
    """

    keys: list[str]
    observations: list[np.ndarray]
    actions: np.ndarray  # 2-D
    rewards: np.ndarray  # (N, 1)
    terminals: np.ndarray  # float32 (N,)
    timeouts: np.ndarray  # float32 (N,)
    sizes: np.ndarray
    terminated: np.ndarray  # per episode
    padded: np.ndarray  # per episode
    final_observations: list[np.ndarray]  # final observation of each terminated episode, per leaf


def to_d3rlpy_arrays(batch: EpisodeBatch) -> D3rlpyArrays:
    """EpisodeBatch -> d3rlpy's step-aligned arrays, one observation per action (vectorised)."""
    lengths = batch.lengths
    terminated = batch.terminated.copy()
    padded = ~terminated
    ends = np.cumsum(lengths + 1)  # one past each episode's final observation
    starts = ends - lengths - 1
    is_final = np.zeros(int(ends[-1]), dtype=bool)
    is_final[ends - 1] = True
    keep = ~(is_final & np.repeat(terminated, lengths + 1))  # drop finals of terminated episodes
    # Step of each observation row: its own, or the episode's last one for the final row.
    position = np.arange(int(ends[-1])) - np.repeat(starts, lengths + 1)
    step = np.repeat(np.cumsum(lengths) - lengths, lengths + 1) + np.minimum(position, np.repeat(lengths - 1, lengths + 1))
    step_rows = step[keep]
    pad_rows = is_final[keep]
    flat = flatten_obs(batch.obs)
    actions = batch.acts[step_rows]
    actions = actions.reshape(len(actions), -1) if actions.ndim != 2 else actions
    rews = batch.rews if batch.rews is not None else np.zeros(batch.num_transitions, dtype=np.float32)
    rewards = np.where(pad_rows, np.zeros((), dtype=rews.dtype), rews[step_rows]).astype(rews.dtype).reshape(-1, 1)
    sizes = lengths + padded.astype(np.int64)
    last = np.cumsum(sizes) - 1
    terminals = np.zeros(len(step_rows), dtype=np.float32)
    timeouts = np.zeros(len(step_rows), dtype=np.float32)
    terminals[last[terminated]] = 1.0
    timeouts[last[padded]] = 1.0
    finals = (ends - 1)[terminated]
    return D3rlpyArrays(
        keys=list(flat),
        observations=[v[keep] for v in flat.values()],
        actions=actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        sizes=sizes,
        terminated=terminated,
        padded=padded,
        final_observations=[v[finals] for v in flat.values()],
    )


def write(ds: TrajectoryDataset, dst: Path, *, overwrite: bool = False) -> list[str]:
    """Write a TrajectoryDataset as a d3rlpy h5 dump at `dst` (atomically); returns notes."""
    from ildata.spaces import space_to_dict

    check_destination(Path(dst), overwrite=overwrite)  # before the work, not only at the rename
    batch: EpisodeBatch = ds.to_batch()
    arrays = to_d3rlpy_arrays(batch)
    notes: list[str] = []
    if batch.infos is not None:
        notes.append("infos are not written: d3rlpy's format has no place for them")
    if (batch.terminated & batch.truncated).any():
        notes.append("episodes both terminated and truncated are d3rlpy terminals (it allows one flag)")
    if not batch.termination_known.all():
        notes.append("some episodes do not know termination from time-limit truncation: written as d3rlpy terminals")
    if batch.rews is None:
        notes.append("the dataset has no rewards; d3rlpy requires them, so zeros were written")
    meta = {
        "format_version": 1,
        "observation_keys": None if arrays.keys == [""] else arrays.keys,
        "action_shape": list(batch.acts.shape[1:]),
        "has_rewards": batch.rews is not None,
        "observation_space": space_to_dict(ds.observation_space),
        "action_space": space_to_dict(ds.action_space),
        "env_id": getattr(ds, "env_id", None),
    }
    with atomic_output(dst, overwrite=overwrite, folder=False) as tmp:
        _write_h5(tmp, arrays, batch, meta)
    return notes


def _write_h5(path: Path, arrays: D3rlpyArrays, batch: EpisodeBatch, meta: dict[str, Any]) -> None:
    import h5py

    bounds = np.concatenate([[0], np.cumsum(arrays.sizes)])
    tuple_obs = meta["observation_keys"] is not None
    with h5py.File(path, "w") as h5:
        h5.create_dataset("columns", data=list(COLUMNS))
        h5.create_dataset("num_episodes", data=len(arrays.sizes))
        # The format is one dataset per episode and column: the loop is over episodes only.
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            if tuple_obs:
                for j, obs in enumerate(arrays.observations):
                    h5.create_dataset(f"observations_{i}_{j}", data=obs[a:b])
            else:
                h5.create_dataset(f"observations_{i}", data=arrays.observations[0][a:b])
            h5.create_dataset(f"actions_{i}", data=arrays.actions[a:b])
            h5.create_dataset(f"rewards_{i}", data=arrays.rewards[a:b])
            h5.create_dataset(f"terminated_{i}", data=bool(arrays.terminated[i]))
        h5.create_dataset("version", data=DATASET_VERSION)
        extra = h5.create_group(ILDATA)
        extra.attrs["meta"] = json.dumps(meta)
        extra.create_dataset("padded", data=arrays.padded)
        extra.create_dataset("truncated", data=batch.truncated)
        extra.create_dataset("termination_known", data=batch.termination_known)
        if batch.seeds is not None:
            extra.create_dataset("seeds", data=batch.seeds)
        for j, final in enumerate(arrays.final_observations):
            extra.create_dataset(f"final_observations_{j}", data=final)


# --------------------------------------------------------------------------- d3rlpy -> ildata


def sniff(path: Path) -> bool:
    """An HDF5 file holding d3rlpy's `columns`, `num_episodes` and `version` datasets."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        if f.read(8) != HDF5_SIGNATURE:
            return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:  # links are looked at, never followed
            return all(h5.get(k, getlink=True) is not None for k in ("columns", "num_episodes", "version"))
    except OSError:
        return False


def read(path: Path) -> SourceRead:
    """Read a d3rlpy h5 dump (episodes recovered as described in the module docstring): the
    one-chunk case of `read_chunks`."""
    with _opened(path) as h5, _hdf5_errors():
        dump = _open_dump(h5)
        batch = _read_range(dump, 0, dump.n_episodes)
        assert batch is not None  # `_open_dump` checked that some episode has a usable step
        return SourceRead(batch=batch, **dump.source_meta())


def read_chunks(path: Path) -> SourceChunks:
    """The dump a group of episodes of about CHUNK_BYTES at a time (each read with one h5py
    read per array and episode); the file stays open while the chunks are read. The notes and
    totals come from the episodes' shapes and flags, read before any data."""
    h5 = _opened(path)
    try:
        with _hdf5_errors():
            dump = _open_dump(h5)
        ranges = chunk_ranges(dump.sizes, _step_bytes(h5))
    except BaseException:
        h5.close()
        raise

    def chunks() -> Iterator[EpisodeBatch]:
        with h5:
            for start, stop in ranges:
                with _hdf5_errors():
                    batch = _read_range(dump, start, stop)
                if batch is not None:
                    yield batch

    return SourceChunks(chunks=chunks(), total_transitions=int(dump.lengths.sum()), **dump.source_meta())


@contextlib.contextmanager
def _hdf5_errors() -> Iterator[None]:
    """h5py's OSError on truncated or corrupted data -> one DataError line."""
    try:
        yield
    except OSError as exc:
        raise DataError(f"not a readable HDF5 file ({exc})") from None


def _opened(path: Path) -> Any:
    """The dump opened with h5py, its links refused before anything else is read from it."""
    import h5py

    with _hdf5_errors():
        h5 = h5py.File(path, "r")
    try:
        refuse_links(h5, path)
    except BaseException:
        h5.close()
        raise
    return h5


def _member(group: Any, name: str) -> Any:
    """`group[name]`, None when absent; a dataset whose values live in other files is refused
    (links were refused when the file was opened: see ildata.formats.hdf5_links)."""
    import h5py

    if group.get(name, getlink=True) is None:
        return None
    member = group[name]
    if isinstance(member, h5py.Dataset):
        refuse_external_storage(member.id, name, Path(group.file.filename))
    return member


def _dataset(group: Any, name: str, *, required: bool = True) -> Any:
    """Dataset `name` (see `_member`); None when absent and not `required`."""
    import h5py

    member = _member(group, name)
    if member is None:
        if required:
            raise DataError(f"d3rlpy dump has no {name}")
        return None
    if not isinstance(member, h5py.Dataset):
        raise DataError(f"{name} is an HDF5 {type(member).__name__}, not a dataset")
    return member


def _data(group: Any, name: str, *, required: bool = True, rows: slice = slice(None)) -> Any:
    """The value of dataset `name` (its `rows` only, for a 1-D or larger one); None when absent
    and not `required`."""
    dataset = _dataset(group, name, required=required)
    if dataset is None:
        return None
    return dataset[()] if rows == slice(None) or not dataset.shape else dataset[rows]


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
    version = _text(_data(h5, "version"))
    if version != DATASET_VERSION:
        raise DataError(f"d3rlpy dataset version {version} is not supported (expected {DATASET_VERSION})")
    columns = [_text(c) for c in _data(h5, "columns")]
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise DataError(f"d3rlpy dump has no {missing[0]!r} column")
    n_episodes = int(_data(h5, "num_episodes"))
    if n_episodes < 1:
        raise DataError("d3rlpy dump has no episodes")
    # Shapes and flags only (one small read per episode): what the chunks are cut by.
    sizes = np.array([_rows(_dataset(h5, f"actions_{i}")) for i in range(n_episodes)], dtype=np.int64)
    terminated = np.array([bool(_data(h5, f"terminated_{i}")) for i in range(n_episodes)], dtype=bool)
    extra = _member(h5, ILDATA)
    if isinstance(extra, h5py.Group) and "meta" in extra.attrs:
        padded = _data(extra, "padded").astype(bool)
        if len(padded) != n_episodes or (padded == terminated).any():
            raise DataError("ildata's episode table in the dump does not match its episodes")
        meta = json.loads(extra.attrs["meta"])
        notes = ["written by ildata: restored exactly"]
        return _Dump(h5, n_episodes, sizes, terminated, sizes - padded, meta, padded, notes)
    return _Dump(h5, n_episodes, sizes, terminated, *_foreign_plan(sizes, terminated))


def _rows(dataset: Any) -> int:
    return int(dataset.shape[0]) if dataset.shape else 1


def _step_bytes(h5: Any) -> float:
    """Bytes of one step of episode 0's observations, actions and rewards (chunk sizing)."""
    names = [*_observation_names(h5, 0), "actions_0", "rewards_0"]
    return float(sum(_dataset(h5, n).dtype.itemsize * int(np.prod(_dataset(h5, n).shape[1:], dtype=np.int64)) for n in names))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _observation_names(h5: Any, i: int) -> list[str]:
    """Episode i's observation datasets: `observations_i`, or d3rlpy's tuple `observations_i_j`."""
    if h5.get(f"observations_{i}", getlink=True) is not None:
        return [f"observations_{i}"]
    names: list[str] = []
    while h5.get(f"observations_{i}_{len(names)}", getlink=True) is not None:
        names.append(f"observations_{i}_{len(names)}")
    if not names:
        raise DataError(f"episode {i} has no observations")
    return names


@dataclass
class _D3Episode:
    observations: list[np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray


def _read_episode(h5: Any, i: int) -> _D3Episode:
    observations = [_data(h5, name) for name in _observation_names(h5, i)]
    episode = _D3Episode(observations, _data(h5, f"actions_{i}"), _data(h5, f"rewards_{i}"))
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
    finals = [_data(extra, f"final_observations_{j}", rows=final_rows) for j in range(len(obs_rows))]
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
        truncated=_data(extra, "truncated", rows=rows),
        termination_known=_data(extra, "termination_known", rows=rows),
        rews=rewards if meta["has_rewards"] else None,
        seeds=_data(extra, "seeds", required=False, rows=rows),
    )


def _foreign_plan(sizes: np.ndarray, terminated: np.ndarray) -> tuple[np.ndarray, None, None, list[str]]:
    """A dump from d3rlpy itself, from its episodes' sizes and flags: ildata steps per episode
    (0: dropped), and the notes (see the module docstring)."""
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
