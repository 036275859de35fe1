"""Record the learner's own rollouts as `ildata.episode.EpisodeBatch`es.

Every round of every online algorithm can then be saved as an ildata store
(`recorder.save(dst)` or `ildata.save(recorder.pop_batch(), dst, ...)`) and inspected with
`ildata inspect`. Episodes keep their final observation (T+1 rows), terminated vs truncated,
the env's true rewards and their seed from the vec env's schedule.

Buffers are per-env numpy arrays (num_envs, capacity, ...) written with one fancy-indexed
assignment per field per vector step; Python only runs per finished episode.
Only whole episodes are recorded: the ones cut by a `reset()` are dropped.
`running_state()`/`resume()` carry the episodes still running across a checkpoint: a fresh env
stack replays each from its seed and recorded actions (deterministic envs end where they were).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from algos.online.reward_wrapper import final_observations, terminations
from algos.online.vec_env import base_env
from algos.sampler import space_leaves
from ildata.episode import Episode, EpisodeBatch, Obs, flatten_obs, unflatten_obs


class EpisodeRecorder(VecEnvWrapper):
    """SB3 `VecEnvWrapper` that buffers every finished episode until `pop_batch()`.

    Place it inside `RewardVecEnvWrapper` (it then sees the env's rewards); placed outside,
    it records `info["env_reward"]`, so its rewards are the true ones either way.
    """

    def __init__(self, venv: VecEnv, capacity: int = 256) -> None:
        super().__init__(venv)
        self.schedule = base_env(venv).schedule
        n = self.num_envs
        self._rows = np.arange(n)
        self._keys = [key for key, _ in space_leaves(self.observation_space)]
        self._leaves = dict(space_leaves(self.observation_space))
        self._capacity = 0
        self._obs: dict[str, np.ndarray] = {}
        self._acts: np.ndarray = np.empty(0)
        self._rews: np.ndarray = np.empty(0)
        self._grow(capacity)
        self._pos = np.zeros(n, dtype=np.int64)
        self._episode_seeds = np.full(n, -1, dtype=np.int64)
        self._live = np.zeros(n, dtype=bool)  # False until env i's episode began at a recorded reset
        self._actions: np.ndarray | None = None
        self.episodes: list[Episode] = []

    def _grow(self, capacity: int) -> None:
        """(Re)allocate buffers for episodes of up to `capacity` steps, keeping what they hold."""
        n, old = self.num_envs, self._capacity
        obs = {k: np.zeros((n, capacity + 1, *leaf.shape), dtype=leaf.dtype) for k, leaf in self._leaves.items()}
        act_shape = tuple(self.action_space.shape or ())
        acts = np.zeros((n, capacity, *act_shape), dtype=self.action_space.dtype)
        rews = np.zeros((n, capacity), dtype=np.float64)
        if old:
            for k in obs:
                obs[k][:, : old + 1] = self._obs[k]
            acts[:, :old] = self._acts
            rews[:, :old] = self._rews
        self._obs, self._acts, self._rews, self._capacity = obs, acts, rews, capacity

    def _start(self, rows: np.ndarray, flat_obs: dict[str, np.ndarray]) -> None:
        for k in self._keys:
            self._obs[k][rows, 0] = flat_obs[k][rows]
        self._pos[rows] = 0
        self._episode_seeds[rows] = self.schedule.current[rows]
        self._live[rows] = True

    def reset(self) -> Any:
        obs: Obs = self.venv.reset()  # type: ignore[assignment]
        self._start(self._rows, flatten_obs(obs))
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs: Obs
        obs, rewards, dones, infos = self.venv.step_wait()  # type: ignore[assignment]
        if self._actions is None:
            raise RuntimeError("step_async must come before step_wait")
        if self._pos.max() + 1 > self._capacity:
            self._grow(2 * self._capacity)
        pos = self._pos
        if "env_reward" in infos[0]:  # outside the reward wrapper: record the true reward
            rewards_true = np.array([info["env_reward"] for info in infos], dtype=np.float64)
        else:
            rewards_true = rewards
        self._acts[self._rows, pos] = self._actions.reshape(self._acts.shape[:1] + self._acts.shape[2:])
        self._rews[self._rows, pos] = rewards_true
        next_flat = flatten_obs(final_observations(obs, dones, infos))
        for k in self._keys:
            self._obs[k][self._rows, pos + 1] = next_flat[k]
        self._pos += 1
        if dones.any():
            done_rows = np.flatnonzero(dones)
            terminated = terminations(dones, infos)
            for i in done_rows:
                if self._live[i]:
                    self._finish(int(i), bool(terminated[i]))
            self._start(done_rows, flatten_obs(obs))
        return obs, rewards, dones, infos

    def _finish(self, i: int, terminated: bool) -> None:
        t = int(self._pos[i])
        self.episodes.append(
            Episode(
                obs=unflatten_obs({k: self._obs[k][i, : t + 1].copy() for k in self._keys}),
                acts=self._acts[i, :t].copy(),
                rews=self._rews[i, :t].copy(),
                terminated=terminated,
                truncated=not terminated,
                seed=int(self._episode_seeds[i]),
            )
        )

    def running_state(self) -> dict[str, np.ndarray]:
        """The unfinished episodes (plain arrays, for an npz): enough for `resume` in a fresh stack."""
        width = int(self._pos.max())
        state = {f"obs.{k}": self._obs[k][:, : width + 1].copy() for k in self._keys}
        state.update(
            acts=self._acts[:, :width].copy(),
            rews=self._rews[:, :width].copy(),
            pos=self._pos.copy(),
            seeds=self._episode_seeds.copy(),
            live=self._live.copy(),
            next_seed=np.asarray(self.schedule.next_seed, np.int64),
        )
        return state

    def resume(self, state: dict[str, np.ndarray], executed: np.ndarray | None = None) -> Obs:
        """Continue `running_state`'s episodes: each sub-env is reset with its episode's seed and
        takes its recorded actions again (outside the step counter: they were counted when first
        taken). Returns the sub-envs' current observations, what the learner acts on next.
        `executed` (n_envs, steps, ...): the actions to replay where the env executed others than
        the recorded ones (DAgger records the expert's labels)."""
        if not np.asarray(state["live"]).all():
            raise ValueError("every sub-env must be running a recorded episode to resume")
        pos = np.asarray(state["pos"], np.int64)
        width = int(pos.max())
        if width + 1 > self._capacity:
            self._grow(width + 1)
        for k in self._keys:
            self._obs[k][:, : width + 1] = state[f"obs.{k}"]
        self._acts[:, :width], self._rews[:, :width] = state["acts"], state["rews"]
        self._pos, self._episode_seeds, self._live = pos.copy(), np.asarray(state["seeds"], np.int64).copy(), np.ones(self.num_envs, bool)
        current = []
        for i, env in enumerate(base_env(self.venv).envs):
            self.schedule.next_seed = int(self._episode_seeds[i])
            obs, _ = env.reset()
            for action in (self._acts if executed is None else executed)[i, : pos[i]]:
                obs, *_ = env.step(action)
            current.append(obs)
        self.schedule.next_seed = int(state["next_seed"])
        if isinstance(current[0], dict):
            return {key: np.stack([o[key] for o in current]) for key in current[0]}
        return np.stack(current)

    @property
    def num_episodes(self) -> int:
        """Finished episodes waiting in the recorder."""
        return len(self.episodes)

    def pop_batch(self) -> EpisodeBatch | None:
        """Every episode finished since the last pop, ordered by seed (None if there is none)."""
        if not self.episodes:
            return None
        episodes = sorted(self.episodes, key=lambda ep: -1 if ep.seed is None else ep.seed)
        self.episodes = []
        return EpisodeBatch.from_episodes(episodes)

    def save(self, dst: str | Path, *, overwrite: bool = False, extra_info: dict[str, Any] | None = None) -> Any:
        """Pop the finished episodes and write them as an ildata store (a `TrajectoryDataset`)."""
        import ildata

        batch = self.pop_batch()
        if batch is None:
            raise ValueError("no finished episode to save")
        return ildata.save(
            batch,
            dst,
            observation_space=self.observation_space,
            action_space=self.action_space,
            env_id=base_env(self.venv).env_id,
            overwrite=overwrite,
            extra_info=extra_info,
        )
