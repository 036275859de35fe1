"""In-memory episode types shared by every reader, writer and collector.

`Episode` is what a user sees (`ds[i]`, `ildata.save`). `EpisodeBatch` is the columnar
intermediate every reader produces and the store writer consumes: all episodes' arrays
concatenated, so that importing a 2M-step file never loops over steps in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

# An observation array is either one ndarray or a (possibly nested) mapping of them
# (gymnasium Dict/Tuple spaces; Tuple keys are "0", "1", ...).
Obs = Union[np.ndarray, Mapping[str, "Obs"]]  # noqa: UP007  (recursive alias: `|` cannot take the string)


class DataError(ValueError):
    """Bad input data: the CLI prints it as one line naming the file, and exits 2.

    `subject` names the file the problem is in, when it is not the command's main input.
    """

    def __init__(self, message: str, *, subject: object = None):
        super().__init__(message)
        self.subject = subject


@dataclass
class Episode:
    """One trajectory: `obs` has one more row than `acts` (the final observation is kept)."""

    obs: Obs
    acts: np.ndarray
    rews: np.ndarray | None = None
    terminated: bool = False
    truncated: bool = False
    infos: list[dict[str, Any] | str] | None = None
    # False when the source folded time-limit truncation into "done" (imitation's `terminal`).
    termination_known: bool = True
    seed: int | None = None

    def __len__(self) -> int:
        return int(self.acts.shape[0])


def obs_len(obs: Obs) -> int:
    """Number of rows of an observation array or dict of arrays."""
    if isinstance(obs, Mapping):
        lengths = {obs_len(v) for v in obs.values()}
        if len(lengths) != 1:
            raise DataError(f"observation keys have different lengths: {sorted(lengths)}")
        return lengths.pop()
    return int(obs.shape[0])


def flatten_obs(obs: Obs, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested observation mapping -> {"a.b": array}; a plain array -> {"": array}."""
    if not isinstance(obs, Mapping):
        return {prefix: obs}
    flat: dict[str, np.ndarray] = {}
    for key, value in obs.items():
        flat.update(flatten_obs(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def unflatten_obs(flat: Mapping[str, np.ndarray]) -> Obs:
    """Inverse of `flatten_obs`."""
    if set(flat) == {""}:
        return flat[""]
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def map_obs(obs: Obs, fn) -> Obs:
    """Apply `fn` to every leaf array of an observation."""
    if isinstance(obs, Mapping):
        return {k: map_obs(v, fn) for k, v in obs.items()}
    return fn(obs)


@dataclass
class EpisodeBatch:
    """Episodes in columnar form.

    - `obs`: every episode's T_i + 1 observations concatenated (sum(T_i + 1) rows);
    - `acts`, `rews`, `infos`: every episode's T_i steps concatenated (sum(T_i) rows);
    - `lengths`, `terminated`, `truncated`, `termination_known`, `seeds`: one entry per episode.
    """

    obs: Obs
    acts: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    termination_known: np.ndarray
    rews: np.ndarray | None = None
    infos: Sequence[dict[str, Any] | str | None] | None = None
    seeds: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        n = len(self.lengths)
        for name in ("terminated", "truncated", "termination_known"):
            value = np.asarray(getattr(self, name), dtype=bool).reshape(-1)
            if value.shape[0] != n:
                raise DataError(f"{name} has {value.shape[0]} entries for {n} episodes")
            setattr(self, name, value)
        self.validate()

    @property
    def num_episodes(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def num_transitions(self) -> int:
        return int(self.lengths.sum())

    @property
    def first_rows(self) -> np.ndarray:
        """Index of every episode's first step in the concatenated acts/rews."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def returns(self) -> np.ndarray | None:
        """Sum of rewards per episode (float64), or None without rewards."""
        if self.rews is None:
            return None
        return np.add.reduceat(self.rews.astype(np.float64), self.first_rows)

    def validate(self) -> None:
        """Raise DataError on inconsistent lengths (the commonest corruption of legacy files)."""
        if self.num_episodes == 0:
            raise DataError("no episodes")
        if (self.lengths < 1).any():
            bad = int(np.flatnonzero(self.lengths < 1)[0])
            raise DataError(f"episode {bad} has no actions (length 0)")
        steps = self.num_transitions
        n_obs = obs_len(self.obs)
        if n_obs != steps + self.num_episodes:
            raise DataError(
                f"observations/actions length mismatch: {n_obs} observations for {steps} actions "
                f"in {self.num_episodes} episodes (expected {steps + self.num_episodes})"
            )
        if self.acts.shape[0] != steps:
            raise DataError(f"{self.acts.shape[0]} actions but episode lengths sum to {steps}")
        if self.rews is not None and self.rews.shape[0] != steps:
            raise DataError(f"{self.rews.shape[0]} rewards for {steps} actions")
        if self.infos is not None and len(self.infos) != steps:
            raise DataError(f"{len(self.infos)} infos for {steps} actions")
        if self.seeds is not None and len(self.seeds) != self.num_episodes:
            raise DataError(f"{len(self.seeds)} seeds for {self.num_episodes} episodes")

    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode]) -> EpisodeBatch:
        """Concatenate per-episode arrays (one numpy call per field, not per step)."""
        if len(episodes) == 0:
            raise DataError("no episodes")
        first = episodes[0]
        for i, ep in enumerate(episodes):
            if obs_len(ep.obs) != len(ep) + 1:
                raise DataError(f"episode {i}: {obs_len(ep.obs)} observations for {len(ep)} actions (expected {len(ep) + 1})")
        flat = [flatten_obs(ep.obs) for ep in episodes]
        keys = list(flat[0])
        if any(list(f) != keys for f in flat):
            raise DataError("episodes have different observation keys")
        obs = unflatten_obs({k: np.concatenate([f[k] for f in flat]) for k in keys})
        has_rews = [ep.rews is not None for ep in episodes]
        if any(has_rews) and not all(has_rews):
            raise DataError("some episodes have rewards and others do not")
        rews = np.concatenate([ep.rews for ep in episodes]) if first.rews is not None else None
        infos = None
        if any(ep.infos is not None for ep in episodes):
            infos = []
            for ep in episodes:
                infos.extend(ep.infos if ep.infos is not None else [None] * len(ep))
        seeds = None
        if any(ep.seed is not None for ep in episodes):
            seeds = np.array([-1 if ep.seed is None else ep.seed for ep in episodes], dtype=np.int64)
        return cls(
            obs=obs,
            acts=np.concatenate([np.asarray(ep.acts) for ep in episodes]),
            lengths=np.array([len(ep) for ep in episodes]),
            terminated=np.array([ep.terminated for ep in episodes]),
            truncated=np.array([ep.truncated for ep in episodes]),
            termination_known=np.array([ep.termination_known for ep in episodes]),
            rews=rews,
            infos=infos,
            seeds=seeds,
        )
