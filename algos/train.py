"""Run a recipe and write a run folder a researcher can trust and reproduce.

    runs/<name>-<timestamp>/
      config.yaml     the resolved recipe (defaults filled in, dataset path absolute)
      dataset.json    dataset path, fingerprint, size, and its expert/random reference returns
      versions.json   python and library versions
      metrics.csv     step + every metric the algorithm logged (identical for the same recipe+seed)
      curve.png       the learning curves
      algorithm.json  the algorithm's name, config, spaces, seed, env (`algos.base.load_algorithm`)
      policy/         the saved policy (`algos.policies.load_policy(run_dir)` rebuilds it)
      ...             whatever else the algorithm saved (`_save_state`: reward net, KDE data)
      eval.json       final evaluation: mean/std return over N episodes, normalised score

Everything is written through `ildata.fsutil.atomic_output` (a temporary sibling renamed at the
end), so a failed or interrupted run leaves no folder that looks finished. Resumable algorithms
(DAgger) train in `RUN.partial/` instead and save every finished round there; an interrupt
leaves it, and `ildata train RECIPE --resume RUN` continues from the last finished round (the
recipe must be the same: a differing key is named). Only the finished run is renamed to RUN.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algos.base import Algorithm, library_versions
from algos.policies import Policy
from algos.recipe import Recipe
from ildata.episode import DataError
from ildata.fsutil import atomic_output
from ildata.store import TrajectoryDataset

RUNS_DIR = Path("runs")


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
    except DataError as exc:  # the algorithm rejects its config for this data (e.g. head vs actions)
        raise DataError(f"config.{exc}") from None
    algo.check_inputs(dataset, env_id)  # experts, extra data: refused here, before any training
    return Prepared(recipe, dataset, env_id, algo)


def default_run_dir(recipe: Recipe) -> Path:
    name = recipe.name or recipe.algo
    return RUNS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_metrics_csv(rows: list[tuple[int, dict[str, float]]], path: Path) -> None:
    """One row per `log` call; columns in first-seen order, blank where a metric was not logged."""
    columns: list[str] = []
    for _, metrics in rows:
        columns.extend(k for k in metrics if k not in columns)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *columns])
        for step, metrics in rows:
            writer.writerow([step, *(repr(metrics[c]) if c in metrics else "" for c in columns)])


def plot_curves(rows: list[tuple[int, dict[str, float]]], path: Path, title: str) -> None:
    """One small panel per metric against the step: env steps for online algorithms (which log
    `env_steps` and use it as the step), gradient steps otherwise (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    online = all("env_steps" in m for _, m in rows)
    names: list[str] = []
    for _, metrics in rows:
        names.extend(k for k in metrics if k not in names and k not in ("epoch", "env_steps"))
    ncols = min(3, max(1, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = [(step, m[name]) for step, m in rows if name in m]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 30 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("env steps" if online else "step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
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


def run_recipe(
    recipe: Recipe,
    *,
    out: Path | None = None,
    echo: Callable[[str], None] = print,
    overwrite: bool = False,
    resume: Path | None = None,
) -> Path:
    """Check, train, save and evaluate; return the finished run folder.

    A resumable algorithm (DAgger) trains in `RUN.partial/`, saving every finished round there;
    an interrupt leaves it for `resume=RUN`, which continues from the last finished round.
    """
    import shutil

    from ildata.fsutil import check_destination, replace_path

    prepared = prepare(recipe)  # every recipe error surfaces here, before any training
    algo = prepared.algo
    if resume is not None:
        if not algo.resumable:
            raise DataError(f"--resume: algo {recipe.algo} does not save rounds to resume from")
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
            _train_into(tmp, prepared, echo)
        echo(f"run folder: {run_dir}")
        return run_dir
    work.mkdir(parents=True, exist_ok=True)
    algo.checkpoint_dir = work
    echo(f"training in {work} (finished rounds are kept: --resume {run_dir} continues after an interrupt)")
    _train_into(work, prepared, echo)
    shutil.rmtree(work / "checkpoint", ignore_errors=True)
    replace_path(work, run_dir)
    echo(f"run folder: {run_dir}")
    return run_dir


def _train_into(tmp: Path, prepared: Prepared, echo: Callable[[str], None]) -> None:
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

    rows: list[tuple[int, dict[str, float]]] = []

    def log(step: int, metrics: dict[str, float]) -> None:
        rows.append((step, dict(metrics)))
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        echo(f"step {step}: {shown}")

    started = time.perf_counter()
    prepared.algo.fit(ds, env_id=prepared.env_id, log=log)
    train_seconds = time.perf_counter() - started
    write_metrics_csv(rows, tmp / "metrics.csv")
    if rows:
        plot_curves(rows, tmp / "curve.png", recipe.name or recipe.algo)
    prepared.algo.save(tmp)
    if prepared.algo.policy is not None and prepared.env_id is not None:
        if references["expert_return"] is None:  # no dataset: the algorithm's own expert, if any
            references = prepared.algo.reference_returns(prepared.env_id, recipe.eval.episodes, recipe.eval.seed)
        report = final_evaluation(prepared.algo.policy, prepared.env_id, recipe, references)
        report["train_seconds"] = train_seconds
        (tmp / "eval.json").write_text(json.dumps(report, indent=2))
        echo(format_report(report))
