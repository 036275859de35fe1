"""The run itself: check a recipe against its data and env, train, save, evaluate, and write it
all into a run folder (`algos.train` describes the folder)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ildata
from algos.base import ALGORITHMS, Algorithm, library_versions
from algos.policies import Policy, check_env_spaces, evaluate, format_report, reference_returns, score_report
from algos.recipe import Recipe, parse_recipe
from algos.runtime import quiet_import, run_threads, seed_everything
from algos.train.console import Console, ProgressMode, expected_steps
from algos.train.curves import plot_curves
from algos.train.metrics import MetricsFile, rows_missing, tensorboard_writer
from algos.train.run_folder import CHECKPOINT_DIR, RunInterrupted, check_same_recipe, default_run_dir, partial_dir, resume_target
from algos.typed_config import plain_data
from ildata.episode import DataError
from ildata.fsutil import atomic_output
from ildata.store import TrajectoryDataset


@dataclass
class Prepared:
    """Everything a run needs, checked before training starts."""

    recipe: Recipe
    dataset: TrajectoryDataset | None
    env_id: str | None
    algo: Algorithm


def prepare(recipe: Recipe) -> Prepared:
    """Load the dataset, check the env against it and build the algorithm; DataError names the key."""
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


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """No banners or warnings about other libraries' internals during a run.

    gymnasium warns "Box ... precision lowered by casting to float32" when an env (or a saved
    policy's space) declares float64 bounds for a float32 Box: true, and nothing a user of
    ildata can act on. Legacy `gym` prints a deprecation banner when something imports it
    (SB3, d3rlpy, seals): it is imported once here with stderr silenced, so later imports are quiet.
    """
    if "gym" not in sys.modules and importlib.util.find_spec("gym") is not None:
        quiet_import("gym")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*precision lowered by casting", category=UserWarning)
        yield


def final_evaluation(policy: Policy, env_id: str, recipe: Recipe, references: dict[str, float | None]) -> dict[str, Any]:
    """`recipe.eval.episodes` seeded rollouts, scored between the random and expert returns."""
    policy.deterministic = recipe.eval.deterministic
    result = evaluate(policy, env_id, recipe.eval.episodes, seed=recipe.eval.seed, num_envs=recipe.eval.n_envs)
    return score_report(result, references["expert_return"], references["random_return"])


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
    `echo` is print and stdout is a terminal). Every thread pool (torch, BLAS, OpenMP) is held
    to the recipe's `threads:` for the whole run (`algos.runtime.run_threads`).
    """
    with quiet_third_party(), run_threads(recipe.threads):
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
    return {f.name: plain_data(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init and f.metadata.get("yaml", True)}


def _run_recipe(
    recipe: Recipe, *, out: Path | None, echo: Callable[[str], None], overwrite: bool, resume: Path | None, progress: ProgressMode
) -> Path:
    from ildata.fsutil import check_destination, replace_path

    prepared = prepare(recipe)  # every recipe error surfaces here, before any training
    algo = prepared.algo
    if resume is not None:
        if not algo.resumable:
            raise DataError(f"--resume: algo {recipe.algo} does not save checkpoints to resume from")
        run_dir, work = resume_target(resume)
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
