"""Minibatches gathered straight from a store's memory-mapped transition arrays.

One numpy fancy-index per column per batch and one `torch.from_numpy`: no per-sample Python
and no Hugging Face formatter (`with_format("torch")` builds every row through Python, hundreds of
times slower than one fancy index on the Arrow view). Observations of any space become one float32
feature matrix: Box flattened, Discrete one-hot, Dict/Tuple leaves concatenated in key order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ildata.episode import DataError, Obs, flatten_obs, unflatten_obs


def space_leaves(space: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(flattened key, leaf space) pairs in the order `flatten_obs` names them."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        items = list(space.spaces.items())
    elif isinstance(space, spaces.Tuple):
        items = [(str(i), s) for i, s in enumerate(space.spaces)]
    else:
        return [(prefix, space)]
    out: list[tuple[str, Any]] = []
    for key, sub in items:
        out.extend(space_leaves(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _leaf_dim(space: Any) -> int:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return int(np.prod(space.shape, dtype=np.int64))
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    raise DataError(f"observation space {space} is not supported (Box, Discrete, MultiBinary, MultiDiscrete, Dict, Tuple)")


def feature_dim(space: Any) -> int:
    """Width of the feature matrix `obs_features` makes for `space`."""
    return sum(_leaf_dim(leaf) for _, leaf in space_leaves(space))


def _one_hot(values: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    out = np.zeros((values.shape[0], n), dtype=np.float32)
    out[np.arange(values.shape[0]), values.astype(np.int64) - start] = 1.0
    return out


def obs_features(obs: Obs, space: Any) -> np.ndarray:
    """A batch of observations (array or dict of arrays, leading batch axis) -> float32 (B, D)."""
    from gymnasium import spaces

    flat = flatten_obs(obs)
    parts = []
    for key, leaf in space_leaves(space):
        if key not in flat:
            raise DataError(f"observation has no key {key!r} (has {sorted(flat)})")
        x = np.asarray(flat[key])
        if isinstance(leaf, spaces.Discrete):
            parts.append(_one_hot(x.reshape(-1), int(leaf.n), int(leaf.start)))
        elif isinstance(leaf, spaces.MultiDiscrete):
            x = x.reshape(x.shape[0], -1)
            parts.extend(_one_hot(x[:, j], int(n)) for j, n in enumerate(np.ravel(leaf.nvec)))
        else:
            parts.append(x.reshape(x.shape[0], -1).astype(np.float32, copy=False))
    if len(parts) > 1:
        return np.concatenate(parts, axis=1)
    # A float32 Box is passed through as a view; a read-only one (a memory-mapped store) is copied
    # because torch.from_numpy refuses to share read-only memory safely.
    return parts[0] if parts[0].flags.writeable else parts[0].copy()


def feature_moments(obs: Obs, observation_space: Any, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the feature matrix, in chunks so a 2M-step store is never copied whole.

    A zero std (a constant feature) becomes 1, so `(features - mean) / std` stays finite.
    """
    n = len(next(iter(flatten_obs(obs).values())))
    total = np.zeros(feature_dim(observation_space))
    squares = np.zeros_like(total)
    for start in range(0, n, chunk):
        part = obs_features({k: v[start : start + chunk] for k, v in flatten_obs(obs).items()}, observation_space)
        total += part.sum(0, dtype=np.float64)
        squares += np.square(part, dtype=np.float64).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean, np.where(std < 1e-6, 1.0, std)


@dataclass
class Batch:
    """One minibatch: float32 features (B, D) and actions (int64 (B,) or float32 (B, A))."""

    obs: torch.Tensor
    acts: torch.Tensor


