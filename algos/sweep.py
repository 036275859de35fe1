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

Each run is `algos.train.run_recipe` in a Ray worker (`num_cpus=1`): the recipe is loaded with the
run's overrides and seed and prepared exactly as `ildata train` prepares it (seed and torch threads
pinned in `prepare`), so a run in a sweep writes the same metrics as the same recipe run alone.
Resuming: a run folder that exists is finished (train renames it into place only at the end) and
is skipped; `RUN.partial/` with a checkpoint is resumed (BC, DAgger), anything else unfinished
restarts from scratch. A failing run is reported with a one-line error and the others go on.
A search (`Search`) only decides which configurations run: Tune's random search (the sampling of
its BasicVariantGenerator, seeded) draws them once, sweep.json keeps them, and from there they are
run and summarised exactly like a grid's; the summary marks the configuration with the best mean
over seeds of the search's metric. Ray is imported only inside the functions that sample or run.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ildata.episode import DataError
from ildata.fsutil import atomic_output

SWEEP_FILE = "sweep.json"
RunStatus = Literal["finished", "ran", "resumed", "failed"]
# Learning-curve metric: the first of these a configuration's runs log (returns before losses).
CURVE_METRICS = (
    "rollout_return_mean",
    "episode_return_mean",
    "rollout/ep_rew_mean",
    "return_mean",
    "expected_return",
    "loss",
)
BOOTSTRAP_RESAMPLES = 50_000  # rliable's default number of bootstrap repetitions
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
Assignment = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Search:
    """A random search: per recipe key a distribution (`loguniform:1e-4:1e-2`), how many
    configurations to sample (with which seed), and the objective the summary ranks them by."""

    space: dict[str, str]
    samples: int
    seed: int = 0
    metric: str = "normalized_score"
    mode: Literal["max", "min"] = "max"

    def record(self) -> dict[str, Any]:
        return {"space": dict(self.space), "samples": self.samples, "seed": self.seed, "metric": self.metric, "mode": self.mode}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: the recipe, every override (--set, grid, seed) and its folder."""

    recipe: Path
    label: str
    assignment: tuple[tuple[str, str], ...]
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path


@dataclass
class Sweep:
    """A checked sweep: every run's recipe parsed, nothing started."""

    recipe: Path
    seeds: list[int]
    grid: dict[str, list[str]]
    overrides: list[str]
    out: Path
    runs: list[RunSpec] = field(default_factory=list)
    search: Search | None = None
    configurations: list[Assignment] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What sweep.json holds: the arguments a rerun must repeat (and a search's samples)."""
        record = {
            "recipe": str(self.recipe),
            "recipe_sha256": hashlib.sha256(self.recipe.read_bytes()).hexdigest(),
            "set": list(self.overrides),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "seeds": list(self.seeds),
        }
        if self.search is not None:
            record["search"] = self.search.record()
            record["configurations"] = [dict(a) for a in self.configurations]
        return record

    def labels(self) -> list[str]:
        return list(dict.fromkeys(spec.label for spec in self.runs))


@dataclass
class RunResult:
    spec: RunSpec
    status: RunStatus
    error: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------- arguments
def parse_seeds(text: str) -> list[int]:
    """`0-9`, `0,3,7`, `0-4,10`: distinct non-negative seeds, in the order given."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise DataError(f"--seeds {text}: expected seeds like 0-9 or 0,3,7")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise DataError(f"--seeds {text}: the range {part.strip()} is empty")
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise DataError(f"--seeds {text}: a seed is repeated")
    return seeds


def _split_values(text: str) -> list[str]:
    """Split `1e-3,3e-4` on top-level commas (a YAML list `[64, 64]` stays one value)."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return values


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """`--grid KEY=V1,V2 ...` -> {key: [value texts]} (each value parsed as YAML, like --set)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise DataError(f"--grid {item}: expected KEY=VALUE1,VALUE2,...")
        if key == "seed":
            raise DataError("--grid seed: seeds are given with --seeds")
        if key in grid:
            raise DataError(f"--grid {key}: given twice")
        values = _split_values(text)
        if any(not v for v in values):
            raise DataError(f"--grid {item}: an empty value")
        if len(set(values)) != len(values):
            raise DataError(f"--grid {item}: a value is repeated")
        grid[key] = values
    return grid


def parse_search(items: Sequence[str]) -> dict[str, str]:
    """`--search KEY=DIST:ARGS ...` -> {key: spec}, each spec checked (`parse_distribution`)."""
    space: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise DataError(f"--search {item}: expected KEY=DISTRIBUTION:ARGS, e.g. config.learning_rate=loguniform:1e-4:1e-2")
        if key == "seed":
            raise DataError("--search seed: seeds are given with --seeds")
        if key in space:
            raise DataError(f"--search {key}: given twice")
        try:
            parse_distribution(text)
        except ValueError as exc:
            raise DataError(f"--search {item}: {exc}") from None
        space[key] = text
    return space


def parse_distribution(text: str) -> tuple[str, list[Any]]:
    """`uniform:LOW:HIGH`, `loguniform:LOW:HIGH` (floats), `randint:LOW:HIGH` (ints, HIGH
    excluded, like Tune's), `choice:V1,V2,...` (value texts, parsed as YAML like --grid's).

    ValueError says what is wrong; the arguments are what Tune's `tune.<kind>` takes.
    """
    kind, _, rest = text.partition(":")
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {kind!r} (one of {', '.join(DISTRIBUTIONS)})")
    if kind == "choice":
        values = _split_values(rest)
        if not rest.strip() or any(not v for v in values):
            raise ValueError("choice needs values: choice:V1,V2,...")
        if len(set(values)) != len(values):
            raise ValueError("a choice value is repeated")
        return kind, values
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise ValueError(f"expected {kind}:LOW:HIGH")
    number = int if kind == "randint" else float
    try:
        low, high = (number(b) for b in bounds)
    except ValueError:
        raise ValueError(f"{kind} bounds must be {'integers' if number is int else 'numbers'}, got {rest!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{kind} needs LOW < HIGH, got {low} and {high}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"loguniform needs 0 < LOW, got {low}")
    return kind, [low, high]


def _value_text(value: Any, kind: str, args: Sequence[Any]) -> str:
    """A sampled value as an override text: floats kept to 4 significant digits (readable folder
    names) unless rounding would leave [LOW, HIGH]; ints and choice texts as they are."""
    if kind in ("uniform", "loguniform"):
        short = f"{float(value):.4g}"
        return short if args[0] <= float(short) <= args[1] else repr(float(value))
    return str(value)


def sample_configurations(search: Search) -> list[Assignment]:
    """`search.samples` configurations drawn by Ray Tune's random search (`generate_variants`, the
    sampling behind its BasicVariantGenerator) from `tune.uniform` & co., with a fixed seed: the
    same search gives the same configurations. Ray itself is not started."""
    from ray import tune
    from ray.tune.search.variant_generator import generate_variants

    parsed = {key: parse_distribution(spec) for key, spec in search.space.items()}
    space: dict[str, Any] = {}
    for key, (kind, args) in parsed.items():
        if kind == "choice":
            space[key] = tune.choice(args)
        else:
            space[key] = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](*args)
    rng = np.random.default_rng(search.seed)
    configurations: list[Assignment] = []
    for _ in range(search.samples):
        for _resolved, spec in generate_variants({"config": space}, random_state=rng):
            sample = spec["config"]
            configurations.append(tuple((key, _value_text(sample[key], kind, args)) for key, (kind, args) in parsed.items()))
    return configurations


def _label(assignment: Sequence[tuple[str, str]]) -> str:
    """A configuration's folder name: `learning_rate=1e-3,batch_size=64` (`default` without a grid)."""
    if not assignment:
        return "default"
    text = ",".join(f"{key.removeprefix('config.')}={value}" for key, value in assignment)
    text = re.sub(r"[^A-Za-z0-9._=+,-]", "_", text)
    if len(text) > 100 or text.startswith("."):
        text = f"{text[:80].lstrip('.')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return text


