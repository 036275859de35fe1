"""The one normaliser of the online algorithms, in its two shapes.

- `RunningNorm` (torch): `(x - mean) / sqrt(var + eps)` inside a net, its statistics buffers of
  the state dict (saved and loaded with the weights). Three modes: running (training mode: every
  batch merges into the statistics), frozen (eval mode, or `frozen = True` for inputs that are
  not data, like a gradient penalty's interpolations) and fixed (`set_statistics`: the
  demonstrations' mean and std, then frozen). Reward nets, discriminators and the learner's
  input layer (`algos.online.learners.FixedObsNorm`, SB3's features-extractor slot) all use it.
- `RewardMoments` (numpy, scalar): running mean and variance of the rewards a learner is paid,
  SB3's own `RunningMeanStd` with a count that starts at 0 (the exact number of rewards seen),
  applied as `standard` (shift and scale), `scale` (scale only) or `off`.

Why `RunningNorm` does not hold an SB3 `RunningMeanStd`: its statistics must be torch buffers
(moved, saved and loaded with the module, applied inside the graph without a copy to numpy);
it merges batches with the same parallel formula (Chan et al.), so the result does not depend
on how the data was split into batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class RunningNorm(nn.Module):
    """(x - mean) / sqrt(var + eps), statistics running, frozen or fixed (see the module doc)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.mean: torch.Tensor
        self.var: torch.Tensor
        self.count: torch.Tensor
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.frozen = False

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the rows of `x` into the statistics (exactly: batch splits do not matter)."""
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

    @torch.no_grad()
    def reset(self) -> None:
        """Forget every statistic (the next update starts from its own batch); unfreeze."""
        self.mean.zero_()
        self.var.fill_(1.0)
        self.count.zero_()
        self.frozen = False

    @torch.no_grad()
    def set_statistics(self, mean: Any, std: Any) -> None:
        """Fixed mode: these statistics (e.g. the demonstrations'), frozen. With `eps` 0 the
        forward pass divides by exactly `std` (sqrt(std * std) == std in binary floating point)."""
        std_t = torch.as_tensor(np.asarray(std, np.float32).reshape(-1))
        self.mean.copy_(torch.as_tensor(np.asarray(mean, np.float32).reshape(-1)))
        self.var.copy_(std_t * std_t)
        self.count.fill_(1.0)
        self.frozen = True

    @property
    def std(self) -> torch.Tensor:
        """The scale inputs are divided by."""
        return torch.sqrt(self.var + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.frozen:
            self.update(x)
        return (x - self.mean) / torch.sqrt(self.var + self.eps)


class RewardMoments:
    """Running mean and variance of paid rewards (SB3's `RunningMeanStd`, count from 0), and how
    they are applied. Empty batches are skipped (SB3's update would divide by a zero count)."""

    def __init__(self, mean: float = 0.0, var: float = 1.0, count: float = 0.0) -> None:
        from algos.base import quiet_import

        stats = quiet_import("stable_baselines3.common.running_mean_std").RunningMeanStd(epsilon=float(count), shape=())
        stats.mean, stats.var = np.float64(mean), np.float64(var)
        self.stats = stats

    @property
    def mean(self) -> float:
        return float(self.stats.mean)

    @property
    def var(self) -> float:
        return float(self.stats.var)

    @property
    def count(self) -> float:
        return float(self.stats.count)

    def update(self, x: np.ndarray) -> None:
        values = np.asarray(x).reshape(-1)
        if values.size:  # the batch's moments in its own dtype, merged in float64
            self.stats.update_from_moments(float(values.mean()), float(values.var()), values.size)

    def apply(self, x: np.ndarray, mode: str) -> np.ndarray:
        """`x` shifted and scaled (`standard`), scaled (`scale`) or as is (`off`, or nothing seen yet)."""
        if mode == "off" or self.count == 0:
            return x
        std = np.sqrt(self.var) + 1e-8
        return (x - self.mean) / std if mode == "standard" else x / std

    def to_list(self) -> list[float]:
        """[mean, var, count]: what a run folder saves."""
        return [self.mean, self.var, self.count]


def obs_statistics(obs: np.ndarray, min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (floored: a feature constant in the demonstrations) for `learner.normalize_obs`."""
    flat = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
    return flat.mean(0), np.maximum(flat.std(0), min_std)