class TransitionSampler:
    """Shuffled epochs of index batches over a store's `ds.transitions()`.

    Epochs (every transition once per pass, as imitation's BC data loader does) rather than
    sampling with replacement: on the small expert datasets BC learns from, that visits every
    state equally often. Indices are sorted within a batch so that gathers from a large
    memory-mapped file read pages in order.
    """

    def __init__(self, transitions: Any, observation_space: Any, action_space: Any, batch_size: int, seed: int) -> None:
        from gymnasium import spaces

        if batch_size < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        self.obs = transitions.obs
        self.acts = transitions.acts
        self.n = len(transitions)
        self.observation_space = observation_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_start = int(action_space.start) if self.discrete else 0
        self.batch_size = min(batch_size, self.n)
        self.rng = np.random.default_rng(seed)
        self._order = np.empty(0, dtype=np.int64)
        self._pos = 0
        self.epoch = 0

    def indices(self) -> np.ndarray:
        """The next batch's row indices (a new permutation starts when an epoch is used up)."""
        if self._pos + self.batch_size > self._order.shape[0]:
            self._order = self.rng.permutation(self.n)
            self._pos = 0
            self.epoch += 1
        idx = np.sort(self._order[self._pos : self._pos + self.batch_size])
        self._pos += self.batch_size
        return idx

    def gather(self, idx: np.ndarray) -> Batch:
        """Rows `idx` as tensors (one fancy-index per column, no per-sample Python)."""
        obs = {k: v[idx] for k, v in flatten_obs(self.obs).items()}
        features = obs_features(obs if set(obs) != {""} else obs[""], self.observation_space)
        acts = self.acts[idx]
        if self.discrete:
            acts_t = torch.from_numpy(acts.reshape(-1).astype(np.int64) - self.action_start)
        else:
            acts_t = torch.from_numpy(acts.reshape(len(idx), -1).astype(np.float32))
        return Batch(torch.from_numpy(features), acts_t)

    def sample(self) -> Batch:
        return self.gather(self.indices())

    def state_dict(self) -> dict[str, Any]:
        """Where the epoch stands, for a checkpoint (`torch.save`-able with `weights_only`)."""
        return {
            "rng": self.rng.bit_generator.state,
            "order": torch.from_numpy(self._order),
            "pos": self._pos,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._order, self._pos, self.epoch = state["order"].numpy(), int(state["pos"]), int(state["epoch"])

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.sample()


def run_positions(lengths: np.ndarray) -> np.ndarray:
    """Index of every row within its run, for runs of `lengths` rows laid end to end.

    With episode lengths it gives each transition's timestep; with lengths + 1, each observation's.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


# Feature matrices up to this size are converted to torch tensors once (TensorSampler); larger
# ones are gathered from the memory-mapped store batch by batch (TransitionSampler).
IN_MEMORY_BYTES = 1 << 30


def to_tensors(obs: Obs, acts: np.ndarray, observation_space: Any, action_space: Any, chunk: int = 1 << 18) -> Batch:
    """Whole-dataset features and actions as torch tensors (chunked, so only the result is whole)."""
    from gymnasium import spaces

    n = len(acts)
    features = torch.empty((n, feature_dim(observation_space)), dtype=torch.float32)
    flat = flatten_obs(obs)
    for start in range(0, n, chunk):
        part = {k: v[start : start + chunk] for k, v in flat.items()}
        features[start : start + chunk] = torch.from_numpy(obs_features(part if set(part) != {""} else part[""], observation_space))
    if isinstance(action_space, spaces.Discrete):
        acts_t = torch.from_numpy(np.asarray(acts).reshape(-1).astype(np.int64) - int(action_space.start))
    else:
        acts_t = torch.from_numpy(np.asarray(acts, dtype=np.float32).reshape(n, -1).copy())
    return Batch(features, acts_t)


class TensorSampler(TransitionSampler):
    """Shuffled epochs like `TransitionSampler`, over tensors made once from the whole dataset.

    At batch 32 a step's cost is per-call overhead, not arithmetic: gathering from numpy and
    converting each batch took longer than the network's forward and backward passes. Here a
    batch is one `index_select` per column on tensors converted once (`to_tensors`), and the
    permutation comes from a torch generator seeded like the numpy one.
    """

    def __init__(self, transitions: Any, observation_space: Any, action_space: Any, batch_size: int, seed: int) -> None:
        super().__init__(transitions, observation_space, action_space, batch_size, seed)
        self.data = to_tensors(transitions.obs, np.asarray(transitions.acts), observation_space, action_space)
        self.generator = torch.Generator().manual_seed(seed)
        self._perm = torch.empty(0, dtype=torch.int64)

    @staticmethod
    def fits(transitions: Any, observation_space: Any) -> bool:
        """Whether the feature matrix is small enough to hold as one tensor."""
        return len(transitions) * feature_dim(observation_space) * 4 <= IN_MEMORY_BYTES

    def sample(self) -> Batch:
        if self._pos + self.batch_size > self._perm.shape[0]:
            self._perm = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
            self.epoch += 1
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return Batch(self.data.obs.index_select(0, idx), self.data.acts.index_select(0, idx))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self._perm, "pos": self._pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._perm, self._pos, self.epoch = state["perm"], int(state["pos"]), int(state["epoch"])


class GrowingSampler(TransitionSampler):
    """`TransitionSampler` over an in-memory buffer that `extend` grows (capacity doubles), for
    DAgger's labelled rounds. Appending a round copies only that round's rows; a batch is still one
    fancy index per column. After growth the next batch starts a new epoch over everything.
    """

    def __init__(self, observation_space: Any, action_space: Any, batch_size: int, seed: int) -> None:
        empty = _Rows(obs=None, acts=np.empty(0), n=0)
        super().__init__(empty, observation_space, action_space, batch_size, seed)
        self.requested_batch = batch_size
        self._buffers: dict[str, np.ndarray] = {}
        self._acts = np.empty(0)

    def extend(self, obs: Obs, acts: np.ndarray) -> None:
        flat = flatten_obs(obs)
        rows = len(acts)
        need = self.n + rows
        if not self._buffers or need > len(self._acts):
            capacity = max(need, 2 * len(self._acts), 1024)
            self._buffers = {k: _grown(self._buffers.get(k), v, capacity, self.n) for k, v in flat.items()}
            self._acts = _grown(self._acts if self.n else None, np.asarray(acts), capacity, self.n)
        for k, v in flat.items():
            self._buffers[k][self.n : need] = v
        self._acts[self.n : need] = acts
        self.n = need
        self.obs = unflatten_obs({k: v[: self.n] for k, v in self._buffers.items()})
        self.acts = self._acts[: self.n]
        self.batch_size = min(self.requested_batch, self.n)
        self._order = np.empty(0, dtype=np.int64)  # the next batch starts an epoch over all rows
        self._pos = 0

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Feature mean and std of everything so far (BC's `normalize_obs`)."""
        return feature_moments(self.obs, self.observation_space)


@dataclass
class _Rows:
    obs: Any
    acts: np.ndarray
    n: int

    def __len__(self) -> int:
        return self.n


def _grown(old: np.ndarray | None, like: np.ndarray, capacity: int, keep: int) -> np.ndarray:
    out = np.empty((capacity, *like.shape[1:]), dtype=like.dtype)
    if old is not None and keep:
        out[:keep] = old[:keep]
    return out
