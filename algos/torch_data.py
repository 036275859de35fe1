"""torch `Dataset`s over a store's memory-mapped arrays: transitions, and fixed-length windows of
episodes (sequence models, action chunking).

Nothing is copied up front: a dataset holds the store's column views (`TrajectoryDataset.column`)
and small index arrays (one int64 per transition or window). A batch is gathered by
`__getitems__` with one numpy fancy index per column, so a DataLoader with a batch sampler
fetches a whole batch at once; arrays keep their stored dtype (uint8 images stay uint8, to be
converted on the device). Batches are dicts of tensors keyed by column: "obs" (or "obs.<key>"
for Dict observations, as `flatten_obs` names them), "next_obs", "acts", "rews", ...

    loader = make_loader(TransitionDataset(ildata.load("demos")), batch_size=256, shuffle=True,
                         num_workers=4, pin_memory=True)

A TrajectoryDataset pickles by reference (paths + fingerprints), so workers started by fork or
spawn map the same files instead of receiving a copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from ildata.episode import DataError
from ildata.store import TrajectoryDataset

Batch = dict[str, torch.Tensor]
Indices = Sequence[int] | np.ndarray | torch.Tensor


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A gathered (hence writable, owned) numpy array as a tensor, without another copy."""
    return torch.from_numpy(np.ascontiguousarray(array))


def _obs_columns(dataset: TrajectoryDataset, prefix: str) -> dict[str, str]:
    """Batch key -> stored column for the observations ("obs" or "obs.<key>")."""
    return {(prefix if not key else f"{prefix}.{key}"): column for key, column in dataset.meta.obs_columns(prefix).items()}


def _columns(dataset: TrajectoryDataset, keys: Sequence[str], allowed: Sequence[str]) -> dict[str, str]:
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise DataError(f"unknown batch key(s) {', '.join(unknown)} (choose from {', '.join(allowed)})")
    if "rews" in keys and not dataset.meta.has_rewards:
        raise DataError("this dataset has no rewards: leave 'rews' out of keys")
    out: dict[str, str] = {}
    for key in keys:
        out.update(_obs_columns(dataset, key) if key in ("obs", "next_obs") else {key: key})
    return out


def _positions(indices: Indices, size: int) -> np.ndarray:
    index = np.asarray(indices, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < -size or index.max() >= size):
        raise IndexError(f"index out of range for {size} items")
    return np.where(index < 0, index + size, index)


class TransitionDataset(Dataset[Batch]):
    """One item per transition of `dataset` (a store, subset or concat), in order.

    `keys` chooses among "obs", "next_obs", "acts", "rews", "dones" (last step of an episode),
    "terminated" (a real termination: what bootstrapping uses) and "episode" (the episode's
    position in `dataset`). `ds[i]` is one transition; `__getitems__` a batch (leading dim)."""

    KEYS = ("obs", "next_obs", "acts", "rews", "dones", "terminated", "episode")

    def __init__(self, dataset: TrajectoryDataset, keys: Sequence[str] = ("obs", "acts", "next_obs", "dones", "terminated")):
        self.dataset = dataset
        stored = [k for k in keys if k not in ("dones", "terminated", "episode")]
        self.columns = _columns(dataset, stored, self.KEYS)
        self.keys = tuple(keys)
        rows = dataset.transition_rows()
        # a slice is kept as its start: contiguous episodes need no per-transition index at all
        self._start = rows.start if isinstance(rows, slice) else None
        self._rows = None if isinstance(rows, slice) else rows
        lengths = dataset.lengths
        self._ends = np.cumsum(lengths)  # exclusive end position of each episode
        self._terminated = dataset.episode_column("terminated")
        self._length = int(self._ends[-1]) if len(lengths) else 0

    def __len__(self) -> int:
        return self._length

    def __getitems__(self, indices: Indices) -> Batch:
        position = _positions(indices, self._length)
        rows = position + self._start if self._rows is None else self._rows[position]
        batch = {key: _tensor(self.dataset.column(column)[rows]) for key, column in self.columns.items()}
        if {"dones", "terminated", "episode"} & set(self.keys):
            episode = np.searchsorted(self._ends, position, side="right")
            last = position == self._ends[episode] - 1
            if "dones" in self.keys:
                batch["dones"] = _tensor(last)
            if "terminated" in self.keys:
                batch["terminated"] = _tensor(last & self._terminated[episode])
            if "episode" in self.keys:
                batch["episode"] = _tensor(episode)
        return batch

    def __getitem__(self, index: int) -> Batch:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


