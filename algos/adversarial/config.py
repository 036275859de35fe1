"""`AdversarialConfig`: the settings GAIL and AIRL share (a recipe's `config:` maps onto the subclass)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from algos.online.learner_configs import LearnerConfig, PPOConfig, learner_config
from ildata.episode import DataError


def default_learner() -> PPOConfig:
    """PPO settings measured on seals/CartPole-v0 (benchmarks/RESULTS-adversarial.md)."""
    return PPOConfig(rollout_steps=256, batch_size=256, n_epochs=10, learning_rate=5e-4, gamma=0.97, ent_coef=0.0)


@dataclass
class AdversarialConfig:
    """Settings shared by GAIL and AIRL; a recipe's `config:` maps onto the subclass one-to-one."""

    RENAMED: ClassVar[dict[str, str]] = {
        "gen_steps_per_round": "steps_per_round",
        "reward_normalization": "normalize_reward",
        "disc_input_norm": "disc_normalize_obs",
    }

    total_timesteps: int = 200_000  # env steps in all: an upper bound, checked on the step counter
    n_envs: int = 8
    # Env steps per round; a whole number of learner units (rollouts); None: one rollout.
    steps_per_round: int | None = None
    disc_updates_per_round: int = 8
    demo_batch_size: int = 256  # expert transitions per discriminator update (as many learner ones)
    disc_learning_rate: float = 1e-3
    disc_weight_decay: float = 0.0
    disc_hidden: list[int] = field(default_factory=lambda: [32, 32])
    gradient_penalty: float = 0.0  # coefficient of a WGAN-GP-style penalty (DAC); 0: off
    round_order: Literal["disc_first", "learner_first"] = "disc_first"
    # The learner's reward: running statistics of its raw rewards, updated once per round
    # (`algos.online.normalizer.RewardMoments`).
    normalize_reward: Literal["standard", "scale", "off"] = "standard"
    # The discriminator's input normaliser: the demonstrations' statistics, frozen ("expert"), or
    # running statistics of every batch it trains on ("running": the learner's drifting states,
    # e.g. a CartPole cart pushed one way for 500 steps, inflate the scale until expert states
    # all look alike; RESULTS-adversarial.md, GAIL seed 2).
    disc_normalize_obs: Literal["expert", "running"] = "expert"
    # With disc_normalize_obs expert: clip the net's state inputs to the demonstrations' mean +- this
    # many stds (None: no clip), so states far from any demonstration (a fallen pole, a cart
    # hundreds of metres away) do not reach an unbounded extrapolation of the net (AIRL's f).
    disc_input_clip: float | None = None
    allow_variable_horizon: bool = False
    absorbing: bool = False  # DAC's absorbing-state fix for terminating envs / demonstrations
    bc_warm_start_steps: int = 0  # gradient steps of BC on the demonstrations before training; 0: off
    # Train a fresh learner on the saved reward of this run folder (a gail/airl run), no adversary:
    # the same as `algo: rl` with `reward_from` (`algos.expert`), kept here so a transfer recipe can
    # be its adversarial recipe plus one key. A sweep's configuration folder (`ildata sweep ... --out
    # DIR`: DIR/<config>/) works too: each seed takes the reward its own seed learned (`seed-<n>/`).
    reward_from: str | None = field(default=None, metadata={"path": True})
    # The RL learner, `{algo: ppo | trpo | sac, ...}` in SB3's words (`algos.online.learner_configs`).
    learner: LearnerConfig = field(default_factory=default_learner)

    def __post_init__(self) -> None:
        if isinstance(self.learner, Mapping):  # built in code from a mapping, not through a recipe
            self.learner = learner_config(self.learner)
        for name in ("total_timesteps", "n_envs", "disc_updates_per_round", "demo_batch_size"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.steps_per_round is not None and self.steps_per_round < 1:
            raise DataError(f"steps_per_round: must be at least 1, got {self.steps_per_round}")
        if self.bc_warm_start_steps < 0:
            raise DataError("bc_warm_start_steps: must be >= 0")
        if not self.disc_learning_rate > 0:
            raise DataError("disc_learning_rate: must be positive")
        if self.gradient_penalty < 0:
            raise DataError("gradient_penalty: must be >= 0")
        self.disc_hidden = list(self.disc_hidden)
        if self.learner.normalize_reward:
            raise DataError("learner.normalize_reward: the rewards are relabelled; use config.normalize_reward instead")
        if self.absorbing and self.learner.algo == "sac":
            raise DataError("absorbing: implemented for on-policy learners (ppo, trpo); use learner.algo: ppo")
