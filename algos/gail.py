"""GAIL (Ho & Ermon 2016): a discriminator D(s, a) tells expert transitions from the learner's;
the learner is paid `-log(1 - D)` (default, never negative) or `log D - log(1 - D)` (the logit).

Everything else (rounds, horizons, learners, budgets, saving) is `algos.adversarial`'s.
With D = sigmoid(logit): -log(1 - D) = softplus(logit), log D - log(1 - D) = logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from algos.adversarial import AdversarialConfig, AdversarialTrainer
from algos.base import register
from algos.online.reward_nets import RewardNet, RewardNetConfig


@dataclass
class GAILConfig(AdversarialConfig):
    """`algos.adversarial.AdversarialConfig` plus the reward GAIL pays."""

    reward_form: Literal["-log(1-D)", "logit"] = "-log(1-D)"
    disc_use_next_state: bool = False  # the discriminator sees (s, a), and s' when true
    # False: D(s) (or D(s, s')), a state-only discriminator: it cannot tell the learner's
    # exploration noise in a from the expert's actions, so its reward is about where the learner goes.
    disc_use_action: bool = True


@register("gail")
class GAIL(AdversarialTrainer):
    """GAIL: an RL learner paid by a discriminator of expert vs learner transitions."""

    Config = GAILConfig
    config: GAILConfig

    def build_net(self, observation_space: gym.Space, action_space: gym.Space) -> RewardNet:
        cfg = RewardNetConfig(
            use_action=self.config.disc_use_action, use_next_state=self.config.disc_use_next_state, hidden=tuple(self.config.disc_hidden)
        )
        return RewardNet(observation_space, action_space, cfg)

    def disc_logits(self, feats: tuple[torch.Tensor, ...], log_pi: torch.Tensor | None) -> torch.Tensor:
        return self.net(*feats)

    def policy_reward(self, raw: np.ndarray, log_pi: np.ndarray | None) -> np.ndarray:
        return np.logaddexp(0.0, raw) if self.config.reward_form == "-log(1-D)" else raw

    def reward_test(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        logit = self.net(*feats)
        return torch.nn.functional.softplus(logit) if self.config.reward_form == "-log(1-D)" else logit
