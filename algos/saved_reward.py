"""A reward learned and saved by one run (GAIL, AIRL, preference comparisons, ...), used again.

- `load_reward(run_dir, ...)`: the run's `reward` (a `RewardFn`), its spaces checked; a sweep's
  configuration folder stands for the run of the same seed.
- `relabel_with_run(run_dir, dataset, dst)`: a NEW dataset with that reward (source untouched).
- `normalized_reward(reward, mode)`: the reward a fresh learner is paid (`reward_from`),
  normalised by running statistics updated every step, as SB3's `VecNormalize` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ildata.episode import DataError, Obs
from ildata.store import TrajectoryDataset


def load_reward(run_dir: str | Path, observation_space: gym.Space, action_space: gym.Space, *, seed: int | None = None) -> Any:
    """The saved reward of a run folder (`algos.base.load_algorithm(run_dir).reward`), spaces checked.
    With `seed`, a sweep's configuration folder holding `seed-<seed>/` stands for that run."""
    from algos.base import load_algorithm
    from ildata.spaces import space_to_dict

    if seed is not None and (Path(run_dir) / f"seed-{seed}").is_dir():
        run_dir = Path(run_dir) / f"seed-{seed}"
    try:
        algo = load_algorithm(run_dir)
    except DataError as exc:
        raise DataError(f"config.reward_from: {exc}") from None
    if algo.reward is None:
        raise DataError(f"config.reward_from: {run_dir} holds algorithm {algo.name!r}, which learned no reward")
    for name, mine, theirs in (("observation", observation_space, algo.observation_space), ("action", action_space, algo.action_space)):
        if theirs is None or space_to_dict(theirs) != space_to_dict(mine):
            raise DataError(f"config.reward_from: the reward in {run_dir} was learned for another {name} space")
    return algo.reward


def relabel_with_run(run_dir: str | Path, dataset: TrajectoryDataset, dst: str | Path, *, overwrite: bool = False) -> TrajectoryDataset:
    """A NEW dataset: `dataset` with rewards from the learned reward saved in `run_dir` (source untouched)."""
    from algos.density import relabel

    reward = load_reward(run_dir, dataset.observation_space, dataset.action_space)
    return relabel(dataset, reward, dst, overwrite=overwrite, reward_name=f"learned:{Path(run_dir).name}")


def normalized_reward(reward: Any, mode: str) -> Any:
    """The `RewardVecEnvWrapper` function paying `reward` normalised (`standard`, `scale`, `off`) by
    running moments of what it paid so far, updated every step.

    Raw, AIRL's g is -10 to -1000s on the states a fresh PPO visits first (a fallen pole, a
    drifting cart): the value loss on such returns dominates the gradient-norm clip SB3's PPO
    applies to policy and value together, and the policy barely moves (seals/CartPole: 0.03
    normalised after 200k env steps raw, 1.00 normalised; benchmarks/RESULTS-adversarial.md)."""
    from algos.online.normalizer import RewardMoments

    moments = RewardMoments()

    def paid(obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray) -> np.ndarray:
        raw = np.asarray(reward(obs, acts, next_obs), dtype=np.float64)
        moments.update(raw)
        return moments.apply(raw, mode).astype(np.float32)

    return paid
