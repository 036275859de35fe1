"""The MLP policy BC trains: its network, the closed-form loss terms, and its saved form.

`PolicyNet` maps a feature matrix (`algos.sampler.obs_features`) to logits (Discrete actions) or
action means (Box actions); `batch_terms` gives the log-probability and entropy BC's objective
needs without building torch.distributions objects; `MLPPolicy` acts with a trained net, and the
`mlp` entry of `POLICY_LOADERS` rebuilds one from `policy/policy.json` + `policy/weights.pt`.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from algos.policies import POLICY_LOADERS, Policy, PolicyMeta
from algos.sampler import obs_features
from ildata.episode import DataError, Obs

WEIGHTS_FILE = "weights.pt"  # the net's state dict, beside policy.json


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def resolve_head(head: str, action_space: gym.Space) -> str:
    """`auto` -> categorical for Discrete actions, gaussian for Box; reject mismatches."""
    from gymnasium import spaces

    discrete = isinstance(action_space, spaces.Discrete)
    if not discrete and not isinstance(action_space, spaces.Box):
        raise DataError(f"head: BC supports Discrete and Box actions, not {action_space}")
    if head == "auto":
        return "categorical" if discrete else "gaussian"
    if (head == "categorical") != discrete:
        raise DataError(f"head: {head} does not fit action space {action_space}")
    return head


class PolicyNet(nn.Module):
    """MLP from features to logits (categorical) or action means (Gaussian)."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(self, in_dim: int, hidden_sizes: list[int], activation: str, head: str, out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)
        self.head = head
        # SB3's DiagGaussian: one learned log std per action dimension, not state-dependent.
        self.log_std = nn.Parameter(torch.zeros(out_dim), requires_grad=head == "gaussian")
        self.register_buffer("obs_mean", torch.zeros(in_dim))
        self.register_buffer("obs_std", torch.ones(in_dim))
        # False while obs_mean/obs_std are the identity (BC without `normalize_obs`): the training
        # loop then skips two ops per step. A loaded net always applies them.
        self.normalize_obs = True

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        out = self.mlp((features - self.obs_mean) / self.obs_std)
        if self.head == "categorical":
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Independent(torch.distributions.Normal(out, self.log_std.exp()), 1)


def l2_norm(net: nn.Module) -> torch.Tensor:
    """imitation's l2 term: half the sum of squared trainable weights."""
    return sum((p.square().sum() for p in net.parameters() if p.requires_grad), torch.zeros(())) / 2


HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


def batch_terms(net: PolicyNet, obs: torch.Tensor, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample log-probability of `acts`, and the batch's mean entropy, in closed form.

    The same values as `net.distribution(obs).log_prob(acts)` / `.entropy().mean()`, without
    building torch.distributions objects: at batch 32 every tensor op is ~5 us of overhead for
    microseconds of arithmetic, so the loss is written with as few ops as it needs.
    """
    out = net.mlp((obs - net.obs_mean) / net.obs_std if net.normalize_obs else obs)
    if net.head == "categorical":
        logp = torch.log_softmax(out, dim=-1)
        return logp.gather(1, acts.unsqueeze(1)).squeeze(1), -(logp.exp() * logp).sum(-1).mean()
    dims = out.shape[-1]
    if net.head == "deterministic":  # std fixed to 1: log_std is a constant zero
        log_prob = (acts - out).square().sum(-1).mul(-0.5).sub(HALF_LOG_2PI * dims)
        return log_prob, torch.tensor((0.5 + HALF_LOG_2PI) * dims)
    log_std_sum = net.log_std.sum()
    z = (acts - out) * torch.exp(-net.log_std)
    log_prob = z.square().sum(-1).mul(-0.5) - (log_std_sum + HALF_LOG_2PI * dims)
    return log_prob, log_std_sum + (0.5 + HALF_LOG_2PI) * dims  # state-independent std


class MLPPolicy(Policy):
    """A trained `PolicyNet` as a callable: mode of the distribution, or a seeded sample."""

    def __init__(
        self, net: PolicyNet, observation_space: gym.Space, action_space: gym.Space, deterministic: bool = True, seed: int = 0
    ) -> None:
        super().__init__(observation_space, action_space, deterministic)
        self.net = net.eval()
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, obs: Obs) -> np.ndarray:
        features = torch.from_numpy(obs_features(obs, self.observation_space))
        if self.deterministic:
            # The mode straight from the network: building a distribution object per call cost
            # more than the forward pass itself in DAgger's per-step loop.
            out = self.net.mlp((features - self.net.obs_mean) / self.net.obs_std)
            if self.net.head == "categorical":
                space = cast(gym.spaces.Discrete, self.action_space)
                return out.argmax(1).numpy().astype(space.dtype) + space.start
            box = cast(gym.spaces.Box, self.action_space)
            return np.clip(out.numpy().reshape((-1, *box.shape)).astype(box.dtype), box.low, box.high)
        dist = self.net.distribution(features)
        if self.net.head == "categorical":
            space = cast(gym.spaces.Discrete, self.action_space)
            probs = cast(torch.distributions.Categorical, dist).probs
            idx = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
            return idx.numpy().astype(space.dtype) + space.start
        box = cast(gym.spaces.Box, self.action_space)
        base = cast(torch.distributions.Independent, dist).base_dist
        action = base.loc
        if self.net.head == "gaussian":
            action = action + base.scale * torch.randn(action.shape, generator=self.generator)
        out = action.numpy().reshape((-1, *box.shape)).astype(box.dtype)
        return np.clip(out, box.low, box.high)


@POLICY_LOADERS.register("mlp")
def load_mlp_policy(policy_dir: Path, meta: PolicyMeta) -> MLPPolicy:
    """Rebuild a saved BC policy from `policy.json` + `weights.pt` (a plain state dict)."""
    arch = meta["architecture"]
    net = PolicyNet(arch["in_dim"], arch["hidden_sizes"], arch["activation"], arch["head"], arch["out_dim"])
    state = torch.load(policy_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return MLPPolicy(net, meta["observation_space"], meta["action_space"])
