"""Variable horizons, refused before adversarial imitation trains unless the recipe chose.

An episode that ends early leaks reward: a discriminator reward positive everywhere pays the
learner to survive, one negative everywhere pays it to die (Kostrikov et al. 2019, "Discriminator-
Actor-Critic"). So variable-horizon demonstrations, an env whose random actions terminate
episodes, and a learner episode that terminates raise `VariableHorizonError`, unless
`allow_variable_horizon: true` (accept the bias) or `absorbing: true` (DAC's fix).
"""

from __future__ import annotations

import numpy as np

from ildata.horizon import VariableHorizonError, check_fixed_horizon
from ildata.store import TrajectoryDataset

HORIZON_FIX = (
    "Episode ends leak reward to adversarial imitation (a reward positive everywhere pays the learner to "
    "survive): use a fixed-horizon env (seals/...) and data, or set config.absorbing: true (DAC's "
    "absorbing-state fix), or config.allow_variable_horizon: true if you accept the bias"
)


def check_demonstration_horizons(dataset: TrajectoryDataset, what: str) -> None:
    """VariableHorizonError for demonstrations of several lengths or ending by termination."""
    try:
        check_fixed_horizon(dataset.lengths, what=what)
    except VariableHorizonError as exc:
        raise VariableHorizonError(f"config.allow_variable_horizon: demonstrations have a {exc} {HORIZON_FIX}") from None
    if np.asarray(dataset.episode_column("terminated"), dtype=bool).any():
        raise VariableHorizonError(f"config.allow_variable_horizon: demonstrations end by termination. {HORIZON_FIX}")


def env_terminates(env_id: str, seed: int, episodes: int = 3) -> bool:
    """Whether random actions end an episode of `env_id` by termination (a cheap probe; seals/ envs never do)."""
    if env_id.startswith("seals/"):
        return False
    from ildata.envs import make_env

    env = make_env(env_id)
    try:
        env.action_space.seed(seed)
        for k in range(episodes):
            env.reset(seed=seed + k)
            while True:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated:
                    return True
                if truncated:
                    break
    finally:
        env.close()
    return False
