"""The discriminator's data: numpy transition batches, the demonstrations as one, and sampling.

With the absorbing-state fix (`absorbing: true`, DAC) a batch also carries flags: `absorbing`
on rows that stand for the absorbing state itself, `next_absorbing` where the next state is the
absorbing one (a termination); the padding to the env's horizon is one weighted absorbing row
rather than hundreds of copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ildata.store import TrajectoryDataset

TRANSITION_ARRAYS = ("obs", "acts", "next_obs", "terminated", "absorbing", "next_absorbing")


@dataclass
class TransitionBatch:
    """Numpy transitions: raw observations/actions (for the policy's log-probabilities) and the
    discriminator's features. `weights` (None: 1 each) count how many absorbing rows a row stands for."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    absorbing: np.ndarray  # 1 on absorbing -> absorbing rows
    next_absorbing: np.ndarray  # 1 where the next state is the absorbing one (a termination, fix on)
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    def take(self, rows: np.ndarray) -> TransitionBatch:
        return TransitionBatch(
            self.obs[rows], self.acts[rows], self.next_obs[rows], self.terminated[rows], self.absorbing[rows], self.next_absorbing[rows]
        )

    def real(self) -> TransitionBatch:
        """The rows that are real transitions (absorbing rows left out)."""
        return self if self.weights is None else self.take(np.flatnonzero(self.absorbing == 0))


def concat(batches: list[TransitionBatch]) -> TransitionBatch:
    parts = {k: np.concatenate([getattr(b, k) for b in batches]) for k in TRANSITION_ARRAYS}
    if any(b.weights is not None for b in batches):
        parts["weights"] = np.concatenate([b.weights if b.weights is not None else np.ones(len(b)) for b in batches])
    return TransitionBatch(**parts)


def plain_batch(obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray | None = None) -> TransitionBatch:
    """Transitions with no absorbing flags (`terminated` None: none terminated)."""
    zeros = np.zeros(len(acts), np.float32)
    return TransitionBatch(obs, acts, next_obs, zeros if terminated is None else terminated, zeros, zeros)


def absorbing_rows(like: TransitionBatch, weight: float) -> TransitionBatch:
    """One absorbing -> absorbing row (zeros shaped as `like`'s) standing for `weight` rows."""
    return TransitionBatch(
        like.obs[:1] * 0, like.acts[:1] * 0, like.obs[:1] * 0, np.zeros(1), np.ones(1), np.ones(1), np.array([float(weight)])
    )


def demonstrations(dataset: TrajectoryDataset, *, absorbing: bool, horizon: int | None) -> TransitionBatch:
    """Expert transitions; with the absorbing fix, one weighted absorbing row for all padding."""
    tr = dataset.transitions()
    obs, next_obs = np.asarray(tr.obs), np.asarray(tr.next_obs)
    n = len(tr)
    terminated = np.asarray(tr.terminated, dtype=np.float32)
    zeros = np.zeros(n, dtype=np.float32)
    if not absorbing:
        return TransitionBatch(obs, np.asarray(tr.acts), next_obs, terminated, zeros, zeros)
    demos = TransitionBatch(obs, np.asarray(tr.acts), next_obs, np.zeros(n, np.float32), zeros, terminated.copy())
    assert horizon is not None
    pad = int(np.maximum(horizon - dataset.lengths, 0)[np.asarray(dataset.episode_column("terminated"), dtype=bool)].sum())
    if pad == 0:
        return demos
    return concat([demos, absorbing_rows(demos, pad)])


def sample(pool: TransitionBatch, n: int, rng: np.random.Generator) -> TransitionBatch:
    """`n` rows drawn with replacement, in proportion to their weights."""
    if pool.weights is None:
        return pool.take(rng.integers(0, len(pool), n))
    p = pool.weights / pool.weights.sum()
    return pool.take(rng.choice(len(pool), n, p=p))
