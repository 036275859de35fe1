"""Reward and discriminator MLPs in torch for GAIL, AIRL, preference comparisons.

Inputs are chosen per net: state, state-action, state-action-next-state; Discrete parts are
one-hot (through `algos.sampler.obs_features`, as BC's features). A GAIL discriminator is a
`RewardNet` whose output is a logit; AIRL's is a `ShapedRewardNet`
f(s, a, s', terminated) = g(s, a) + gamma * (1 - terminated) * h(s') - h(s), where only a real
termination zeroes h(s') (a time limit does not: the episode goes on past it, so h(s') is real).

Input normalisation is really applied (imitation's GAIL path bypassed its normaliser): a
`RunningNorm` (`algos.online.normalizer`) updates its mean/std from every batch in training mode,
is frozen in eval mode, and lives in the state dict, so it is saved with the net. `predict` (the `RewardFn` the
reward wrapper calls) runs in eval mode without gradients.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from algos.online.normalizer import RunningNorm
from algos.sampler import feature_dim, obs_features
from ildata.episode import DataError, Obs
from ildata.fsutil import atomic_output
from ildata.spaces import space_from_dict, space_to_dict

WEIGHTS_FILE = "reward_net.pt"
META_FILE = "reward_net.json"


def featurizer(space: gym.Space) -> Callable[[Any], np.ndarray]:
    """A fast `obs_features(x, space)` for one space: the reward is computed on every env step,
    where `obs_features`' general walk over (possibly nested) spaces cost as much as the MLP."""
    if isinstance(space, gym.spaces.Box):
        return lambda x: np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if isinstance(space, gym.spaces.Discrete):
        eye, start = np.eye(int(space.n), dtype=np.float32), int(space.start)
        return lambda x: eye[np.asarray(x, dtype=np.int64).reshape(-1) - start]
    return lambda x: obs_features(x, space)


# One Linear as numpy (W transposed and contiguous, b); a normaliser before the first is folded in.
NumpyLayers = list[tuple[np.ndarray, np.ndarray]]


def compile_numpy(norm: nn.Module, net: nn.Sequential) -> NumpyLayers:
    """`net(norm(x))` (Linear/ReLU layers, frozen normaliser) as numpy (W^T, b) pairs.

    (x - mean) / std @ W^T + b == x @ (W^T / std[:, None]) + (b - mean @ (W^T / std[:, None])),
    which saves the normalisation's four array operations on every call.
    """
    with torch.no_grad():
        layers = [(m.weight.T.contiguous().numpy().copy(), m.bias.numpy().copy()) for m in net if isinstance(m, nn.Linear)]
        if isinstance(norm, RunningNorm):
            inv_std = (1.0 / torch.sqrt(norm.var + norm.eps)).numpy()
            w, b = layers[0]
            w = w * inv_std[:, None]
            layers[0] = (w, b - norm.mean.numpy() @ w)
    return layers


def run_numpy(layers: NumpyLayers, x: np.ndarray) -> np.ndarray:
    """(B,) outputs of compiled layers: ReLU between them, none after the last."""
    for w, b in layers[:-1]:
        x = np.maximum(x @ w + b, 0.0)
    w, b = layers[-1]
    return (x @ w + b)[:, 0]


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
        self._sources: list[torch.Tensor] | None = None  # what the numpy copy was built from
        self._versions: list[int] = []
        self._numpy: dict[str, NumpyLayers] | None = None
        self._obs_features = featurizer(observation_space)
        self._act_features = featurizer(action_space)

    # ---- numpy batches -> tensors
    def encode(self, obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Float tensors (state, action, next_state, terminated) from numpy batches."""
        return (
            torch.from_numpy(np.ascontiguousarray(self._obs_features(obs))),
            torch.from_numpy(np.ascontiguousarray(self._act_features(acts))),
            torch.from_numpy(np.ascontiguousarray(self._obs_features(next_obs))),
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

        On CPU it runs the same layers in numpy (`compile_numpy`): torch's per-op overhead on
        batches of a few envs costs as much as the env step (benchmarks/reward_wrapper_overhead.py). The numpy copy is rebuilt whenever a
        weight or statistic changed in place (optimiser steps, `load_state_dict`, the
        normaliser's updates: torch bumps each tensor's version counter); `test_online_layer`
        checks both paths agree.
        """
        compiled = self._compiled()
        if compiled is None:  # weights off the CPU: the torch path
            with torch.no_grad():
                was_training = self.training
                self.eval()
                try:
                    return self(*self.encode(obs, acts, next_obs, terminated)).cpu().numpy()
                finally:
                    self.train(was_training)
        state, next_state = self._obs_features(obs), self._obs_features(next_obs)
        action = self._act_features(acts)
        return self._numpy_forward(compiled, state, action, next_state, np.asarray(terminated, dtype=np.float32).reshape(-1))

    def _numpy_forward(
        self, compiled: dict[str, NumpyLayers], state: np.ndarray, action: np.ndarray, next_state: np.ndarray, terminated: np.ndarray
    ) -> np.ndarray:
        cfg = self.config
        parts = [x for x, used in ((state, cfg.use_state), (action, cfg.use_action), (next_state, cfg.use_next_state)) if used]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return run_numpy(compiled["reward"], x)

    def _numpy_parts(self) -> dict[str, tuple[nn.Module, nn.Sequential]]:
        """Name -> (normaliser, MLP) of every network `predict` runs."""
        return {"reward": (self.norm, self.mlp)}

    def _compiled(self) -> dict[str, NumpyLayers] | None:
        """The numpy layers, rebuilt when a source tensor changed; None off the CPU."""
        if self._sources is None:
            self._sources = list(self.parameters()) + list(self.buffers())
        versions = [t._version for t in self._sources]
        if self._numpy is None or versions != self._versions:
            if any(t.device.type != "cpu" for t in self._sources):
                return None
            self._numpy = {name: compile_numpy(norm, net) for name, (norm, net) in self._numpy_parts().items()}
            self._versions = versions
        return self._numpy

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        self._sources, self._numpy = None, None  # `.to()`, `.double()`...: tensors may be replaced
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

    def _numpy_parts(self) -> dict[str, tuple[nn.Module, nn.Sequential]]:
        return {**super()._numpy_parts(), "potential": (self.potential_norm, self.potential_mlp)}

    def _numpy_forward(
        self, compiled: dict[str, NumpyLayers], state: np.ndarray, action: np.ndarray, next_state: np.ndarray, terminated: np.ndarray
    ) -> np.ndarray:
        h = run_numpy(compiled["potential"], state)
        h_next = run_numpy(compiled["potential"], next_state) * (1.0 - terminated)
        return super()._numpy_forward(compiled, state, action, next_state, terminated) + self.config.gamma * h_next - h

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
