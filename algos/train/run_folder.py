"""Where a run is written and how an interrupted one continues: the run folder's name, the
`RUN.partial/` folder a resumable algorithm trains in, `--resume` checks, and `RunInterrupted`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from algos.recipe import Recipe
from ildata.episode import DataError

RUNS_DIR = Path("runs")
CHECKPOINT_DIR = "checkpoint"  # in RUN.partial/: the last checkpoint of a resumable algorithm


def default_run_dir(recipe: Recipe) -> Path:
    name = recipe.name or recipe.algo
    return RUNS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


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


def resume_target(resume: Path) -> tuple[Path, Path]:
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