class WindowDataset(Dataset[Batch]):
    """Fixed-length windows of `window` consecutive steps inside each episode, for sequence models
    and action chunking.

    Windows start every `stride` steps. With `pad=True` (the default) a window may start at any
    such step and run past the episode's end: those steps repeat the last step's values and have
    `mask` False (every step is then the start of some window for stride 1). With `pad=False`
    only windows that fit inside the episode are made (shorter episodes give none).

    A batch has, for B windows: each key in `keys` ("obs", "next_obs", "acts", "rews") as
    (B, window, *shape); "mask" (B, window) bool, True for real steps; "timestep" (B, window)
    int64, the step's index in its episode; "episode" (B,) the episode's position in `dataset`.
    `future_actions=K` adds "future_acts" (B, window, K, *act_shape): for the step t, the actions
    a_t ... a_{t+K-1} (an action chunk, as ACT predicts), and "future_mask" (B, window, K) False
    past the episode's end (padded with its last action)."""

    KEYS = ("obs", "next_obs", "acts", "rews")

    def __init__(
        self,
        dataset: TrajectoryDataset,
        window: int,
        *,
        stride: int = 1,
        pad: bool = True,
        future_actions: int = 0,
        keys: Sequence[str] = ("obs", "acts"),
    ):
        if window < 1 or stride < 1 or future_actions < 0:
            raise ValueError("window and stride must be at least 1, future_actions at least 0")
        self.dataset = dataset
        self.window = window
        self.future_actions = future_actions
        self.columns = _columns(dataset, keys, self.KEYS)
        self._lengths = dataset.lengths.astype(np.int64)
        self._first_rows = dataset.first_rows.astype(np.int64)
        # last start: every stride step inside the episode (pad), or those leaving a whole window
        last = self._lengths - 1 if pad else self._lengths - window
        counts = np.where(last >= 0, last // stride + 1, 0)
        self._episode = np.repeat(np.arange(len(self._lengths)), counts)
        offsets = np.cumsum(counts) - counts
        self._start = (np.arange(int(counts.sum())) - np.repeat(offsets, counts)) * stride

    def __len__(self) -> int:
        return int(len(self._episode))

    def __getitems__(self, indices: Indices) -> Batch:
        position = _positions(indices, len(self))
        episode = self._episode[position]
        length = self._lengths[episode][:, None]
        steps = self._start[position][:, None] + np.arange(self.window)[None, :]  # (B, W)
        rows = self._first_rows[episode][:, None] + np.minimum(steps, length - 1)
        flat = rows.reshape(-1)
        batch: Batch = {}
        for key, column in self.columns.items():
            values = self.dataset.column(column)[flat]
            batch[key] = _tensor(values.reshape(rows.shape + values.shape[1:]))
        batch["mask"] = _tensor(steps < length)
        batch["timestep"] = _tensor(steps)
        batch["episode"] = _tensor(episode)
        if self.future_actions:
            ahead = steps[:, :, None] + np.arange(self.future_actions)[None, None, :]  # (B, W, K)
            future_rows = self._first_rows[episode][:, None, None] + np.minimum(ahead, length[:, :, None] - 1)
            acts = self.dataset.column("acts")[future_rows.reshape(-1)]
            batch["future_acts"] = _tensor(acts.reshape(future_rows.shape + acts.shape[1:]))
            batch["future_mask"] = _tensor(ahead < length[:, :, None])
        return batch

    def __getitem__(self, index: int) -> Batch:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def collate_batch(batch: Batch) -> Batch:
    """The DataLoader `collate_fn` for these datasets: `__getitems__` already made the batch."""
    return batch


def make_loader(
    dataset: TransitionDataset | WindowDataset,
    *,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int | None = None,
) -> DataLoader[Batch]:
    """A DataLoader that fetches each batch with one `__getitems__` call (a batch sampler, no
    per-item collation); workers and pinned memory as torch's. `seed` makes the shuffle repeatable."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last),
        collate_fn=collate_batch,  # type: ignore[arg-type]  # torch types it for per-item lists; __getitems__ gives the batch
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
