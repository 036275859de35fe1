"""RL learners that algorithms train on a (learned) reward: one typed config per learner.

Density's PPO uses it today; the adversarial and preference-based algorithms train the same PPO
on their own rewards. A recipe nests it (`config: {ppo: {...}}`), so every algorithm that
trains PPO spells its settings alike, in stable-baselines3's words: `total_timesteps` counts env
steps; `rollout_steps` is SB3's `n_steps` (env steps per env between two updates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import gymnasium as gym

from ildata.episode import DataError

if TYPE_CHECKING:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv


@dataclass
class PPOConfig:
    """stable-baselines3 PPO settings (SB3's defaults except `rollout_steps`)."""

    RENAMED: ClassVar[dict[str, str]] = {"n_steps": "rollout_steps", "timesteps": "total_timesteps"}

    total_timesteps: int = 0  # env steps in all; 0: no PPO
    rollout_steps: int = 1024  # env steps per env between updates (SB3's n_steps)
    n_envs: int = 1  # parallel envs (SB3 DummyVecEnv); a rollout is rollout_steps * n_envs steps
    batch_size: int = 64
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    n_epochs: int = 10
    ent_coef: float = 0.0
    normalize_reward: bool = True  # scale rewards by a running std of returns (SB3 VecNormalize)

    def __post_init__(self) -> None:
        if self.total_timesteps < 0:
            raise DataError(f"total_timesteps: must be >= 0, got {self.total_timesteps}")
        for name in ("rollout_steps", "n_envs", "batch_size", "n_epochs"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise DataError(f"learning_rate: must be positive, got {self.learning_rate}")


def make_ppo(cfg: PPOConfig, venv: VecEnv, observation_space: gym.Space, seed: int) -> PPO:
    """An SB3 PPO on `venv` (wrapped in VecNormalize for rewards when `normalize_reward`)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    if cfg.normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=cfg.gamma)
    return PPO(
        "MultiInputPolicy" if isinstance(observation_space, gym.spaces.Dict) else "MlpPolicy",
        venv,
        n_steps=cfg.rollout_steps,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        n_epochs=cfg.n_epochs,
        ent_coef=cfg.ent_coef,
        seed=seed,
        device="cpu",
        verbose=0,
    )
