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
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from algos.base import Algorithm, library_versions
from algos.policies import Policy
from algos.recipe import Recipe
from ildata.episode import DataError
from ildata.fsutil import atomic_output
from ildata.store import TrajectoryDataset

RUNS_DIR = Path("runs")
CHECKPOINT_DIR = "checkpoint"  # in RUN.partial/: the last checkpoint of a resumable algorithm


@dataclass
class Prepared:
    """Everything a run needs, checked before training starts."""

    recipe: Recipe
    dataset: TrajectoryDataset | None
    env_id: str | None
    algo: Algorithm


def prepare(recipe: Recipe) -> Prepared:
    """Load the dataset, check the env against it and build the algorithm; DataError names the key."""
    import ildata
    from algos.base import ALGORITHMS, seed_everything
    from algos.policies import check_env_spaces
    from ildata.envs import env_spaces

    seed_everything(recipe.seed, recipe.threads)
    cls = ALGORITHMS[recipe.algo]
    dataset = None
    path = recipe.dataset_path()
    if path is not None:
        if not path.exists():
            raise DataError(f"dataset: {path} does not exist")
        try:
            dataset = ildata.load(path)
        except DataError as exc:
            raise DataError(f"dataset: {exc}") from None
    env_id = recipe.env or (dataset.env_id if dataset is not None else None)
    if env_id is None and not cls.needs_dataset:
        raise DataError(f"env: required for algo {recipe.algo}")
    if dataset is not None:
        observation_space, action_space = dataset.observation_space, dataset.action_space
        if env_id is not None:
            try:
                check_env_spaces(observation_space, action_space, env_id, what="env")
            except DataError as exc:
                raise DataError(str(exc) if str(exc).startswith("env:") else f"env: {exc}") from None
    else:
        if env_id is None:
            raise DataError(f"env: required for algo {recipe.algo}")
        try:
            observation_space, action_space = env_spaces(env_id)
        except DataError as exc:
            raise DataError(f"env: {exc}") from None
    try:
        algo = cls(recipe.config, observation_space=observation_space, action_space=action_space, seed=recipe.seed)
    except DataError as exc:  # the algorithm rejects its config or this data (e.g. head vs actions)
        message = str(exc)
        # A config key's error ("head: ...") is named as the recipe key; anything else (the data's
        # spaces) is the algorithm speaking about the data.
        raise DataError(f"config.{message}" if _CONFIG_KEY.match(message) else f"algo {recipe.algo}: {message}") from None
    algo.check_inputs(dataset, env_id)  # experts, extra data: refused here, before any training
    return Prepared(recipe, dataset, env_id, algo)


_CONFIG_KEY = re.compile(r"^[A-Za-z_][\w.]*: ")


def default_run_dir(recipe: Recipe) -> Path:
    name = recipe.name or recipe.algo
    return RUNS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


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


# Shown first on the console (the rest follow while the line has room).
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


def rows_missing(rows: list[tuple[int, dict[str, float]]], name: str) -> bool:
    return bool(rows) and name not in rows[-1][1]


