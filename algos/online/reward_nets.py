"""Reward and discriminator MLPs in torch for GAIL, AIRL, preference comparisons.

Inputs are chosen per net: state, state-action, state-action-next-state; Discrete parts are
one-hot (through `algos.sampler.obs_features`, as BC's features). A GAIL discriminator is a
`RewardNet` whose output is a logit; AIRL's is a `ShapedRewardNet`
f(s, a, s', terminated) = g(s, a) + gamma * (1 - terminated) * h(s') - h(s), where only a real
termination zeroes h(s') (a time limit does not: ONLINE-NOTES, "terminated vs truncated").

Input normalisation is really applied (imitation's GAIL path bypassed its normaliser): a
`RunningNorm` updates its mean/std from every batch in training mode, is frozen in eval mode,
and lives in the state dict, so it is saved with the net. `predict` (the `RewardFn` the
reward wrapper calls) runs in eval mode without gradients.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from algos.sampler import feature_dim, obs_features
from ildata.episode import DataError, Obs
from ildata.fsutil import atomic_output
from ildata.spaces import space_from_dict, space_to_dict

WEIGHTS_FILE = "reward_net.pt"
META_FILE = "reward_net.json"


class RunningNorm(nn.Module):
    """(x - mean) / std with mean and variance accumulated over every training batch.

    Batches merge into the running moments exactly (Chan et al.'s parallel update), so the
    result does not depend on how the data was split into batches.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.mean: torch.Tensor
        self.var: torch.Tensor
        self.count: torch.Tensor
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        frac = float(n / total)
        m2 = self.var * float(self.count / total) + batch_var * frac + delta**2 * float(self.count * n / total**2)
        self.mean += delta * frac
        self.var.copy_(m2)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(x)
        return (x - self.mean) / torch.sqrt(self.var + self.eps)


def _numpy_mlp(norm: list[np.ndarray], layers: list[np.ndarray], x: np.ndarray, eps: float) -> np.ndarray:
    """`mlp(...)(RunningNorm(x))` in numpy: ReLU between (weight, bias) pairs, (B,) out."""
    if norm:
        x = (x - norm[0]) / np.sqrt(norm[1] + eps)
    for i in range(0, len(layers) - 2, 2):
        x = np.maximum(x @ layers[i].T + layers[i + 1], 0.0)
    return (x @ layers[-2].T + layers[-1])[:, 0]


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


@dataclass
class RewardNetConfig:
    """Which inputs the net sees and its shape; saved next to the weights."""

    use_state: bool = True
    use_action: bool = True
    use_next_state: bool = False
    hidden: tuple[int, ...] = (32, 32)
    normalize_input: bool = True
    # ShapedRewardNet only: the potential h(s) and the discount of its shaping term.
    shaped: bool = False
    potential_hidden: tuple[int, ...] = (32, 32)
    gamma: float = 0.99

    def __post_init__(self) -> None:
        if not (self.use_state or self.use_action or self.use_next_state):
            raise DataError("reward net: use at least one of state, action, next state")
        self.hidden = tuple(self.hidden)
        self.potential_hidden = tuple(self.potential_hidden)


class RewardNet(nn.Module):
    """r(s, a, s') from an MLP over the chosen inputs, input-normalised."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: RewardNetConfig | None = None) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.config = config or RewardNetConfig()
        cfg = self.config
        self.obs_dim = feature_dim(observation_space)
        self.act_dim = feature_dim(action_space)
        in_dim = self.obs_dim * (int(cfg.use_state) + int(cfg.use_next_state)) + self.act_dim * int(cfg.use_action)
        self.norm: nn.Module = RunningNorm(in_dim) if cfg.normalize_input else nn.Identity()
        self.mlp = mlp(in_dim, cfg.hidden)
        self._views: dict[str, list[np.ndarray]] | None = None

    # ---- numpy batches -> tensors
    def encode(self, obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Float tensors (state, action, next_state, terminated) from numpy batches."""
        return (
            torch.from_numpy(np.ascontiguousarray(obs_features(obs, self.observation_space), dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(obs_features(np.asarray(acts), self.action_space), dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(obs_features(next_obs, self.observation_space), dtype=np.float32)),
            torch.as_tensor(np.asarray(terminated), dtype=torch.float32).reshape(-1),
        )

    def base_reward(self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        parts = [x for x, used in ((state, cfg.use_state), (action, cfg.use_action), (next_state, cfg.use_next_state)) if used]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.mlp(self.norm(x)).squeeze(-1)

    def forward(self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        """(B,) rewards (or discriminator logits) from encoded features."""
        return self.base_reward(state, action, next_state)

    def predict(self, obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray) -> np.ndarray:
        """The `RewardFn` for `RewardVecEnvWrapper`: eval mode (normaliser frozen), no gradients.

        On CPU it runs the same layers in numpy on views of the live torch weights: torch's
        per-op overhead on batches of a few envs made the reward cost more than the env step
        (ONLINE-NOTES: imitation's stack is 4.6x slower than the raw env). Weights updated in
        place (optimiser steps, `load_state_dict`) are seen at once; `test_online_layer` checks
        both paths agree.
        """
        views = self._numpy_views()
        if views is None:  # weights off the CPU: the torch path
            with torch.no_grad():
                was_training = self.training
                self.eval()
                try:
                    return self(*self.encode(obs, acts, next_obs, terminated)).cpu().numpy()
                finally:
                    self.train(was_training)
        state = obs_features(obs, self.observation_space)
        action = obs_features(np.asarray(acts), self.action_space)
        next_state = obs_features(next_obs, self.observation_space)
        return self._numpy_forward(views, state, action, next_state, np.asarray(terminated, dtype=np.float32).reshape(-1))

    def _numpy_forward(
        self, views: dict[str, list[np.ndarray]], state: np.ndarray, action: np.ndarray, next_state: np.ndarray, terminated: np.ndarray
    ) -> np.ndarray:
        cfg = self.config
        parts = [x for x, used in ((state, cfg.use_state), (action, cfg.use_action), (next_state, cfg.use_next_state)) if used]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return _numpy_mlp(views["norm"], views["mlp"], x, self._eps(self.norm))

    def _numpy_views(self) -> dict[str, list[np.ndarray]] | None:
        """numpy views of (normaliser buffers, MLP weights) per part; None off the CPU."""
        if self._views is None:
            if any(p.device.type != "cpu" for p in self.parameters()):
                return None
            self._views = {name: [t.detach().numpy() for t in tensors] for name, tensors in self._view_tensors().items()}
        return self._views

    def _view_tensors(self) -> dict[str, list[torch.Tensor]]:
        norm = [self.norm.mean, self.norm.var] if isinstance(self.norm, RunningNorm) else []
        return {"norm": norm, "mlp": list(self.mlp.parameters())}

    @staticmethod
    def _eps(norm: nn.Module) -> float:
        return norm.eps if isinstance(norm, RunningNorm) else 0.0

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        self._views = None  # `.to()`, `.double()`...: tensors may be replaced
        return super()._apply(fn, recurse)

    # ---- persistence: a JSON description plus a torch state dict (weights_only on load)
    def save(self, directory: str | Path, *, overwrite: bool = False) -> None:
        """Write `reward_net.json` and `reward_net.pt` (weights and normaliser statistics)."""
        with atomic_output(directory, overwrite=overwrite) as tmp:
            meta = {
                "class": type(self).__name__,
                "config": asdict(self.config),
                "observation_space": space_to_dict(self.observation_space),
                "action_space": space_to_dict(self.action_space),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
            torch.save(self.state_dict(), tmp / WEIGHTS_FILE)


class ShapedRewardNet(RewardNet):
    """AIRL's f = g(s, a, s') + gamma * (1 - terminated) * h(s') - h(s); `base_reward` is g."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: RewardNetConfig | None = None) -> None:
        config = config or RewardNetConfig(use_action=False, shaped=True)
        super().__init__(observation_space, action_space, config)
        self.potential_norm: nn.Module = RunningNorm(self.obs_dim) if self.config.normalize_input else nn.Identity()
        self.potential_mlp = mlp(self.obs_dim, self.config.potential_hidden)

    def _view_tensors(self) -> dict[str, list[torch.Tensor]]:
        norm = [self.potential_norm.mean, self.potential_norm.var] if isinstance(self.potential_norm, RunningNorm) else []
        return {**super()._view_tensors(), "potential_norm": norm, "potential_mlp": list(self.potential_mlp.parameters())}

    def _numpy_forward(
        self, views: dict[str, list[np.ndarray]], state: np.ndarray, action: np.ndarray, next_state: np.ndarray, terminated: np.ndarray
    ) -> np.ndarray:
        eps = self._eps(self.potential_norm)
        h = _numpy_mlp(views["potential_norm"], views["potential_mlp"], state, eps)
        h_next = _numpy_mlp(views["potential_norm"], views["potential_mlp"], next_state, eps) * (1.0 - terminated)
        return super()._numpy_forward(views, state, action, next_state, terminated) + self.config.gamma * h_next - h

    def potential(self, state: torch.Tensor) -> torch.Tensor:
        return self.potential_mlp(self.potential_norm(state)).squeeze(-1)

    def forward(self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        h_next = self.potential(next_state) * (1.0 - terminated)
        return self.base_reward(state, action, next_state) + self.config.gamma * h_next - self.potential(state)


def load_reward_net(directory: str | Path) -> RewardNet:
    """Rebuild a net `RewardNet.save` wrote (no pickle: `torch.load(weights_only=True)`)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise DataError(f"{directory}: not a saved reward net ({exc})") from None
    classes: dict[str, type[RewardNet]] = {"RewardNet": RewardNet, "ShapedRewardNet": ShapedRewardNet}
    if meta.get("class") not in classes:
        raise DataError(f"{directory / META_FILE}: unknown reward net class {meta.get('class')!r}")
    net = classes[meta["class"]](
        space_from_dict(meta["observation_space"]),
        space_from_dict(meta["action_space"]),
        RewardNetConfig(**meta["config"]),
    )
    net.load_state_dict(torch.load(directory / WEIGHTS_FILE, weights_only=True))
    net.eval()
    return net
