"""metrics.csv, kept current while a run trains, and the optional TensorBoard event files.

SB3's logger (`stable_baselines3.common.logger`) is not used for metrics.csv: its CSV output
sorts columns that appear later alphabetically and writes no step column, so the file's format
(step first, columns in first-seen order, which sweeps and users read) would change, and it has
no way to amend the last row (`converged`). TensorBoard goes through torch's SummaryWriter, as
SB3's TensorBoard output does.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def _columns(rows: list[tuple[int, dict[str, float]]]) -> list[str]:
    columns: list[str] = []
    for _, metrics in rows:
        columns.extend(k for k in metrics if k not in columns)
    return columns


def _csv_row(step: int, metrics: dict[str, float], columns: list[str]) -> list[object]:
    return [step, *(repr(metrics[c]) if c in metrics else "" for c in columns)]


def write_metrics_csv(rows: list[tuple[int, dict[str, float]]], path: Path) -> None:
    """One row per `log` call; columns in first-seen order, blank where a metric was not logged."""
    columns = _columns(rows)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *columns])
        for step, metrics in rows:
            writer.writerow(_csv_row(step, metrics, columns))


class MetricsFile:
    """metrics.csv kept current while training: each row is appended and flushed as it is logged.

    A metric that first appears in a later row (a rollout return every N rows) adds a column, so
    the file is rewritten then; the finished file is the same as `write_metrics_csv(rows)`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.columns: list[str] = []
        path.write_text("")

    def add(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, dict(metrics)))
        if any(k not in self.columns for k in metrics):
            self.columns = _columns(self.rows)
            write_metrics_csv(self.rows, self.path)
            return
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(_csv_row(step, metrics, self.columns))

    def amend_last(self, metrics: dict[str, float]) -> None:
        """Add metrics known only when training ended (`converged`) to the last row."""
        if self.rows:
            self.rows[-1][1].update(metrics)
            self.columns = _columns(self.rows)
            write_metrics_csv(self.rows, self.path)


def rows_missing(rows: list[tuple[int, dict[str, float]]], name: str) -> bool:
    return bool(rows) and name not in rows[-1][1]


def tensorboard_writer(folder: Path) -> Any:
    """A `torch.utils.tensorboard.SummaryWriter` flushing every few seconds, so `tensorboard
    --logdir runs` shows a run as it trains. Imported here: only runs that ask pay for it."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder), flush_secs=5)
