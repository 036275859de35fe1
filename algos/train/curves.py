"""curve.png: a run's learning curves, one panel per metric."""

from __future__ import annotations

from pathlib import Path


def plot_curves(
    rows: list[tuple[int, dict[str, float]]], path: Path, title: str, references: dict[str, float | None] | None = None
) -> None:
    """One small panel per metric against the step: env steps for online algorithms (which log
    `env_steps` and use it as the step), gradient steps otherwise (matplotlib, Agg backend).

    Return panels get the dataset's expert and random returns as reference lines; a positive
    metric spanning two orders of magnitude or more (MCE IRL's gradient norms) is drawn on a
    log scale; a metric logged once is not a curve and gets no panel (it is in metrics.csv).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    references = references or {}
    online = all("env_steps" in m for _, m in rows)
    names: list[str] = []
    for _, metrics in rows:
        names.extend(k for k in metrics if k not in names and k not in ("epoch", "env_steps"))
    series = {name: [(step, m[name]) for step, m in rows if name in m] for name in names}
    names = [name for name in names if len(series[name]) >= 2]
    ncols = min(3, max(1, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = series[name]
        values = [p[1] for p in points]
        ax.plot([p[0] for p in points], values, marker="." if len(points) < 30 else None)
        if "return" in name and not name.endswith("_std"):
            for key, label, style in (("expert_return", "expert", "--"), ("random_return", "random", ":")):
                value = references.get(key)
                if value is not None:
                    ax.axhline(float(value), linestyle=style, color="grey", linewidth=1, label=label)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
        if min(values) > 0 and max(values) / min(values) >= 100:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("env steps" if online else "step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if not names:
        axes.flat[0].text(0.5, 0.5, "one metrics row: see metrics.csv", ha="center", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
