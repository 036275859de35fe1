"""Run a recipe and write a run folder a researcher can trust and reproduce.

    runs/<name>-<timestamp>/
      config.yaml     the resolved recipe (defaults filled in, dataset path absolute)
      dataset.json    dataset path, fingerprint, size, and its expert/random reference returns
      versions.json   python and library versions
      metrics.csv     step + every metric the algorithm logged (identical for the same recipe+seed),
                      written as training goes: a row is appended and flushed when it is logged
      curve.png       the learning curves
      algorithm.json  the algorithm's name, config, spaces, seed, env (`algos.base.load_algorithm`)
      policy/         the saved policy (`algos.policies.load_policy(run_dir)` rebuilds it)
      ...             whatever else the algorithm saved (`_save_state`: reward net, KDE data)
      eval.json       final evaluation: mean/std return over N episodes, normalised score
      tensorboard/    with `tensorboard: true` (or `ildata train --tensorboard`): every metric
                      as a TensorBoard scalar, written as training goes

Everything is written through `ildata.fsutil.atomic_output` (a temporary sibling renamed at the
end), so a failed or interrupted run leaves no folder that looks finished; the temporary folder is
printed when training starts, so its metrics.csv can be watched. Resumable algorithms (BC every
`checkpoint_every` gradient steps, DAgger every round) train in `RUN.partial/` instead and save
checkpoints there; an interrupt leaves it, and `ildata train RECIPE --resume RUN` continues from
the last checkpoint (the recipe must be the same: a differing key is named). Only the finished
run is renamed to RUN.

Python, without a recipe file (the same config dataclasses a recipe's `config:` is checked against):

    from algos import train
    from algos.bc import BCConfig
    run_dir = train.run(algo="bc", dataset="datasets/cartpole-expert", config=BCConfig(n_gradient_steps=2000), env="CartPole-v1")

The modules: `training` (the run itself: check, train, save, evaluate), `run_folder` (where a
run is written, `--resume`, `RunInterrupted`), `metrics` (metrics.csv and TensorBoard),
`console` (progress on the terminal), `curves` (curve.png).
"""

from algos.train.console import HIDDEN_METRICS, KEY_METRICS, Console, ProgressMode, expected_steps
from algos.train.curves import plot_curves
from algos.train.metrics import MetricsFile, rows_missing, tensorboard_writer, write_metrics_csv
from algos.train.run_folder import CHECKPOINT_DIR, RUNS_DIR, RunInterrupted, check_same_recipe, default_run_dir, partial_dir
from algos.train.training import Prepared, final_evaluation, prepare, quiet_third_party, run, run_recipe

__all__ = [
    "CHECKPOINT_DIR",
    "HIDDEN_METRICS",
    "KEY_METRICS",
    "RUNS_DIR",
    "Console",
    "MetricsFile",
    "Prepared",
    "ProgressMode",
    "RunInterrupted",
    "check_same_recipe",
    "default_run_dir",
    "expected_steps",
    "final_evaluation",
    "partial_dir",
    "plot_curves",
    "prepare",
    "quiet_third_party",
    "rows_missing",
    "run",
    "run_recipe",
    "tensorboard_writer",
    "write_metrics_csv",
]
