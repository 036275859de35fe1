"""Train an RL expert with stable-baselines3 (`algo: rl`), to collect demonstrations from.

Kept as a recipe (recipes/expert-pendulum.yaml) so the shipped Pendulum data can be rebuilt:
train the expert, then `ildata collect --policy <run folder> ...`. The policy is saved as an
SB3 zip under `policy/` and loaded back through `algos.policies.load_sb3` (no unpickling).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from algos.base import Algorithm, LogFn, quiet_import, register
from algos.policies import SB3Policy, load_sb3, write_policy_meta
from ildata.envs import make_env
from ildata.episode import DataError
from ildata.store import TrajectoryDataset

MODEL_FILE = "model.zip"


@dataclass
class ExpertConfig:
    """Which SB3 algorithm, how long, and its constructor arguments (as in rl-baselines3-zoo)."""

    algorithm: Literal["SAC", "TD3", "PPO", "A2C", "DQN"] = "SAC"
    total_timesteps: int = 20_000
    policy: str = "MlpPolicy"
    hyperparams: dict[str, Any] = field(default_factory=dict)  # e.g. learning_rate, policy_kwargs
    log_interval: int = 1000  # env steps between metric rows (`total_timesteps` counts env steps too)
    return_window: int = 10  # episodes averaged in `episode_return_mean`

    def __post_init__(self) -> None:
        if self.total_timesteps < 1:
            raise DataError("total_timesteps: must be at least 1")
        if self.log_interval < 1:
            raise DataError("log_interval: must be at least 1")


@register("rl")
class Expert(Algorithm):
    """Online RL in the recipe's env; no dataset."""

    Config = ExpertConfig
    needs_dataset = False
    config: ExpertConfig

    def __init__(self, config: ExpertConfig, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.model: Any = None  # the SB3 model

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        env_id = env_id or self.env_id
        if env_id is None:
            raise DataError("env: the rl algorithm trains in an env")
        sb3 = quiet_import("stable_baselines3")
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.monitor import Monitor

        cfg = self.config
        self.env_id = env_id
        env: Monitor = Monitor(make_env(env_id))
        try:
            self.model = getattr(sb3, cfg.algorithm)(cfg.policy, env, seed=self.seed, device="cpu", verbose=0, **cfg.hyperparams)
        except TypeError as exc:  # an unknown constructor argument
            raise DataError(f"config.hyperparams: {exc}") from None
        returns: deque[float] = deque(maxlen=cfg.return_window)
        last: dict[str, float] = {}

        class Logger(BaseCallback):
            """Collect finished episodes' returns; emit a metric row every `log_interval` steps."""

            def _on_step(self) -> bool:
                nonlocal last
                for info in self.locals.get("infos", []):
                    if "episode" in info:
                        returns.append(float(info["episode"]["r"]))
                if self.num_timesteps % cfg.log_interval == 0 and returns:
                    last = {
                        "episode_return_mean": float(np.mean(returns)),
                        "episodes": float(len(env.get_episode_rewards())),
                    }
                    if log is not None:
                        log(self.num_timesteps, last)
                return True

        self.model.learn(total_timesteps=cfg.total_timesteps, callback=Logger())
        env.close()
        self.policy = SB3Policy(self.model)
        return last

    def _save_state(self, run_dir: Path) -> None:
        """The SB3 zip under `policy/` (loaded back without unpickling, see `load_sb3`)."""
        if self.model is None:
            raise RuntimeError("fit before save")
        policy_dir = run_dir / "policy"
        policy_dir.mkdir(parents=True, exist_ok=True)
        self.model.save(policy_dir / MODEL_FILE)
        write_policy_meta(
            policy_dir,
            "sb3",
            self.model.observation_space,
            self.model.action_space,
            file=MODEL_FILE,
            env_id=self.env_id,
            algorithm=self.config.algorithm,
        )

    def _load_state(self, run_dir: Path) -> None:
        if self.env_id is None:
            raise DataError("an rl run folder needs the env it was trained in (env_id is null)", subject=run_dir)
        policy = load_sb3(run_dir / "policy" / MODEL_FILE, self.env_id)
        self.model, self.policy = policy.model, policy
