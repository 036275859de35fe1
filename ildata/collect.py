"""Roll a policy out in gymnasium vector envs and write the episodes straight into the store.

Data layer: no torch here. A policy is any callable `obs_batch -> action_batch`; loading SB3
zips and run folders lives in `algos.policies` (the CLI reaches it lazily).

gymnasium 1.0 vector envs autoreset on the *next* step: the step after a done returns the
reset observation (its reward and flags are meaningless), and the final observation of an
episode is the one returned on the done step. `rollout` follows exactly that contract.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ildata.envs import env_spaces, make_env
from ildata.episode import DataError, Episode, flatten_obs, unflatten_obs
from ildata.stats import rollout_stats

PolicyFn = Callable[[Any], np.ndarray]


def _episode_seeds_wrapper():
    import gymnasium as gym

    class EpisodeSeeds(gym.Wrapper):
        """Seed every reset from a fixed schedule (`first`, `first + stride`, ...).

        Vector-env autoresets call `reset()` without a seed, which would leave every episode
        after the first unreproducible; with this schedule each recorded episode has its own
        seed, and a deterministic policy yields the same episodes whatever the number of envs.
        """

        def __init__(self, env: Any, first: int, stride: int) -> None:
            super().__init__(env)
            self._next = first
            self._stride = stride

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            episode_seed = self._next
            self._next += self._stride
            self.env.action_space.seed(episode_seed)
            obs, info = self.env.reset(seed=episode_seed, options=options)
            return obs, {**info, "episode_seed": episode_seed}

    return EpisodeSeeds


class RandomPolicy:
    """Uniformly random actions from a seeded action space (the normalised score's floor)."""

    deterministic = False

    def __init__(self, action_space: Any, seed: int = 0) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        n = len(next(iter(flatten_obs(obs).values())))
        return np.stack([self.action_space.sample() for _ in range(n)])


def rollout(
    policy: PolicyFn,
    env_id: str,
    episodes: int,
    *,
    seed: int = 0,
    num_envs: int = 1,
    progress: bool = False,
) -> list[Episode]:
    """Run `policy` until `episodes` episodes finished; episode k is reset with seed `seed + k`.

    Episodes come back ordered by seed. Each keeps its final observation (T+1 rows),
    rewards, terminated/truncated flags and seed.
    """
    if episodes < 1:
        raise DataError(f"episodes must be at least 1, got {episodes}")
    from gymnasium.vector import SyncVectorEnv

    # Synchronous envs: the policy forward pass dominates for the small envs imitation data
    # comes from, and subprocess workers would fight the learner for the machine's few cores.
    num_envs = max(1, min(num_envs, episodes))
    wrapper = _episode_seeds_wrapper()

    def env_fn(i: int) -> Callable[[], Any]:
        return lambda: wrapper(make_env(env_id), first=seed + i, stride=num_envs)

    envs = SyncVectorEnv([env_fn(i) for i in range(num_envs)])
    # Env i runs seeds seed+i, seed+i+num_envs, ...: it owes the episodes with seed < seed+episodes.
    owed = np.array([len(range(i, episodes, num_envs)) for i in range(num_envs)])
    done_by_seed: dict[int, Episode] = {}
    obs_rows: list[list[dict[str, np.ndarray]]] = [[] for _ in range(num_envs)]
    acts: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
    rews: list[list[float]] = [[] for _ in range(num_envs)]
    seeds = [0] * num_envs
    bar = _progress(episodes, env_id) if progress else None
    try:

        def start(i: int, flat: dict[str, np.ndarray], info: dict[str, Any]) -> None:
            obs_rows[i] = [{k: v[i] for k, v in flat.items()}]
            acts[i], rews[i] = [], []
            seeds[i] = int(info["episode_seed"][i])

        obs: Any
        reward: np.ndarray
        terminated: np.ndarray
        truncated: np.ndarray
        obs, info = envs.reset()
        for i in range(num_envs):
            start(i, flatten_obs(obs), info)
        resetting = np.zeros(num_envs, dtype=bool)
        while owed.any():
            action = np.asarray(policy(obs))
            obs, reward, terminated, truncated, info = envs.step(action)
            flat = flatten_obs(obs)
            for i in range(num_envs):
                if resetting[i]:  # env i finished last step: this step reset it, ignoring its action
                    start(i, flat, info)
                    continue
                if not owed[i]:
                    continue
                acts[i].append(action[i])
                rews[i].append(float(reward[i]))
                obs_rows[i].append({k: v[i] for k, v in flat.items()})
                if terminated[i] or truncated[i]:  # obs[i] is this episode's final observation
                    done_by_seed[seeds[i]] = Episode(
                        obs=unflatten_obs({k: np.stack([row[k] for row in obs_rows[i]]) for k in flat}),
                        acts=np.stack(acts[i]),
                        rews=np.asarray(rews[i], dtype=np.float64),
                        terminated=bool(terminated[i]),
                        truncated=bool(truncated[i]) and not bool(terminated[i]),
                        seed=seeds[i],
                    )
                    owed[i] -= 1
                    if bar is not None:
                        bar.update(1)
            resetting = terminated | truncated
    finally:
        envs.close()
        if bar is not None:
            bar.close()
    return [done_by_seed[s] for s in sorted(done_by_seed)]


def _progress(total: int, env_id: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=f"collect {env_id}", unit="ep", disable=not sys.stderr.isatty())


def returns_summary(episodes: list[Episode]) -> dict[str, float]:
    """Mean/std/min/max return and mean length over episodes.

    Computed by `ildata.stats.rollout_stats` (population std, ddof=0), so a dataset's recorded
    expert std and `ildata inspect`'s return std are the same number.
    """
    returns = np.array([float(np.sum(ep.rews)) if ep.rews is not None else 0.0 for ep in episodes])
    lengths = np.array([len(ep) for ep in episodes])
    stats = rollout_stats(lengths, returns)
    return {
        "mean": stats["return_mean"],
        "std": stats["return_std"],
        "min": stats["return_min"],
        "max": stats["return_max"],
        "n": int(stats["n_traj"]),
        "mean_length": stats["len_mean"],
    }


def collect(
    policy: PolicyFn,
    env_id: str,
    episodes: int,
    dst: str,
    *,
    seed: int = 0,
    num_envs: int = 1,
    random_episodes: int = 20,
    policy_name: str = "",
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Any:
    """Roll out `policy`, measure a random policy on the same env, and save both into a store.

    `info["collection"]` records the policy, env, seeds, and the expert's and a random
    policy's mean return: the two ends of the normalised score used by `ildata train/eval`.
    """
    from ildata.store import Provenance, save

    observation_space, action_space = env_spaces(env_id)
    demos = rollout(policy, env_id, episodes, seed=seed, num_envs=num_envs, progress=progress)
    # The random baseline uses seeds after the demonstrations' so that no reset is shared.
    baseline = rollout(
        RandomPolicy(action_space, seed=seed + episodes),
        env_id,
        random_episodes,
        seed=seed + episodes,
        num_envs=num_envs,
    )
    expert, random = returns_summary(demos), returns_summary(baseline)
    collection = {
        "policy": policy_name,
        "env_id": env_id,
        "episodes": episodes,
        "seed": seed,
        "num_envs": num_envs,
        "expert_mean_return": expert["mean"],
        "expert_std_return": expert["std"],
        "random_mean_return": random["mean"],
        "random_std_return": random["std"],
        "random_episodes": random_episodes,
        **dict(provenance or {}),
    }
    return save(
        demos,
        dst,
        observation_space=observation_space,
        action_space=action_space,
        env_id=env_id,
        overwrite=overwrite,
        provenance=Provenance(
            source_path=policy_name or None, source_format="ildata-collect", source_sha256=collection.get("policy_sha256")
        ),
        extra_info={"collection": collection},
    )
