"""Making gymnasium envs by id, importing the package that registers an id's namespace first.

gymnasium only knows ids whose registering module was imported; a user typing
`--env seals/CartPole-v0` should not have to know that. Packages are imported lazily, on use.
"""

from __future__ import annotations

import importlib
from typing import Any

# Namespace prefix -> module whose import registers it. `ildata/` envs (tabular MDPs) live with
# the algorithms that need them; the CLI reaches them lazily, as it reaches `algos` for training.
ENV_PROVIDERS: dict[str, str] = {
    "seals/": "seals",
    "ildata/": "algos.envs",
}


def ensure_registered(env_id: str) -> None:
    for prefix, module in ENV_PROVIDERS.items():
        if env_id.startswith(prefix):
            importlib.import_module(module)


def make_env(env_id: str, **kwargs: Any):
    """gymnasium.make with the registering package imported; unknown ids give a DataError."""
    import gymnasium as gym

    from ildata.episode import DataError

    ensure_registered(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise DataError(f"cannot make env {env_id!r}: {exc}") from None


def env_spaces(env_id: str) -> tuple[Any, Any]:
    """(observation_space, action_space) of one instance of `env_id`."""
    env = make_env(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
