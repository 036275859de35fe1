"""Flat transitions (imitation's layout) and how a dataset's episodes map onto stored rows.

The functions here are pure index arithmetic over the episode table (lengths, first rows), so
TrajectoryDataset (ildata/store/dataset.py) only gathers columns at the rows they compute.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ildata.episode import Obs, describe_array, describe_obs, flatten_obs, unflatten_obs


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


def transition_rows(first_rows: np.ndarray, lengths: np.ndarray) -> slice | np.ndarray:
    """Stored row of every transition of episodes starting at `first_rows`, in order: a slice
    (views) when the episodes are contiguous in order, else an index array."""
    if len(first_rows) == 0:
        return slice(0, 0)
    if np.array_equal(first_rows[1:], (first_rows + lengths)[:-1]):
        return slice(int(first_rows[0]), int(first_rows[-1] + lengths[-1]))
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum())) - np.repeat(offsets - first_rows, lengths)


def shard_spans(rows: slice | np.ndarray, shard_starts: np.ndarray) -> Iterator[slice | np.ndarray]:
    """Stored `rows`, in order, cut where they change shard (shard c holds rows
    shard_starts[c]:shard_starts[c + 1])."""
    if isinstance(rows, slice):
        for c in range(len(shard_starts) - 1):
            start, stop = max(rows.start, int(shard_starts[c])), min(rows.stop, int(shard_starts[c + 1]))
            if start < stop:
                yield slice(start, stop)
        return
    chunk = np.searchsorted(shard_starts, rows, side="right") - 1
    yield from np.split(rows, np.flatnonzero(np.diff(chunk)) + 1) if len(rows) else []


def end_flags(lengths: np.ndarray, terminated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-transition `dones` (last step of each episode) and `terminated` (of those, the
    episodes that really terminated)."""
    ends = np.cumsum(lengths) - 1
    dones = np.zeros(int(lengths.sum()), dtype=bool)
    dones[ends] = True
    per_step = np.zeros(len(dones), dtype=bool)
    per_step[ends] = terminated
    return dones, per_step


def episode_numbers(ids: np.ndarray, lengths: np.ndarray, positions: slice) -> np.ndarray:
    """The episode index (in the combined episode table) of transitions `positions` of episodes
    `ids` with `lengths`: what a concat stores instead of the parts' own numbering from 0."""
    ends = np.cumsum(lengths) - 1
    first = int(np.searchsorted(ends, positions.start))
    last = int(np.searchsorted(ends, max(positions.start, positions.stop - 1))) + 1
    local = np.repeat(ids[first:last], lengths[first:last])
    offset = positions.start - (int(ends[first - 1]) + 1 if first else 0)
    return local[offset : offset + positions.stop - positions.start]
