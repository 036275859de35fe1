"""Running a planned sweep: every unfinished run folder as a Ray task, resumed where it can be.

Each run is `algos.train.run_recipe` in a Ray worker: the recipe is loaded with the run's
overrides and seed and prepared exactly as `ildata train` prepares it, so a run in a sweep writes
the same metrics as the same recipe run alone. A task takes as many CPUs as its recipe's
`threads:`, and its worker starts with every thread pool pinned to that (`algos.runtime.thread_env`),
so runs side by side do not crowd each other's cores.
Resuming: a run folder that exists is finished (train renames it into place only at the end) and
is skipped; `RUN.partial/` with a checkpoint is resumed (BC, DAgger), anything else unfinished
restarts from scratch. A failing run is reported with a one-line error and the others go on.
Ray is imported only inside the functions that run.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from algos.runtime import thread_env
from algos.sweep.plan import RunSpec, Sweep, claim_folder
from algos.sweep.run_files import is_finished, read_eval
from algos.sweep.summary import summarize, write_summary
from ildata.episode import DataError

RunStatus = Literal["finished", "ran", "resumed", "failed"]


@dataclass
class RunResult:
    """What became of one run: its status, a failed run's one-line error, the seconds it took."""

    spec: RunSpec
    status: RunStatus
    error: str = ""
    seconds: float = 0.0


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
    """Every unfinished run as a Ray task (as many CPUs as its `threads:`); finished runs are skipped.

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
        # Plain Ray tasks rather than Ray Tune's Tuner: a sweep's state is its run folders on disk
        # (a finished folder is skipped, a checkpointed RUN.partial/ resumed by `ildata train`'s own
        # resume), which also covers a killed driver; and a failed run is reported, not retried
        # (max_retries=0), since a run fails the same way again with the same recipe and seed.
        task = ray.remote(max_retries=0)(execute)
        # A run asking for more threads than the cluster has CPUs would never be scheduled: it takes them all.
        largest = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending = {}
        for i in todo:
            threads = runs[i].threads
            options = {"num_cpus": min(threads, largest), "runtime_env": {"env_vars": thread_env(threads)}}
            pending[task.options(**options).remote(runs[i])] = i
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
