"""One round of discriminator training: logistic regression, expert (1) vs learner (0).

`train_discriminator` takes `disc_updates_per_round` Adam steps on `demo_batch_size` expert and as
many learner transitions each, with an optional gradient penalty (DAC, WGAN-GP), then updates the
learner-reward statistics (`RewardMoments`) from the round's transitions. `fit_input_norms` sets
the net's input normalisers to the demonstrations' statistics (`disc_normalize_obs: expert`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from algos.adversarial.transitions import TransitionBatch, concat, sample
from algos.online.normalizer import RunningNorm

if TYPE_CHECKING:
    from algos.adversarial.trainer import AdversarialTrainer


def input_norms(net: torch.nn.Module) -> list[RunningNorm]:
    return [m for m in net.modules() if isinstance(m, RunningNorm)]


def make_optimizer(trainer: AdversarialTrainer) -> torch.optim.Optimizer:
    cfg = trainer.config
    return torch.optim.Adam(trainer.net.parameters(), lr=cfg.disc_learning_rate, weight_decay=cfg.disc_weight_decay)


def fit_input_norms(trainer: AdversarialTrainer, demos: TransitionBatch, min_var: float = 1e-4) -> None:
    """Set the net's input normalisers to the demonstrations' statistics (one forward pass with
    only the normalisers in training mode: each sees exactly what it normalises), variances
    floored so a feature constant in the demonstrations does not blow up; then frozen. With
    `disc_input_clip`, the state box is set first, so the statistics are of clipped states."""
    norms = input_norms(trainer.net)
    trainer.net.eval()
    trainer.state_bounds = None
    with torch.no_grad():
        if trainer.config.disc_input_clip is not None:
            state = trainer.encode(demos)[0]
            mean, std = state.mean(0), state.std(0).clamp(min=min_var**0.5)
            k = trainer.config.disc_input_clip
            trainer.state_bounds = ((mean - k * std).tolist(), (mean + k * std).tolist())
        for norm in norms:
            norm.reset()
            norm.train()
        trainer.net(*trainer.encode(demos))
        for norm in norms:
            norm.eval()
            norm.var.clamp_(min=min_var)
            norm.frozen = True  # the demonstrations' statistics all run


def gradient_penalty(net: torch.nn.Module, feats: tuple[torch.Tensor, ...], n: int) -> torch.Tensor:
    """(||d logit / d x|| - 1)^2 at random mixes of expert and learner inputs (DAC, WGAN-GP)."""
    alpha = torch.rand(n, 1)
    mixed = [(alpha * x[:n] + (1 - alpha) * x[n:]).requires_grad_(True) for x in feats[:3]]
    norms = [(norm, norm.frozen) for norm in input_norms(net)]
    for norm, _ in norms:
        norm.frozen = True  # interpolations are not data: running statistics skip them
    try:
        out = net(*mixed, feats[3][n:])
    finally:
        for norm, was in norms:
            norm.frozen = was
    grads = torch.autograd.grad(out.sum(), mixed, create_graph=True, allow_unused=True)  # unused: inputs the net ignores
    norm = torch.cat([g.reshape(n, -1) for g in grads if g is not None], dim=1).norm(dim=1)
    return ((norm - 1) ** 2).mean()


def train_discriminator(trainer: AdversarialTrainer, gen_pool: TransitionBatch) -> dict[str, float]:
    """`disc_updates_per_round` logistic-regression steps, expert (1) vs learner (0); loss/accuracy
    of the last step, and the mean learner reward of `gen_pool` under the updated net."""
    assert trainer.state is not None
    cfg, net, state = trainer.config, trainer.net, trainer.state
    n = cfg.demo_batch_size
    net.train()
    stats: dict[str, float] = {}
    for _ in range(cfg.disc_updates_per_round):
        expert, gen = sample(state.demos, n, trainer.rng), sample(gen_pool, n, trainer.rng)
        both = concat([expert, gen])
        log_pi = trainer.log_prob(both)
        feats = trainer.encode(both)
        logits = trainer.disc_logits(feats, None if log_pi is None else torch.from_numpy(log_pi.astype(np.float32)))
        labels = torch.cat([torch.ones(n), torch.zeros(n)])
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        total = loss + (cfg.gradient_penalty * gradient_penalty(net, feats, n) if cfg.gradient_penalty else 0.0)
        state.optimizer.zero_grad()
        total.backward()
        state.optimizer.step()
        with torch.no_grad():
            right = ((logits > 0).float() == labels).float()
            stats = {
                "disc_loss": float(loss),
                "disc_acc": float(right.mean()),
                "disc_acc_expert": float(right[:n].mean()),
                "disc_acc_gen": float(right[n:].mean()),
            }
    net.eval()
    real = gen_pool.real()
    raw_rewards = trainer.policy_reward(trainer.raw_output(real), trainer.log_prob(real) if trainer.reward_uses_log_prob else None)
    trainer.moments.update(raw_rewards)
    stats["learned_reward_mean"] = float(raw_rewards.mean())
    state.metrics.update(stats)
    return stats
