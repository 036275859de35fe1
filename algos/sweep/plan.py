"""Planning a sweep: its arguments (--seeds, --grid, --search), the configurations a search samples,
every run's recipe checked, and the sweep folder claimed (sweep.json).

Nothing here starts Ray or trains: a bad key or value is a DataError naming it before any run.
A search (`Search`) only decides which configurations run: Tune's random search (the sampling of
its BasicVariantGenerator, seeded) draws them once, sweep.json keeps them, and from there they are
run and summarised exactly like a grid's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ildata.episode import DataError
from ildata.fsutil import atomic_output

SWEEP_FILE = "sweep.json"
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
    """One run of a sweep: the recipe, every override (--set, grid, seed), its folder, and the
    recipe's `threads:` (the CPUs its Ray task takes)."""

    recipe: Path
    label: str
    assignment: tuple[tuple[str, str], ...]
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    threads: int = 1


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
            sweep.runs.append(
                RunSpec(recipe_path, label, assignment, seed, (*overrides, *sets, f"seed={seed}"), run_dir, threads=parsed.threads)
            )
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
