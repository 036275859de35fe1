"""AIRL (Fu et al. 2018): the discriminator's logit is f(s, a, s') - log pi(a|s), with
f = g(s) + gamma * h(s') - h(s) (a `ShapedRewardNet`; h(s') is zeroed only when the episode
terminated, never on a time limit). The learner is paid f (`policy_reward: f`, imitation's
choice, leaving -log pi to the learner's entropy bonus) or the logit itself (`f-log_pi`).
The reward kept after training (`reward_test`: relabelling, fresh learners) is g, the part
meant to transfer; g(s) is sharply peaked on the demonstrations' states and -10 to -1000s off them,
so a fresh learner is paid it normalised (`reward_from`, `algos.expert`). Everything else is
`algos.adversarial`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from algos.adversarial import AdversarialConfig, AdversarialTrainer, default_learner
from algos.base import register
from algos.online.learner_configs import LearnerConfig
from algos.online.reward_nets import RewardNet, RewardNetConfig, ShapedRewardNet


@dataclass
class AIRLConfig(AdversarialConfig):
    """`algos.adversarial.AdversarialConfig` plus AIRL's reward shape."""

    policy_reward: Literal["f", "f-log_pi"] = "f"
    g_uses_action: bool = False  # g(s) (the paper's disentangled reward) or g(s, a)
    potential_hidden: list[int] = field(default_factory=lambda: [32, 32])
    shaping_gamma: float | None = None  # the gamma of f's shaping term; None: the learner's gamma
    disc_updates_per_round: int = 16  # imitation's tuned AIRL configs all use 16
    # Running statistics, not the demonstrations' (GAIL's default): f is unbounded, and on states far
    # from the demonstrations it extrapolates to -100s, which drowns the learner's signal
    # (seals/CartPole 100k: running 0.48/0.28 vs expert + gradient penalty 0.23/0.42; RESULTS-adversarial.md).
    disc_normalize_obs: Literal["expert", "running"] = "running"
    # PPO at twice GAIL's learning rate: with a state-only g the learner's signal about actions comes
    # through the dynamics only, and at 5e-4 its entropy stayed near ln 2 for 60k env steps
    # (seals/CartPole 100k, seeds 0-2: 0.48/0.28/0.23 at 5e-4, 1.00/0.61/1.00 at 1e-3).
    learner: LearnerConfig = field(default_factory=lambda: replace(default_learner(), learning_rate=1e-3))


@register("airl")
class AIRL(AdversarialTrainer):
    """AIRL: GAIL with a shaped discriminator whose g(s) is a reward that transfers to fresh learners."""

    Config = AIRLConfig
    config: AIRLConfig
    uses_log_prob = True

    def build_net(self, observation_space: gym.Space, action_space: gym.Space) -> RewardNet:
        cfg = self.config
        gamma = cfg.shaping_gamma if cfg.shaping_gamma is not None else self.learner_cfg.gamma
        net_cfg = RewardNetConfig(
            use_action=cfg.g_uses_action,
            hidden=tuple(cfg.disc_hidden),
            shaped=True,
            potential_hidden=tuple(cfg.potential_hidden),
            gamma=gamma,
        )
        return ShapedRewardNet(observation_space, action_space, net_cfg)

    @property
    def reward_uses_log_prob(self) -> bool:
        return self.config.policy_reward == "f-log_pi"

    def disc_logits(self, feats: tuple[torch.Tensor, ...], log_pi: torch.Tensor | None) -> torch.Tensor:
        assert log_pi is not None
        return self.net(*feats) - log_pi

    def policy_reward(self, raw: np.ndarray, log_pi: np.ndarray | None) -> np.ndarray:
        if self.config.policy_reward == "f" or log_pi is None:
            return raw
        return raw - log_pi

    def reward_test(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        state, action, next_state, _ = feats
        return self.net.base_reward(state, action, next_state)
