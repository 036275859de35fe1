"""`ildata inspect --plots DIR`: PNGs of a dataset's returns, lengths, actions and features.

matplotlib is imported inside `write_plots` (with the non-interactive Agg backend): the data layer
and `ildata --help` never pay for it. Each PNG is written to a temporary file and renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.fsutil import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ildata.report import ReportInput

# Beyond this many dimensions a feature's distribution shows the first ones only.
MAX_PANELS = 16
# Histograms of big image features use a sample of this many values.
MAX_VALUES = 1_000_000


def _save(fig: Figure, path: Path) -> Path:
    with atomic_output(path, overwrite=True, folder=False) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _reference_lines(ax: Any, collection: dict[str, Any] | None) -> None:
    """The expert's and a random policy's mean returns, where the dataset records them."""
    for key, label, color in (("expert_mean_return", "expert", "tab:green"), ("random_mean_return", "random", "tab:red")):
        value = (collection or {}).get(key)
        if isinstance(value, (int, float)):
            ax.axvline(float(value), color=color, linestyle="--", linewidth=2, label=f"{label} {value:.4g}")


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return (n + cols - 1) // cols, cols


def _columns(values: np.ndarray) -> np.ndarray:
    """Per-step values as (steps, dims)."""
    return values.reshape(values.shape[0], -1)


def write_plots(data: ReportInput, out_dir: str | Path, *, title: str = "") -> list[Path]:
    """Write returns.png, lengths.png, actions.png and one features-NAME.png per observation
    feature into `out_dir` (created if needed); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    suffix = f"\n{title}" if title else ""

    if data.returns is not None and len(data.returns):
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
        ax.hist(data.returns, bins=min(50, max(10, len(data.returns) // 2)), color="tab:blue", alpha=0.8, label="episodes")
        _reference_lines(ax, data.collection)
        ax.set(xlabel="episode return", ylabel="episodes", title=f"returns of {len(data.returns)} episodes{suffix}")
        ax.legend()
        written.append(_save(fig, out / "returns.png"))

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.hist(data.lengths, bins=min(50, max(10, len(np.unique(data.lengths)))), color="tab:purple", alpha=0.8)
    ax.set(xlabel="episode length (steps)", ylabel="episodes", title=f"lengths of {len(data.lengths)} episodes{suffix}")
    written.append(_save(fig, out / "lengths.png"))

    written.append(_save(_actions_figure(data.acts, suffix), out / "actions.png"))
    for name, values in data.obs.items():
        written.append(_save(_feature_figure(name, values, suffix), out / f"features-{name}.png"))
    return written


def _actions_figure(acts: np.ndarray, suffix: str) -> Figure:
    from matplotlib.figure import Figure

    if acts.ndim == 1 and np.issubdtype(acts.dtype, np.integer):
        values, counts = np.unique(acts, return_counts=True)
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
        ax.bar([str(v) for v in values.tolist()], counts, color="tab:orange")
        ax.set(xlabel="action", ylabel="steps", title=f"actions{suffix}")
        return fig
    return _feature_figure("acts", acts, suffix)


def _feature_figure(name: str, values: np.ndarray, suffix: str) -> Figure:
    """One histogram per dimension (the first MAX_PANELS); images get one histogram of pixel values."""
    from matplotlib.figure import Figure

    columns = _columns(values)
    image = values.ndim >= 3 and values.dtype == np.uint8
    if image or columns.shape[1] > 4 * MAX_PANELS:
        flat = columns.ravel()
        if flat.size > MAX_VALUES:
            flat = flat[np.linspace(0, flat.size - 1, MAX_VALUES).astype(np.int64)]
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
        ax.hist(flat, bins=64, color="tab:blue")
        ax.set(xlabel="value", ylabel="count", title=f"{name}: all {columns.shape[1]} values per step {tuple(values.shape[1:])}{suffix}")
        return fig
    dims = min(columns.shape[1], MAX_PANELS)
    rows, cols = _grid(dims)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for i in range(dims):
        column = columns[:, i]
        finite = column[np.isfinite(column)] if np.issubdtype(column.dtype, np.floating) else column
        axes[i].hist(finite, bins=40, color="tab:blue")
        axes[i].set_title(f"{name}[{i}]", fontsize=9)
        axes[i].tick_params(labelsize=7)
    for ax in axes[dims:]:
        ax.set_visible(False)
    shown = "" if dims == columns.shape[1] else f" (first {dims} of {columns.shape[1]} dims)"
    fig.suptitle(f"{name} per dimension{shown}{suffix}")
    return fig
