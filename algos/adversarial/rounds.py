"""The state of an adversarial training run, and the SB3 callback that ends its rounds.

`RoundState` is everything `AdversarialTrainer.fit` sets up and the rounds share: the env and
its budget, the demonstrations, the discriminator's optimiser, the metrics row, and the round's
learner transitions so far. `RoundCallback` is called by the learner's `learn`: an on-policy
round ends with every `rollouts_per_round`-th rollout (before the learner's update with
`disc_first`, after it with `learner_first`); an off-policy round every `steps_per_round` env steps.

This module imports stable-baselines3; the trainer imports it only when training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from algos.adversarial.transitions import TransitionBatch
from algos.base import LogFn
from algos.online.budget import StepBudget

if TYPE_CHECKING:
    from algos.adversarial.trainer import AdversarialTrainer


@dataclass
class RoundState:
    """One `fit`'s shared state (see the module doc)."""

    venv: Any  # the `make_vec_env` stack (its step counter is the budget's)
    budget: StepBudget
    log: LogFn | None
    demos: TransitionBatch
    optimizer: torch.optim.Optimizer
    metrics: dict[str, float]  # the row logged at the end of every round
    rollouts_per_round: int = 1  # learner units (rollouts, train_freq collections) per round
    # The round's learner transitions so far, their episode steps and the rewards they were paid.
    pending: list[TransitionBatch] = field(default_factory=list)
    pending_t: list[np.ndarray] = field(default_factory=list)
    pending_rewards: list[np.ndarray] = field(default_factory=list)

    def record(self, batch: TransitionBatch, t: np.ndarray, paid: np.ndarray) -> None:
        self.pending.append(batch)
        self.pending_t.append(np.asarray(t))
        self.pending_rewards.append(paid)

    def clear(self) -> None:
        self.pending, self.pending_t, self.pending_rewards = [], [], []


class RoundCallback(BaseCallback):
    """Ends the trainer's rounds from inside the learner's `learn` (see the module doc)."""

    def __init__(self, trainer: AdversarialTrainer) -> None:
        super().__init__()
        self.trainer = trainer
        self.rollouts = 0
        self.since = 0  # off-policy: env steps since the last round

    @property
    def state(self) -> RoundState:
        assert self.trainer.state is not None
        return self.trainer.state

    def _on_step(self) -> bool:
        trainer = self.trainer
        if trainer.learner_cfg.algo == "sac":
            assert trainer.learner is not None
            self.since += self.state.venv.num_envs
            per_round = trainer.learner.unit * self.state.rollouts_per_round
            if self.since >= per_round and trainer.learner.model.replay_buffer.size() > 0:  # type: ignore[attr-defined]
                self.since = 0
                self.state.clear()
                trainer.train_disc(trainer.replay_pool())
                trainer.round_metrics()
        return True

    def _on_rollout_start(self) -> None:
        trainer = self.trainer
        if trainer.config.round_order == "learner_first" and self.rollouts and self.rollouts % self.state.rollouts_per_round == 0:
            trainer.end_round()
            trainer.round_metrics()

    def _on_rollout_end(self) -> None:
        trainer = self.trainer
        if trainer.learner_cfg.algo == "sac":
            return
        self.rollouts += 1
        if trainer.config.round_order == "disc_first" and self.rollouts % self.state.rollouts_per_round == 0:
            trainer.end_round(self.model.rollout_buffer, self.locals["values"], self.locals["dones"])  # type: ignore[attr-defined]
            trainer.round_metrics()