def plan_sweep(
    recipe: str | Path,
    *,
    seeds: Sequence[int],
    grid: Mapping[str, Sequence[str]],
    overrides: Sequence[str],
    out: Path,
    search: Search | None = None,
) -> Sweep:
    """Check every combination's recipe (keys, types, dataset present) and list the runs.

    With a search, its configurations are the ones SWEEP_DIR/sweep.json recorded for this very
    search, or else freshly sampled (`sample_configurations`). Nothing is written and Ray is not
    started: a bad key or value is a DataError naming it.
    """
    from algos.recipe import load_recipe

    recipe_path = Path(recipe).resolve()
    if not seeds:
        raise DataError("--seeds: no seeds")
    if search is not None and grid:
        raise DataError("--search and --grid together: a search samples every key it varies (fix the others with --set)")
    if search is not None and search.samples < 1:
        raise DataError(f"--samples: must be at least 1, got {search.samples}")
    if search is not None and search.seed < 0:
        raise DataError(f"--search-seed: must be at least 0, got {search.seed}")
    base = load_recipe(recipe_path, list(overrides))
    _check_dataset(base.dataset_path())
    sweep = Sweep(recipe_path, list(seeds), {k: list(v) for k, v in grid.items()}, list(overrides), Path(out).resolve(), search=search)
    flag = "--grid"
    if search is None:
        keys = list(grid)
        configurations: list[Assignment] = [tuple(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    else:
        flag = "--search"
        for key, spec in search.space.items():  # every key and choice value, sampled or not
            kind, args = parse_distribution(spec)
            for value in args if kind == "choice" else args[:1]:
                try:
                    load_recipe(recipe_path, [*overrides, f"{key}={value}"])
                except DataError as exc:
                    raise DataError(f"--search {key}={spec}: {exc}") from None
        configurations = _recorded_configurations(sweep.out, search) or sample_configurations(search)
    sweep.configurations = configurations
    labels: set[str] = set()
    for assignment in configurations:
        sets = [f"{k}={v}" for k, v in assignment]
        try:
            parsed = load_recipe(recipe_path, [*overrides, *sets])
        except DataError as exc:
            raise DataError(f"{flag} {', '.join(sets)}: {exc}") from None
        _check_dataset(parsed.dataset_path())
        label = _label(assignment)
        if label in labels:
            label = f"{label}-{len(labels)}"
        labels.add(label)
        for seed in seeds:
            run_dir = sweep.out / label / f"seed-{seed}"
            sweep.runs.append(RunSpec(recipe_path, label, assignment, seed, (*overrides, *sets, f"seed={seed}"), run_dir))
    return sweep


def _recorded_configurations(out: Path, search: Search) -> list[Assignment]:
    """The configurations sweep.json recorded for this same search ([] if none): a rerun runs
    what the first invocation sampled, whatever a later Ray's sampling would give."""
    try:
        before = json.loads((out / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(before, dict) or before.get("search") != search.record():
        return []
    recorded = before.get("configurations")
    if not isinstance(recorded, list) or not all(
        isinstance(c, dict) and list(c) == list(search.space) and all(isinstance(v, str) for v in c.values()) for c in recorded
    ):
        return []
    return [tuple(c.items()) for c in recorded]


def _check_dataset(path: Path | None) -> None:
    if path is not None and not path.exists():
        raise DataError(f"dataset: {path} does not exist")


def claim_folder(sweep: Sweep) -> None:
    """Create SWEEP_DIR with its sweep.json, or check that it holds this very sweep."""
    out, record = sweep.out, sweep.record()
    marker = out / SWEEP_FILE
    if out.exists() and not out.is_dir():
        raise DataError("--out: exists and is not a folder", subject=out)
    if marker.is_file():
        try:
            before = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise DataError(f"{SWEEP_FILE}: unreadable (not a sweep folder of ildata sweep)", subject=out) from None
        changed = [key for key, value in record.items() if before.get(key) != value]
        if changed == ["seeds"] and isinstance(before.get("seeds"), list):
            # Each seed is a run folder of its own: other seeds extend the sweep (sweep.json lists all).
            record["seeds"] = sorted({*before["seeds"], *record["seeds"]})
            with atomic_output(marker, overwrite=True, folder=False) as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")
            return
        for key, value in record.items():
            if before.get(key) != value:
                what = "the recipe file changed since" if key == "recipe_sha256" else f"{key} is {before.get(key)!r} there, {value!r} now"
                raise DataError(f"this folder holds another sweep ({what}): rerun with its arguments or use another --out", subject=out)
        return
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"--out: not empty and has no {SWEEP_FILE} (not a sweep folder)", subject=out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(marker, overwrite=True, folder=False) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


# ---------------------------------------------------------------------------------- running
def is_finished(run_dir: Path) -> bool:
    """`ildata train` renames a run folder into place only when it finished."""
    return (run_dir / "config.yaml").is_file()


def one_line(exc: BaseException) -> str:
    """An exception as one line: DataError as the CLI prints it, anything else with its type."""
    if isinstance(exc, DataError):
        text = f"{exc.subject}: {exc}" if getattr(exc, "subject", None) else str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def execute(spec: RunSpec) -> RunResult:
    """Run (or resume, or restart) one run folder; never raises: a failure is the result.

    What `ildata train --out RUN` does (the same `load_recipe` + `run_recipe`), quietly.
    """
    import contextlib

    from algos.base import ALGORITHMS
    from algos.recipe import load_recipe
    from algos.train import CHECKPOINT_DIR, partial_dir, run_recipe

    started = time.perf_counter()
    run_dir = spec.run_dir
    if is_finished(run_dir):
        return RunResult(spec, "finished")
    try:
        if run_dir.exists():
            raise DataError("exists but is not a finished run folder (no config.yaml): remove it to rerun", subject=run_dir)
        recipe = load_recipe(spec.recipe, list(spec.overrides))
        work = partial_dir(run_dir)
        resume = run_dir if ALGORITHMS[recipe.algo].resumable and (work / CHECKPOINT_DIR).is_dir() else None
        for stale in run_dir.parent.glob(f".{run_dir.name}.tmp-*"):  # a killed non-resumable run
            shutil.rmtree(stale, ignore_errors=True)
        # Libraries print (SB3's banners, gym's warnings): kept out of the sweep's own output.
        with contextlib.redirect_stdout(io.StringIO()):
            if resume is not None:
                run_recipe(recipe, resume=resume, echo=_silent, progress="lines")
            else:  # overwrite: clears a RUN.partial/ without a checkpoint (nothing to resume)
                run_recipe(recipe, out=run_dir, overwrite=True, echo=_silent, progress="lines")
    except Exception as exc:
        return RunResult(spec, "failed", one_line(exc), time.perf_counter() - started)
    return RunResult(spec, "resumed" if resume is not None else "ran", "", time.perf_counter() - started)


def _silent(_: str) -> None:
    pass


def start_ray(cpus: int | None, address: str | None) -> bool:
    """Start a local Ray (one node, no dashboard, no usage stats, quiet) or join `address`; False
    if Ray was already started in this process (then it is used as it is and left running).

    Ray 2.60's processes listen on every interface of the machine whatever address is asked for
    (it resolves 127.0.0.1 to the node's own address), protected by its token authentication,
    which is on by default; nothing here contacts another machine.
    """
    import logging

    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, **common)
    else:
        _token_auth_if_available()
        try:
            ray.init(address=address, **common)
        except ConnectionError as exc:
            raise DataError(f"--address {address}: {exc}") from None
    return True


def _token_auth_if_available() -> None:
    """Join a token-authenticated cluster with the token `ray start` saved (~/.ray/auth_token).

    Ray 2.60 turns token authentication on for the clusters it starts, but a driver joining with
    `address=` does not send the saved token unless RAY_AUTH_MODE=token (it is refused with
    InvalidAuthToken otherwise). Ray's own rule for this case is applied: token mode when a token
    exists and RAY_AUTH_MODE is unset (an explicit RAY_AUTH_MODE is respected).
    """
    import logging

    try:
        from ray._private.authentication import authentication_token_setup as auth
    except ImportError:  # another Ray version: its own defaults apply
        return
    logger = logging.getLogger(auth.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # not its "token authentication is enabled" notice
    try:
        auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        logger.setLevel(level)


def execute_runs(
    runs: Sequence[RunSpec], *, cpus: int | None = None, address: str | None = None, echo: Callable[[str], None] = print
) -> list[RunResult]:
    """Every unfinished run as a Ray task (one CPU each); finished runs are skipped.

    A line is echoed as each run ends; results come back in `runs`' order.
    """
    results: dict[int, RunResult] = {}
    todo = []
    for i, spec in enumerate(runs):
        if is_finished(spec.run_dir):
            results[i] = RunResult(spec, "finished")
        else:
            todo.append(i)
    if results:
        echo(f"{len(results)} of {len(runs)} runs already finished: skipped")
    if not todo:
        return [results[i] for i in range(len(runs))]
    import ray

    # Lines name a run by its folder under the sweep folder(s): `lr=1e-3/seed-2`, `dagger-cartpole/default/seed-0`.
    root = Path(os.path.commonpath([spec.run_dir.parent.parent for spec in runs]))
    started_here = start_ray(cpus, address)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(execute)
        pending = {task.remote(runs[i]): i for i in todo}
        done_count = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # the worker died (out of memory, killed): that run failed
                result = RunResult(runs[i], "failed", one_line(exc))
            results[i] = result
            done_count += 1
            echo(f"[{done_count}/{len(todo)}] {_describe(result, root)}")
    finally:
        if started_here:
            ray.shutdown()
    return [results[i] for i in range(len(runs))]


def _describe(result: RunResult, root: Path) -> str:
    where = str(result.spec.run_dir.relative_to(root))
    if result.status == "failed":
        return f"FAILED {where}: {result.error}"
    score = read_eval(result.spec.run_dir).get("normalized_score")
    shown = f", normalised score {score:.3f}" if isinstance(score, (int, float)) else ""
    return f"{where}: {result.status} in {result.seconds:.0f} s{shown}"


def run_sweep(
    sweep: Sweep, *, cpus: int | None = None, address: str | None = None, echo: Callable[[str], None] = print
) -> tuple[list[RunResult], dict[str, Any]]:
    """Claim SWEEP_DIR, run what is unfinished, write the summary; (results, summary)."""
    claim_folder(sweep)
    results = execute_runs(sweep.runs, cpus=cpus, address=address, echo=echo)
    summary = summarize(sweep)
    summary["failed_runs"] = failed_runs(results)
    write_summary(sweep, summary)
    return results, summary


def failed_runs(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The failed runs as summary.json lists them: configuration, seed, folder, one-line error."""
    return [
        {"config": r.spec.label, "seed": r.spec.seed, "run_dir": str(r.spec.run_dir), "error": r.error}
        for r in results
        if r.status == "failed"
    ]


# ---------------------------------------------------------------------------------- summary
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


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (rliable's aggregate, scipy's trim_mean)."""
    from scipy import stats

    return np.asarray(stats.trim_mean(values, 0.25, axis=axis))


def iqm_interval(values: np.ndarray, *, level: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the IQM over seeds.

    This is rliable's method (Agarwal et al. 2021, `rly.get_interval_estimates` with its default
    `method="percentile"`): resample the seeds with replacement, take the IQM of each resample,
    and report the 2.5 and 97.5 percentiles. None with fewer than two seeds.
    """
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,),
        iqm,
        vectorized=True,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def summarize(sweep: Sweep) -> dict[str, Any]:
    """Per configuration, from the finished run folders on disk (earlier invocations included)."""
    configs = []
    for label in sweep.labels():
        specs = [s for s in sweep.runs if s.label == label]
        finished = [s for s in specs if is_finished(s.run_dir)]
        scores, steps, walls = [], [], []
        for spec in finished:
            report = read_eval(spec.run_dir)
            score = report.get("normalized_score")
            if isinstance(score, (int, float)):
                scores.append(float(score))
            wall = report.get("train_seconds")
            walls.append(float(wall) if isinstance(wall, (int, float)) else math.nan)
            env_steps = read_metrics(spec.run_dir).get("env_steps")
            steps.append(float(np.nanmax(env_steps)) if env_steps is not None and np.isfinite(env_steps).any() else math.nan)
        values = np.asarray(scores)
        interval = iqm_interval(values)
        configs.append(
            {
                "config": label,
                "assignment": dict(specs[0].assignment),
                "seeds": [s.seed for s in finished],
                "unfinished_seeds": [s.seed for s in specs if s not in finished],
                "scores": scores,
                "score_mean": float(values.mean()) if len(values) else None,
                "score_iqm": float(iqm(values)) if len(values) else None,
                "score_ci95": list(interval) if interval is not None else None,
                "env_steps": _mean(steps),
                "wall_s": _mean(walls),
            }
        )
    summary: dict[str, Any] = {"sweep": sweep.record(), "configs": configs}
    if sweep.search is not None:
        summary["search"] = _rank(sweep, configs, sweep.search)
    return summary


def run_metric(run_dir: Path, metric: str) -> float | None:
    """A finished run's value of `metric`: eval.json's number, else metrics.csv's last finite value."""
    value = read_eval(run_dir).get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    column = read_metrics(run_dir).get(metric)
    if column is None or not np.isfinite(column).any():
        return None
    return float(column[np.isfinite(column)][-1])


def _rank(sweep: Sweep, configs: list[dict[str, Any]], search: Search) -> dict[str, Any]:
    """Each configuration's objective (the mean over its finished seeds of the search's metric)
    and the best one; a configuration without the metric is not ranked."""
    for c in configs:
        values = [run_metric(s.run_dir, search.metric) for s in sweep.runs if s.label == c["config"] and s.seed in c["seeds"]]
        c["objective"] = _mean([v for v in values if v is not None])
    ranked = [c for c in configs if c["objective"] is not None]
    best = (max if search.mode == "max" else min)(ranked, key=lambda c: c["objective"]) if ranked else None
    for c in configs:
        c["best"] = c is best
    return {
        **search.record(),
        "best": best["config"] if best else None,
        "best_assignment": best["assignment"] if best else None,
        "best_objective": best["objective"] if best else None,
    }


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_columns(summary: Mapping[str, Any]) -> list[str]:
    """COLUMNS, and for a search ranked by another metric than the normalised score, its mean."""
    search = summary.get("search")
    if search and search["metric"] != "normalized_score":
        return [*COLUMNS, f"{search['metric']} mean"]
    return list(COLUMNS)


def summary_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """The table's cells: config (`(best)` after a search's best), seeds, mean, IQM, 95% CI, env
    steps, wall s (and the search's metric, see `summary_columns`)."""
    extra = len(summary_columns(summary)) > len(COLUMNS)
    rows = []
    for c in summary["configs"]:
        ci = c["score_ci95"]
        seeds = f"{len(c['seeds'])}/{len(c['seeds']) + len(c['unfinished_seeds'])}"
        row = [
            c["config"] + (" (best)" if c.get("best") else ""),
            seeds,
            _fmt(c["score_mean"]),
            _fmt(c["score_iqm"]),
            f"{ci[0]:.3f} - {ci[1]:.3f}" if ci else "-",
            _fmt(c["env_steps"], ".0f"),
            _fmt(c["wall_s"], ".1f"),
        ]
        rows.append([*row, _fmt(c.get("objective"), ".4g")] if extra else row)
    return rows


COLUMNS = ["config", "seeds", "score mean", "score IQM", "IQM 95% CI", "env steps", "wall s"]


def summary_markdown(summary: Mapping[str, Any]) -> str:
    record = summary["sweep"]
    search = summary.get("search")
    columns = summary_columns(summary)
    varied = (
        f"search {record['search']['space']} ({record['search']['samples']} samples, seed {record['search']['seed']})"
        if search
        else f"grid {record['grid'] or '{}'}"
    )
    lines = [
        f"# Sweep of {record['recipe']}",
        "",
        f"seeds {record['seeds']}, {varied}, --set {record['set'] or '[]'}. "
        "Normalised score (0 random, 1 expert) over seeds: mean, interquartile mean and the 95% "
        "percentile-bootstrap interval of the IQM (rliable's method); env steps and wall time (train "
        "seconds) are means over seeds.",
        "",
    ]
    if search:
        lines += [search_line(search), ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(summary)]
    failed = summary.get("failed_runs") or []
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- {f['config']} seed {f['seed']}: {f['error']}" for f in failed]
    return "\n".join(lines) + "\n"


def search_line(search: Mapping[str, Any]) -> str:
    """`best (highest mean normalized_score over seeds): <config> = 0.912`."""
    how = f"{'highest' if search['mode'] == 'max' else 'lowest'} mean {search['metric']} over seeds"
    if search["best"] is None:
        return f"best ({how}): none (no finished run reports {search['metric']})"
    return f"best ({how}): {search['best']} = {search['best_objective']:.4g}"


def write_summary(sweep: Sweep, summary: Mapping[str, Any]) -> None:
    """summary.json, summary.md, scores.png and curves.png in SWEEP_DIR, each written atomically."""
    out = sweep.out
    with atomic_output(out / "summary.json", overwrite=True, folder=False) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    with atomic_output(out / "summary.md", overwrite=True, folder=False) as tmp:
        tmp.write_text(summary_markdown(summary))
    plot_scores(summary, out / "scores.png")
    plot_curves(sweep, out / "curves.png")


def plot_scores(summary: Mapping[str, Any], path: Path) -> None:
    """One row per configuration: each seed's score, the IQM and its 95% interval, the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = summary["configs"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(configs) + 1.5))
    for y, c in enumerate(configs):
        if c["scores"]:
            ax.scatter(c["scores"], [y] * len(c["scores"]), color="grey", s=12, alpha=0.6, label="seeds" if y == 0 else None)
        if c["score_iqm"] is not None:
            ci = c["score_ci95"] or [c["score_iqm"], c["score_iqm"]]
            err = [[c["score_iqm"] - ci[0]], [ci[1] - c["score_iqm"]]]
            ax.errorbar([c["score_iqm"]], [y], xerr=err, fmt="o", color="C0", capsize=4, label="IQM, 95% CI" if y == 0 else None)
            ax.scatter([c["score_mean"]], [y], marker="x", color="C1", label="mean" if y == 0 else None)
    ax.set_yticks(range(len(configs)), [c["config"] + (" (best)" if c.get("best") else "") for c in configs], fontsize=8)
    ax.set_xlabel("normalised score (0 random, 1 expert)")
    ax.invert_yaxis()
    if configs:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_curves(sweep: Sweep, path: Path) -> None:
    """Learning curves from each run's metrics.csv: per configuration the mean over seeds, with a
    min-max band (runs interpolated onto the union of their steps, each within its own range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    shown: list[str] = []
    xlabel = "step"
    for i, label in enumerate(sweep.labels()):
        runs = [read_metrics(s.run_dir) for s in sweep.runs if s.label == label and is_finished(s.run_dir)]
        runs = [r for r in runs if r]
        metric = next((m for m in CURVE_METRICS if any(m in r and np.isfinite(r[m]).sum() >= 2 for r in runs)), None)
        if metric is None:
            continue
        online = all("env_steps" in r and np.isfinite(r["env_steps"]).all() for r in runs)
        xlabel = "env steps" if online else "step"
        series = []
        for r in runs:
            if metric not in r:
                continue
            x = r["env_steps"] if online else r["step"]
            keep = np.isfinite(r[metric])
            if keep.sum() >= 2:
                series.append((x[keep], r[metric][keep]))
        grid = np.unique(np.concatenate([x for x, _ in series]))
        ys = np.stack([np.where((grid >= x[0]) & (grid <= x[-1]), np.interp(grid, x, y), np.nan) for x, y in series])
        color = f"C{i % 10}"
        ax.plot(grid, np.nanmean(ys, axis=0), color=color, label=f"{label} ({len(series)} seeds)")
        ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=color, alpha=0.2)
        shown.append(metric)
    if shown:
        ax.set_ylabel(", ".join(dict.fromkeys(shown)))
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no learning curve in the finished runs' metrics.csv", ha="center", va="center")
    ax.set_xlabel(xlabel)
    ax.set_title("mean over seeds, band: min-max", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig: Any, path: Path) -> None:
    with atomic_output(path, overwrite=True, folder=False) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