def expected_steps(algo: Algorithm) -> int | None:
    """The step the last metrics row will (at most) have: env steps for online algorithms."""
    config = algo.config
    for name in ("total_timesteps", "n_gradient_steps"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """No banners or warnings about other libraries' internals during a run.

    gymnasium warns "Box ... precision lowered by casting to float32" when an env (or a saved
    policy's space) declares float64 bounds for a float32 Box: true, and nothing a user of
    ildata can act on. Legacy `gym` prints a deprecation banner when something imports it
    (SB3, d3rlpy, seals): it is imported once here with stderr silenced, so later imports are quiet.
    """
    import importlib.util

    if "gym" not in sys.modules and importlib.util.find_spec("gym") is not None:
        from algos.base import quiet_import

        quiet_import("gym")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*precision lowered by casting", category=UserWarning)
        yield


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


def final_evaluation(policy: Policy, env_id: str, recipe: Recipe, references: dict[str, float | None]) -> dict[str, Any]:
    """`recipe.eval.episodes` seeded rollouts, scored between the random and expert returns."""
    from algos.policies import evaluate, score_report

    policy.deterministic = recipe.eval.deterministic
    result = evaluate(policy, env_id, recipe.eval.episodes, seed=recipe.eval.seed, num_envs=recipe.eval.num_envs)
    return score_report(result, references["expert_return"], references["random_return"])


def tensorboard_writer(folder: Path) -> Any:
    """A `torch.utils.tensorboard.SummaryWriter` flushing every few seconds, so `tensorboard
    --logdir runs` shows a run as it trains. Imported here: only runs that ask pay for it."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder), flush_secs=5)


def partial_dir(run_dir: Path) -> Path:
    """Where a resumable run trains: finished rounds survive an interrupt there (`--resume`)."""
    return run_dir.with_name(f"{run_dir.name}.partial")


def check_same_recipe(saved: Path, recipe: Recipe) -> None:
    """Refuse to resume a run of another recipe: one line naming the first key that differs."""
    import yaml

    try:
        before = yaml.safe_load(saved.read_text())
    except (OSError, yaml.YAMLError):
        raise DataError("--resume: no readable config.yaml (not a run folder of ildata train)", subject=saved.parent) from None

    def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, child in value.items():
                out.update(leaves(child, f"{prefix}{key}."))
            return out
        return {prefix[:-1]: value}

    old, new = leaves(before), leaves(yaml.safe_load(yaml.safe_dump(recipe.to_dict(), sort_keys=False)))
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) != new.get(key):
            raise DataError(f"--resume: {key} is {old.get(key)!r} in that run, {new.get(key)!r} in the recipe", subject=saved.parent)


def _resume_target(resume: Path) -> tuple[Path, Path]:
    """(run folder, partial folder) for `--resume RUN` (RUN or RUN.partial)."""
    resume = Path(resume)
    if resume.name.endswith(".partial"):
        run_dir = resume.with_name(resume.name[: -len(".partial")])
    else:
        run_dir = resume
    work = partial_dir(run_dir)
    if not work.is_dir():
        if run_dir.exists():
            raise DataError("--resume: this run already finished", subject=run_dir)
        raise DataError(f"--resume: no interrupted run ({work} does not exist)", subject=run_dir)
    return run_dir, work


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a resumable run: its checkpoints are kept in `work` for `--resume run_dir`."""

    def __init__(self, run_dir: Path, work: Path) -> None:
        super().__init__(f"the last checkpoint is kept in {work}")
        self.run_dir, self.work = run_dir, work


def run_recipe(
    recipe: Recipe,
    *,
    out: Path | None = None,
    echo: Callable[[str], None] = print,
    overwrite: bool = False,
    resume: Path | None = None,
    progress: ProgressMode = "auto",
) -> Path:
    """Check, train, save and evaluate; return the finished run folder.

    A resumable algorithm (BC, DAgger) trains in `RUN.partial/`, saving checkpoints there; an
    interrupt leaves it (raised as `RunInterrupted`) for `resume=RUN`, which continues from the
    last checkpoint. `progress`: "bar" (tqdm), "lines" (about ten lines), "auto" (a bar when
    `echo` is print and stdout is a terminal).
    """
    with quiet_third_party():
        return _run_recipe(recipe, out=out, echo=echo, overwrite=overwrite, resume=resume, progress=progress)


def run(
    *,
    algo: str,
    config: Any = None,
    dataset: str | Path | None = None,
    env: str | None = None,
    seed: int = 0,
    name: str = "",
    out: str | Path | None = None,
    overwrite: bool = False,
    threads: int = 1,
    eval_episodes: int = 20,
    tensorboard: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Train without a recipe file: the same checks, run folder and evaluation as `ildata train`.

    `config` is an instance of the algorithm's Config dataclass (`algos.bc.BCConfig`, ...;
    `ALGORITHMS[algo].Config`), default: its defaults. Returns the finished run folder, which
    `algos.policies.load_policy(run_dir)` and `algos.base.load_algorithm(run_dir)` read.
    """
    from algos.base import ALGORITHMS
    from algos.recipe import parse_recipe

    if algo not in ALGORITHMS:
        raise DataError(f"algo: unknown algorithm {algo!r} (known: {', '.join(sorted(ALGORITHMS.names()))})")
    cls = ALGORITHMS[algo]
    if config is None:
        config = cls.Config()
    elif not isinstance(config, cls.Config):
        raise DataError(f"config: expected {cls.Config.__name__} for algo {algo}, got {type(config).__name__}")
    data: dict[str, Any] = {
        "algo": algo,
        "name": name,
        "seed": seed,
        "threads": threads,
        "eval": {"episodes": eval_episodes},
        "tensorboard": tensorboard,
    }
    if dataset is not None:
        data["dataset"] = str(Path(dataset).resolve())
    if env is not None:
        data["env"] = env
    # Checked exactly as a recipe's mapping is (types, ranges, dataset needed), then the caller's
    # own config object is used as given.
    recipe = parse_recipe({**data, "config": _config_mapping(config)})
    recipe.config = config
    return run_recipe(recipe, out=Path(out) if out is not None else None, overwrite=overwrite, echo=echo)


def _config_mapping(config: Any) -> dict[str, Any]:
    """A config object as the mapping a recipe would give (the fields a recipe may set)."""
    import dataclasses

    from algos.recipe import _plain

    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init and f.metadata.get("yaml", True)}


def _run_recipe(
    recipe: Recipe, *, out: Path | None, echo: Callable[[str], None], overwrite: bool, resume: Path | None, progress: ProgressMode
) -> Path:
    import shutil

    from ildata.fsutil import check_destination, replace_path

    prepared = prepare(recipe)  # every recipe error surfaces here, before any training
    algo = prepared.algo
    if resume is not None:
        if not algo.resumable:
            raise DataError(f"--resume: algo {recipe.algo} does not save checkpoints to resume from")
        run_dir, work = _resume_target(resume)
        check_same_recipe(work / "config.yaml", recipe)
    elif algo.resumable:
        run_dir = Path(out) if out is not None else default_run_dir(recipe)
        check_destination(run_dir, overwrite=overwrite)
        work = partial_dir(run_dir)
        if work.exists():
            if not overwrite:
                raise DataError(
                    f"an interrupted run is in {work}: continue it with --resume {run_dir}, or pass --overwrite", subject=run_dir
                )
            shutil.rmtree(work)
    else:
        run_dir = Path(out) if out is not None else default_run_dir(recipe)
        with atomic_output(run_dir, overwrite=overwrite) as tmp:
            echo(f"run folder: {run_dir} (training in {tmp}: its metrics.csv grows as training goes)")
            _train_into(tmp, prepared, echo, progress)
        echo(f"run folder: {run_dir}")
        return run_dir
    work.mkdir(parents=True, exist_ok=True)
    algo.checkpoint_dir = work
    echo(
        f"run folder: {run_dir} (training in {work}: its metrics.csv grows as training goes; "
        f"checkpoints there let --resume {run_dir} continue after an interrupt)"
    )
    try:
        _train_into(work, prepared, echo, progress)
    except BaseException as exc:
        if not (work / CHECKPOINT_DIR).is_dir():  # nothing to resume from: leave nothing behind
            shutil.rmtree(work, ignore_errors=True)
        elif isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
            raise RunInterrupted(run_dir, work) from None
        raise
    shutil.rmtree(work / CHECKPOINT_DIR, ignore_errors=True)
    replace_path(work, run_dir)
    echo(f"run folder: {run_dir}")
    return run_dir


def _train_into(tmp: Path, prepared: Prepared, echo: Callable[[str], None], progress: ProgressMode = "auto") -> None:
    """Write config, versions, dataset facts, metrics, curves, the algorithm and eval.json into `tmp`."""
    import yaml

    from algos.policies import format_report, reference_returns

    recipe = prepared.recipe
    (tmp / "config.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    (tmp / "versions.json").write_text(json.dumps(library_versions(), indent=2))
    references: dict[str, float | None] = {"expert_return": None, "random_return": None}
    ds = prepared.dataset
    if ds is not None:
        references = reference_returns(ds)
        dataset_info = {
            "path": str(Path(ds.path).resolve()) if ds.path is not None else None,
            "fingerprint": ds.fingerprint,
            "env_id": ds.env_id,
            "episodes": len(ds),
            "transitions": ds.num_transitions,
            **references,
        }
        (tmp / "dataset.json").write_text(json.dumps(dataset_info, indent=2))

    metrics_file = MetricsFile(tmp / "metrics.csv")
    console = Console(echo, expected_steps(prepared.algo), progress)
    board = tensorboard_writer(tmp / "tensorboard") if recipe.tensorboard else None

    def log(step: int, metrics: dict[str, float]) -> None:
        metrics_file.add(step, metrics)
        console.row(step, metrics)
        if board is not None:
            for name, value in metrics.items():
                board.add_scalar(name, value, step)

    started = time.perf_counter()
    try:
        final = prepared.algo.fit(ds, env_id=prepared.env_id, log=log)
    finally:
        console.close()
        if board is not None:
            board.close()
    train_seconds = time.perf_counter() - started
    # An iterative algorithm with a convergence test returns `converged` (1.0 or 0.0): a stop at the
    # iteration limit is said on the console and kept in metrics.csv's last row and eval.json.
    converged = final.get("converged") if isinstance(final, dict) else None
    if converged is not None:
        if rows_missing(metrics_file.rows, "converged"):
            metrics_file.amend_last({"converged": float(converged)})
        if not converged:
            echo(f"{recipe.algo} stopped at its iteration limit without converging (its tolerances were not reached)")
    rows = metrics_file.rows
    if rows:
        plot_curves(rows, tmp / "curve.png", recipe.name or recipe.algo, references)
    prepared.algo.save(tmp)
    if prepared.algo.policy is not None and prepared.env_id is not None:
        if references["expert_return"] is None:  # no dataset: the algorithm's own expert, if any
            references = prepared.algo.reference_returns(prepared.env_id, recipe.eval.episodes, recipe.eval.seed)
        report = final_evaluation(prepared.algo.policy, prepared.env_id, recipe, references)
        report["train_seconds"] = train_seconds
        if converged is not None:
            report["converged"] = bool(converged)
        (tmp / "eval.json").write_text(json.dumps(report, indent=2))
        echo(format_report(report))
