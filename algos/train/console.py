"""Training progress on the console: a progress bar on a terminal, about ten lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

from algos.base import Algorithm

KEY_METRICS = ("loss", "val_loss", "rollout_return_mean", "return_mean", "prob_true_act", "val_prob_true_act")
HIDDEN_METRICS = ("epoch", "env_steps", "round")
ProgressMode = Literal["auto", "bar", "lines"]


def _shown(metrics: dict[str, float], limit: int) -> str:
    names = [k for k in KEY_METRICS if k in metrics]
    names += [k for k in metrics if k not in names and k not in HIDDEN_METRICS]
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in names[:limit])


class Console:
    """Training progress: a progress bar with the key metrics on a terminal, otherwise about ten
    lines per run (a line when another tenth of the steps is done, and the last row), so a CI log
    holds a run's shape, not one line per metrics row."""

    LINES = 10

    def __init__(self, echo: Callable[[str], None], total: int | None, mode: ProgressMode = "auto") -> None:
        self.echo = echo
        self.total = total
        bar = mode == "bar" or (mode == "auto" and echo is print and sys.stdout.isatty())
        self.bar: Any = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stdout, leave=True)
        self.rows = 0
        self.next_mark = 0.0
        self.pending: tuple[int, dict[str, float]] | None = None
        self.done = 0

    def row(self, step: int, metrics: dict[str, float]) -> None:
        self.rows += 1
        if self.bar is not None:
            self.bar.update(max(0, step - self.done))
            self.done = max(self.done, step)
            self.bar.set_postfix_str(_shown(metrics, 4), refresh=True)
            return
        due = step >= self.next_mark if self.total else (self.rows - 1) % self.LINES == 0
        if due:
            self._line(step, metrics)
            if self.total:
                self.next_mark = (int(step * self.LINES / self.total) + 1) * self.total / self.LINES
        else:
            self.pending = (step, metrics)

    def _line(self, step: int, metrics: dict[str, float]) -> None:
        done = f" [{min(100, round(100 * step / self.total))}%]" if self.total else ""
        self.echo(f"step {step}: {_shown(metrics, 8)}{done}")
        self.pending = None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.pending is not None:
            self._line(*self.pending)


def expected_steps(algo: Algorithm) -> int | None:
    """The step the last metrics row will (at most) have: env steps for online algorithms."""
    config = algo.config
    for name in ("total_timesteps", "n_gradient_steps"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
