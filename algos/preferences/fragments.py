"""Fixed-length fragments of episodes, the things preferences compare.

`fragment(batch, length, n, rng)` draws fragments uniformly over *every* valid window of every
long-enough episode (imitation's fragmenter under-samples the first and last steps and silently
drops short episodes; here `Fragments.too_short` says how many were). The windows are gathered
with one fancy index per column, so every fragment is a copy in its own array, never a view
keeping a whole trajectory alive (imitation PR #842: OOM on Atari).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ildata.episode import DataError, EpisodeBatch

ARRAYS = ("obs", "acts", "next_obs", "rews", "seeds", "starts")  # the per-fragment arrays of `Fragments`


@dataclass
class Fragments:
    """`n` fragments of `length` steps: obs/acts/next_obs/rews are `[n, length, ...]` arrays of their own.

    `seeds` and `starts` say where each came from (episode seed, first step), for replays and renders.
    `too_short` counts the episodes that had no window of `length` steps when they were drawn.
    """

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    rews: np.ndarray
    seeds: np.ndarray
    starts: np.ndarray
    too_short: int = 0

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    @property
    def length(self) -> int:
        return int(self.acts.shape[1])

    def take(self, rows: np.ndarray) -> Fragments:
        return Fragments(
            self.obs[rows], self.acts[rows], self.next_obs[rows], self.rews[rows], self.seeds[rows], self.starts[rows], self.too_short
        )


def concat_fragments(parts: Sequence[Fragments]) -> Fragments:
    """One `Fragments` holding `parts` in order (their `too_short` counts added)."""
    arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ARRAYS}
    return Fragments(
        arrays["obs"],
        arrays["acts"],
        arrays["next_obs"],
        arrays["rews"],
        arrays["seeds"],
        arrays["starts"],
        sum(p.too_short for p in parts),
    )


def fragment(batch: EpisodeBatch, length: int, n: int, rng: np.random.Generator) -> Fragments:
    """`n` fragments drawn uniformly over all windows of `length` steps (with replacement).

    Episodes shorter than `length` have no window; they are counted in `too_short`, not hidden.
    """
    if length < 1:
        raise DataError(f"fragment_length: must be at least 1, got {length}")
    if isinstance(batch.obs, dict):
        raise DataError("preference comparisons: dict observations are not supported")
    lengths = batch.lengths
    windows = np.maximum(lengths - length + 1, 0)
    too_short = int((windows == 0).sum())
    if n > 0 and windows.sum() == 0:
        raise DataError(f"no episode has {length} steps for a fragment ({too_short} episodes too short; lower fragment_length)")
    # A uniform draw over the concatenation of every episode's windows.
    ends = np.cumsum(windows)
    picks = rng.integers(0, int(ends[-1]) if len(ends) else 0, n) if n else np.zeros(0, np.int64)
    episode = np.searchsorted(ends, picks, side="right")
    start = picks - (ends[episode] - windows[episode])
    act_first = np.concatenate([[0], np.cumsum(lengths)[:-1]])[episode] + start
    obs_first = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])[episode] + start
    steps = np.arange(length)
    act_rows, obs_rows = act_first[:, None] + steps, obs_first[:, None] + steps  # fancy indexing: copies
    obs = np.asarray(batch.obs)
    rews = np.asarray(batch.rews, dtype=np.float64)[act_rows] if batch.rews is not None else np.full(act_rows.shape, np.nan)
    seeds = np.asarray(batch.seeds, dtype=np.int64)[episode] if batch.seeds is not None else np.full(n, -1, np.int64)
    return Fragments(obs[obs_rows], np.asarray(batch.acts)[act_rows], obs[obs_rows + 1], rews, seeds, start.astype(np.int64), too_short)


def discounted_returns(rews: np.ndarray, discount: float) -> np.ndarray:
    """Sum over the last axis of `rews * discount**t` (vectorised)."""
    return (rews * discount ** np.arange(rews.shape[-1])).sum(-1)
