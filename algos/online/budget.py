"""A run's total env-step budget, read off the vec env's own step counter.

imitation's `total_timesteps` is only a lower bound (its rounds are floored, SB3 rounds
`learn()` up, and fragment sampling is not counted). Here every env step any part of an
algorithm takes goes through one `SeededVecEnv`, whose counter is the single source of truth.
"""

from __future__ import annotations

from stable_baselines3.common.vec_env import VecEnv

from algos.online.vec_env import base_env


class BudgetExceeded(RuntimeError):
    """More env steps were taken than the budget allows (a bug in the algorithm's accounting)."""


class StepBudget:
    """`total` env steps for everything run on `venv` from now on (its counter at creation is 0)."""

    def __init__(self, venv: VecEnv, total: int) -> None:
        if total < 0:
            raise ValueError(f"budget must be non-negative, got {total}")
        self.counter = base_env(venv)
        self.start = self.counter.steps
        self.total = total

    @property
    def used(self) -> int:
        return self.counter.steps - self.start

    @property
    def remaining(self) -> int:
        return self.total - self.used

    def allow(self, wanted: int) -> int:
        """How many of `wanted` steps the remaining budget grants (checks what was spent so far)."""
        self.check()
        return max(0, min(wanted, self.remaining))

    def check(self) -> None:
        """Raise `BudgetExceeded` if more steps were taken than the budget."""
        if self.used > self.total:
            raise BudgetExceeded(f"{self.used} env steps taken for a budget of {self.total}")
