"""The synthetic oracle: Bradley-Terry labels over the env's true (discounted) fragment returns.

With a temperature and a probability of random labels, from its own seeded generator. The
temperature acts on raw returns, so the env's reward scale sets the label noise (imitation #395).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algos.preferences.fragments import Fragments, discounted_returns
from ildata.episode import DataError


@dataclass
class SyntheticGatherer:
    """The oracle: P(left preferred) = sigmoid((R_left - R_right) / temperature) over true returns.

    `temperature` 0 gives the exact comparison (ties: 0.5); with probability `random_label_prob`
    a label is replaced by a fair coin. Labels are sampled (0/1) from the generator seeded by `seed`.
    """

    temperature: float = 1.0
    discount: float = 1.0
    random_label_prob: float = 0.0
    seed: int = 0
    equal_ties: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 <= self.random_label_prob <= 1 or not 0 < self.discount <= 1:
            raise DataError("synthetic gatherer: temperature >= 0, 0 <= random_label_prob <= 1, 0 < discount <= 1")
        self.rng = np.random.default_rng(self.seed)

    def return_differences(self, left: Fragments, right: Fragments) -> np.ndarray:
        diff = discounted_returns(left.rews, self.discount) - discounted_returns(right.rews, self.discount)
        if np.isnan(diff).any():
            raise DataError("synthetic preferences need the env's rewards in every fragment")
        return diff

    def probabilities(self, left: Fragments, right: Fragments) -> np.ndarray:
        diff = self.return_differences(left, right)
        if self.temperature == 0:
            return 0.5 * (1 + np.sign(diff))
        return 1.0 / (1.0 + np.exp(-np.clip(diff / self.temperature, -50, 50)))

    def __call__(self, left: Fragments, right: Fragments) -> np.ndarray:
        """0/1 labels drawn from `probabilities`; with `equal_ties`, exactly equal returns get 0.5
        ("equal", as a person would answer) instead of a coin flip (imitation's behaviour): on
        seals/CartPole most fragments of a fallen pole tie at 0, and coin flips there are pure noise."""
        p = self.probabilities(left, right)
        labels = (self.rng.random(len(p)) < p).astype(np.float64)
        if self.equal_ties:
            labels[self.return_differences(left, right) == 0] = 0.5
        coin = self.rng.random(len(p)) < self.random_label_prob
        labels[coin] = self.rng.integers(0, 2, int(coin.sum()))
        return labels
