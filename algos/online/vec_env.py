"""Vector envs for online learners: `ildata collect`'s per-episode seeds, and a step counter.

Built on stable-baselines3's `DummyVecEnv` because SB3 learners need an SB3 `VecEnv`. Its
autoreset semantics (the ones every wrapper in `algos.online` relies on): an env that finishes
is reset *on the same step*; the returned observation is already the next episode's first one,
the finished episode's final observation is in `info["terminal_observation"]`, and
`done = terminated or truncated` with `info["TimeLimit.truncated"] = truncated and not terminated`.
(gymnasium 1.0's own vector envs reset on the *next* step instead: not used here.)

Seeds: episode k of the run (counted in the order episodes start, over all sub-envs) is reset with
seed `seed + k`, like `ildata collect`, whichever sub-env runs it. Resets requested by SB3
(`VecEnv.seed`, `reset(seed=...)`) are ignored: the schedule decides. So a deterministic policy
yields the same episode for a given seed whatever the number of envs, and the first K episodes
started always have seeds seed .. seed+K-1. (`ildata collect` gives env i the seeds
seed+i, seed+i+n, ...: the same assignment when all episodes have the same length.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from ildata.envs import make_env


class EpisodeSchedule:
    """The run's seed schedule, shared by every sub-env: the next episode takes the next seed.

    `current[i]` is the seed of the episode sub-env i is running now (-1 before its first reset).
    """

    def __init__(self, seed: int, num_envs: int) -> None:
        self.first = seed
        self.next_seed = seed
        self.current = np.full(num_envs, -1, dtype=np.int64)

    def start(self, env_index: int) -> int:
        seed = self.next_seed
        self.next_seed += 1
        self.current[env_index] = seed
        return seed

    @property
    def episodes_started(self) -> int:
        return self.next_seed - self.first


class ScheduledSeeds(gym.Wrapper):
    """Reset from the shared schedule, ignoring the seed the caller passes (see module doc)."""

    def __init__(self, env: gym.Env, schedule: EpisodeSchedule, env_index: int) -> None:
        super().__init__(env)
        self.schedule = schedule
        self.env_index = env_index

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        episode_seed = self.schedule.start(self.env_index)
        self.env.action_space.seed(episode_seed)  # as `ildata collect` does
        obs, info = self.env.reset(seed=episode_seed, options=options)
        return obs, {**info, "episode_seed": episode_seed}


class SeededVecEnv(DummyVecEnv):
    """`DummyVecEnv` over seeded sub-envs that counts every env step it takes.

    `steps` is the shared step counter budgets are checked against: each `step` adds `num_envs`
    (every sub-env takes one step; the autoreset is not a step). Reach it from any wrapper
    as `venv.unwrapped.steps`.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]], schedule: EpisodeSchedule, env_id: str) -> None:
        super().__init__(env_fns)
        self.schedule = schedule
        self.env_id = env_id
        self.steps = 0

    def step_wait(self) -> Any:
        self.steps += self.num_envs
        return super().step_wait()


def make_vec_env(env_id: str, num_envs: int = 1, *, seed: int = 0, monitor: bool = True) -> SeededVecEnv:
    """`num_envs` copies of `env_id` (any gymnasium or seals id) in one SB3 `VecEnv`.

    `monitor` wraps each sub-env in SB3's `Monitor` (inside any reward wrapper, so it records
    the env's true returns; SB3 learners log them as `rollout/ep_rew_mean`).
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    schedule = EpisodeSchedule(seed, num_envs)

    def factory(i: int) -> Callable[[], gym.Env]:
        def build() -> gym.Env:
            env: gym.Env = ScheduledSeeds(make_env(env_id), schedule, i)
            return Monitor(env) if monitor else env

        return build

    return SeededVecEnv([factory(i) for i in range(num_envs)], schedule, env_id)


def base_env(venv: VecEnv) -> SeededVecEnv:
    """The `SeededVecEnv` under any stack of SB3 `VecEnvWrapper`s (its step counter and seeds)."""
    inner = venv.unwrapped
    if not isinstance(inner, SeededVecEnv):
        raise TypeError(f"expected a vec env built by make_vec_env, got {type(inner).__name__}")
    return inner


class PolicyRunner:
    """Steps a vec env with any `obs -> actions` callable (DAgger's mixture, an expert, BC).

    The last observation is kept between calls, so episodes continue across rounds as an SB3
    learner's do; wrap the env in an `EpisodeRecorder` to get the finished episodes. An SB3
    learner keeps its own last observation: a vec env shared by both must be `reset()` (and
    the runner's `obs` set to None) when control passes from one to the other.
    """

    def __init__(self, venv: VecEnv) -> None:
        self.venv = venv
        self.obs: Any = None

    def run(self, policy: Callable[[Any], np.ndarray], n_env_steps: int) -> int:
        """Take `n_env_steps // num_envs` vector steps (never more than `n_env_steps` env steps)."""
        if self.obs is None:
            self.obs = self.venv.reset()
        vector_steps = max(n_env_steps, 0) // self.venv.num_envs
        for _ in range(vector_steps):
            self.obs, _, _, _ = self.venv.step(np.asarray(policy(self.obs)))
        return vector_steps * self.venv.num_envs
