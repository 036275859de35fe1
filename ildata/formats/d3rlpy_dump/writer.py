"""ildata -> d3rlpy: lay episodes out as d3rlpy's step-aligned arrays and write the h5 dump
(padding and the extra `ildata/` datasets are described in the package docstring)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import EpisodeBatch, flatten_obs
from ildata.formats.d3rlpy_dump.layout import COLUMNS, DATASET_VERSION, ILDATA
from ildata.fsutil import atomic_output, check_destination

if TYPE_CHECKING:
    from ildata.store import TrajectoryDataset


@dataclass
class D3rlpyArrays:
    """Episodes laid out as d3rlpy wants them, all episodes concatenated (see the package docstring).

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
