"""Reading the run folders a sweep made: finished or not, eval.json, metrics.csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def is_finished(run_dir: Path) -> bool:
    """`ildata train` renames a run folder into place only when it finished."""
    return (run_dir / "config.yaml").is_file()


def read_eval(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "eval.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    """metrics.csv as columns of floats (blank cells NaN); {} without one."""
    import csv

    try:
        with (run_dir / "metrics.csv").open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    header, body = rows[0], rows[1:]
    cells = np.array([[c if c != "" else "nan" for c in row] for row in body], dtype=object)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        try:
            out[name] = cells[:, j].astype(np.float64)
        except ValueError:
            continue
    return out
