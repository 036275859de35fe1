"""The learner configs: typed dataclasses a recipe's `learner:` mapping fits key for key.

`learner: {algo: ppo, rollout_steps: 512, batch_size: 64, learning_rate: 3e-4}`: SB3's own
parameter names except one, SB3's `n_steps` (env steps per env between two updates), which is
`rollout_steps`, because gradient steps and env steps are different words everywhere (`n_steps`
is refused with its new name). `algo` picks the dataclass: a config field typed `LearnerConfig`
(the union) is parsed by `algos.recipe.build_dataclass` on that key, so recipes, `--set
config.learner.x=...` and the config's own docs all see the same fields. `normalize_reward` and
`normalize_obs` are not SB3 arguments: see `algos.online.learners`.

These are plain dataclasses, kept apart from the models `algos.online.learners` builds from
them, so an algorithm's Config names them without reaching into the training code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from algos.typed_config import build_dataclass
from ildata.episode import DataError

# Keys a recipe may still use, refused with their new names (`algos.recipe.build_dataclass`).
RENAMED_KEYS: dict[str, str] = {"obs_norm": "normalize_obs"}
RENAMED_N_STEPS: dict[str, str] = {**RENAMED_KEYS, "n_steps": "rollout_steps"}


@dataclass
class PPOConfig:
    """stable_baselines3.PPO's arguments (same names but `rollout_steps`); `net_arch` goes to `policy_kwargs`."""

    RENAMED: ClassVar[dict[str, str]] = RENAMED_N_STEPS

    algo: Literal["ppo"] = "ppo"
    rollout_steps: int = 2048  # SB3's n_steps, per env: a rollout is rollout_steps * n_envs env steps
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    target_kl: float | None = None
    # Generalized state-dependent exploration (Box actions): rl-baselines3-zoo's tuned PPO for
    # Pendulum and MuJoCo uses it; sde_sample_freq -1 draws the noise matrix once per rollout.
    use_sde: bool = False
    sde_sample_freq: int = -1
    net_arch: list[int] | None = None
    normalize_reward: bool = False
    normalize_obs: bool = False  # a fixed input normaliser, set from the algorithm's demonstrations (`FixedObsNorm`)

    def __post_init__(self) -> None:
        _check_positive(self, "rollout_steps", "batch_size", "n_epochs")


@dataclass
class SACConfig:
    """stable_baselines3.SAC's arguments (same names); `train_freq` counts vector steps."""

    RENAMED: ClassVar[dict[str, str]] = RENAMED_KEYS

    algo: Literal["sac"] = "sac"
    learning_rate: float = 3e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    train_freq: int = 1
    gradient_steps: int = 1
    ent_coef: str | float = "auto"
    target_update_interval: int = 1
    net_arch: list[int] | None = None
    normalize_reward: bool = False
    normalize_obs: bool = False  # a fixed input normaliser, set from the algorithm's demonstrations (`FixedObsNorm`)

    def __post_init__(self) -> None:
        _check_positive(self, "buffer_size", "batch_size", "train_freq")


@dataclass
class TRPOConfig:
    """sb3_contrib.TRPO's arguments (same names but `rollout_steps`); imitation's original GAIL learner."""

    RENAMED: ClassVar[dict[str, str]] = RENAMED_N_STEPS

    algo: Literal["trpo"] = "trpo"
    rollout_steps: int = 2048  # SB3's n_steps
    batch_size: int = 128
    learning_rate: float = 1e-3  # the critic's
    gamma: float = 0.99
    gae_lambda: float = 0.95
    cg_max_steps: int = 15
    cg_damping: float = 0.1
    line_search_shrinking_factor: float = 0.8
    line_search_max_iter: int = 10
    n_critic_updates: int = 10
    target_kl: float = 0.01
    normalize_advantage: bool = True
    net_arch: list[int] | None = None
    normalize_reward: bool = False
    normalize_obs: bool = False  # a fixed input normaliser, set from the algorithm's demonstrations (`FixedObsNorm`)

    def __post_init__(self) -> None:
        _check_positive(self, "rollout_steps", "batch_size")


@dataclass
class DQNConfig:
    """stable_baselines3.DQN's arguments (same names); `train_freq` counts vector steps."""

    RENAMED: ClassVar[dict[str, str]] = RENAMED_KEYS

    algo: Literal["dqn"] = "dqn"
    learning_rate: float = 1e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 32
    tau: float = 1.0
    gamma: float = 0.99
    train_freq: int = 4
    gradient_steps: int = 1
    target_update_interval: int = 10_000
    exploration_fraction: float = 0.1  # of the steps of each learn() call
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    net_arch: list[int] | None = None
    normalize_reward: bool = False
    normalize_obs: bool = False  # a fixed input normaliser, set from the algorithm's demonstrations (`FixedObsNorm`)

    def __post_init__(self) -> None:
        _check_positive(self, "buffer_size", "batch_size", "train_freq")


def _check_positive(config: object, *names: str) -> None:
    """DataError naming the first field that is not at least 1 (recipes prefix the key)."""
    for name in names:
        if getattr(config, name) < 1:
            raise DataError(f"{name}: must be at least 1, got {getattr(config, name)}")


LearnerConfig = PPOConfig | SACConfig | TRPOConfig | DQNConfig
CONFIGS: dict[str, type[LearnerConfig]] = {"ppo": PPOConfig, "sac": SACConfig, "trpo": TRPOConfig, "dqn": DQNConfig}


def learner_config(mapping: Mapping[str, Any]) -> LearnerConfig:
    """A recipe's `learner:` mapping -> its config dataclass (strict: unknown keys are errors;
    no `algo`: PPO, as in a typed `learner:` field)."""
    algo = mapping.get("algo", "ppo")
    if algo not in CONFIGS:
        raise DataError(f"learner.algo: must be one of {', '.join(CONFIGS)}, got {algo!r}")
    config: LearnerConfig = build_dataclass(CONFIGS[algo], dict(mapping), "learner")
    return config
