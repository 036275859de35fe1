"""Sweeps: a recipe x a grid of overrides (or configurations a Ray Tune search samples) x seeds,
each combination one ordinary run folder, run as Ray tasks (`ildata sweep`, `benchmarks/online.py`).

    SWEEP_DIR/
      sweep.json               the recipe (path and content hash), --set, grid (or the search and the
                               configurations it sampled) and seeds: a rerun with other arguments is
                               refused, the same command resumes
      <config>/seed-<n>/       the run folder `ildata train --out` writes (`default` without a grid)
      summary.json, summary.md per configuration: normalised score (mean, IQM, 95% bootstrap CI of
                               the IQM over seeds), env steps, wall time
      scores.png, curves.png   score per configuration with its interval; learning curves (mean over
                               seeds, min-max band)

The modules, in the order a sweep goes through them:

    plan.py       arguments (--seeds, --grid, --search), search sampling, `plan_sweep`, sweep.json
    runner.py     every unfinished run as a Ray task (resuming what can be resumed), `run_sweep`
    run_files.py  reading a run folder: finished or not, eval.json, metrics.csv
    summary.py    per-configuration statistics, summary.json and summary.md
    plots.py      scores.png and curves.png

The summary marks the configuration with the best mean over seeds of a search's metric.
"""

from algos.sweep.plan import (
    DISTRIBUTIONS,
    SWEEP_FILE,
    Assignment,
    RunSpec,
    Search,
    Sweep,
    claim_folder,
    parse_distribution,
    parse_grid,
    parse_search,
    parse_seeds,
    plan_sweep,
    sample_configurations,
)
from algos.sweep.plots import CURVE_METRICS, plot_curves, plot_scores
from algos.sweep.run_files import is_finished, read_eval, read_metrics
from algos.sweep.runner import (
    RunResult,
    RunStatus,
    execute,
    execute_runs,
    failed_runs,
    one_line,
    run_sweep,
    start_ray,
)
from algos.sweep.summary import (
    BOOTSTRAP_RESAMPLES,
    COLUMNS,
    iqm,
    iqm_interval,
    run_metric,
    search_line,
    summarize,
    summary_columns,
    summary_markdown,
    summary_rows,
    write_summary,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "COLUMNS",
    "CURVE_METRICS",
    "DISTRIBUTIONS",
    "SWEEP_FILE",
    "Assignment",
    "RunResult",
    "RunSpec",
    "RunStatus",
    "Search",
    "Sweep",
    "claim_folder",
    "execute",
    "execute_runs",
    "failed_runs",
    "iqm",
    "iqm_interval",
    "is_finished",
    "one_line",
    "parse_distribution",
    "parse_grid",
    "parse_search",
    "parse_seeds",
    "plan_sweep",
    "plot_curves",
    "plot_scores",
    "read_eval",
    "read_metrics",
    "run_metric",
    "run_sweep",
    "sample_configurations",
    "search_line",
    "start_ray",
    "summarize",
    "summary_columns",
    "summary_markdown",
    "summary_rows",
    "write_summary",
]
