"""Replace the env's reward by a learned one, computed for the whole batch of envs in one call.

One wrapper for every online algorithm (GAIL, AIRL, preference comparisons, density). Per vector
step it makes exactly one `reward_fn(obs, acts, next_obs, terminated)` call over all `num_envs`
transitions, where `next_obs` holds each finished episode's true final observation (SB3's
`info["terminal_observation"]`, not the next episode's reset observation) and `terminated`
is true only for real terminations: a time limit is not a termination (SB3 marks it with
`info["TimeLimit.truncated"]`), so a potential-shaped reward zeroes h(s') only where it must.
`dones` and `TimeLimit.truncated` pass through unchanged (SB3 keeps bootstrapping truncations),
and the env's own reward goes to `info["env_reward"]`, so evaluation always reports true returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from ildata.episode import Obs, flatten_obs, unflatten_obs

RewardFn = Callable[[Obs, np.ndarray, Obs, np.ndarray], np.ndarray]


def copy_obs(obs: Obs) -> Obs:
    """A copy of a (possibly dict) batch of observations."""
    if isinstance(obs, Mapping):
        return unflatten_obs({k: np.array(v) for k, v in flatten_obs(obs).items()})
    return np.array(obs)


def final_observations(obs: Obs, dones: np.ndarray, infos: list[dict[str, Any]]) -> Obs:
    """`obs` with every finished env's row replaced by its true final observation.

    Only finished envs are touched (a Python loop over episodes, not over steps).
    """
    done_rows = np.flatnonzero(dones)
    if done_rows.size == 0:
        return obs
    out = copy_obs(obs)
    if isinstance(out, Mapping):
        flat = flatten_obs(out)
        for i in done_rows:
            final = flatten_obs(infos[i]["terminal_observation"])
            for key, column in flat.items():
                column[i] = final[key]
        return unflatten_obs(flat)
    for i in done_rows:
        out[i] = infos[i]["terminal_observation"]
    return out


def terminations(dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
    """Real terminations: done and not cut by a time limit."""
    terminated = np.array(dones, dtype=bool)
    for i in np.flatnonzero(terminated):
        if infos[i].get("TimeLimit.truncated", False):
            terminated[i] = False
    return terminated


class RewardVecEnvWrapper(VecEnvWrapper):
    """SB3 `VecEnvWrapper` whose rewards are `reward_fn(obs, acts, next_obs, terminated)`.

    `reward_fn` takes numpy batches (leading axis `num_envs`) and returns `num_envs` rewards;
    it can be swapped between rounds (`wrapper.reward_fn = new_fn`) without rebuilding the stack.
    `timesteps=True` also passes `t=` (each transition's step index in its episode), for
    per-timestep rewards such as density's non-stationary KDEs.
    """

    def __init__(self, venv: VecEnv, reward_fn: RewardFn | Callable[..., np.ndarray], *, timesteps: bool = False) -> None:
        super().__init__(venv)
        self.reward_fn: Callable[..., np.ndarray] = reward_fn
        self.timesteps = timesteps
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._obs: Obs | None = None
        self._acts: np.ndarray | None = None

    def continue_from(self, obs: Obs, t: np.ndarray) -> None:
        """Take up running episodes (a resumed run): `obs` is where the sub-envs are, `t` their steps."""
        self._obs = obs
        self._t = np.asarray(t, dtype=np.int64).copy()

    def reset(self) -> Any:
        self._obs = self.venv.reset()  # type: ignore[assignment]  # SB3's VecEnvObs is Obs
        self._t[:] = 0
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._acts = actions
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        if self._obs is None or self._acts is None:
            raise RuntimeError("reset the env before stepping it")
        obs: Obs
        obs, env_rewards, dones, infos = self.venv.step_wait()  # type: ignore[assignment]
        next_obs = final_observations(obs, dones, infos)
        terminated = terminations(dones, infos)
        if self.timesteps:
            raw = self.reward_fn(self._obs, self._acts, next_obs, terminated, t=self._t.copy())
            self._t += 1
            self._t[dones] = 0
        else:
            raw = self.reward_fn(self._obs, self._acts, next_obs, terminated)
        rewards = np.asarray(raw, dtype=np.float32)
        if rewards.shape != (self.num_envs,):
            raise ValueError(f"reward_fn returned shape {rewards.shape} for {self.num_envs} envs")
        for info, env_reward in zip(infos, env_rewards.tolist(), strict=True):
            info["env_reward"] = env_reward
        self._obs = obs  # finished envs' rows are already the next episode's reset observation
        return obs, rewards, dones, infos
