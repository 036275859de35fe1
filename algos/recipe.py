"""Recipe YAML -> typed dataclasses, strictly: an unknown key or a wrong type is an error naming it.

A recipe is one file a researcher can rerun:

    name: bc-cartpole
    algo: bc                       # a name in algos.base.ALGORITHMS
    dataset: ../datasets/cartpole-expert   # relative to the recipe file
    env: CartPole-v1               # evaluation env (default: the dataset's env_id)
    seed: 0
    threads: 1                     # threads for torch, BLAS and OpenMP (`algos.runtime.run_threads`)
    config: {...}                  # exactly the fields of ALGORITHMS[algo].Config
    eval: {episodes: 20, seed: 100000}
    tensorboard: false             # true: RUN/tensorboard/ event files (`tensorboard --logdir runs`)

Checked before anything trains, so a typo costs a second, not a training run. The strict
checking itself (`build_dataclass`, `coerce`, renamed keys) is `algos.typed_config`, re-exported
here; this module adds what a recipe is: its top-level keys, the evaluation, paths relative to
the recipe file and `--set` overrides.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algos.base import ALGORITHMS
from algos.typed_config import build_dataclass, coerce, plain_data
from ildata.episode import DataError

__all__ = [
    "EvalConfig",
    "Recipe",
    "apply_overrides",
    "build_dataclass",
    "coerce",
    "load_recipe",
    "parse_recipe",
    "plain_data",
    "resolve_paths",
    "yaml_error",
]


@dataclass
class EvalConfig:
    """Final evaluation: `episodes` rollouts reset with seeds `seed`, `seed + 1`, ..."""

    RENAMED: typing.ClassVar[dict[str, str]] = {"num_envs": "n_envs"}

    episodes: int = 20
    seed: int = 100_000  # far from the seeds collection used, so evaluation states are new
    n_envs: int = 8
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise DataError("episodes: must be at least 1")


@dataclass
class Recipe:
    """A parsed recipe; `config` is an instance of the algorithm's `Config` dataclass."""

    algo: str
    config: Any
    name: str = ""
    dataset: str | None = None
    env: str | None = None
    seed: int = 0
    threads: int = 1
    eval: EvalConfig = field(default_factory=EvalConfig)
    tensorboard: bool = False  # also write every logged metric as TensorBoard scalars (RUN/tensorboard/)
    # Where the recipe file lives: relative dataset paths resolve against it. Not a YAML key.
    base_dir: Path = field(default=Path("."), metadata={"yaml": False})

    def dataset_path(self) -> Path | None:
        if self.dataset is None:
            return None
        path = Path(self.dataset).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain YAML-able data (written to the run folder)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("yaml", True)}
        out["config"] = plain_data(self.config)
        out["eval"] = plain_data(self.eval)
        if self.dataset is not None:
            out["dataset"] = str(self.dataset_path())
        return out


def resolve_paths(config: Any, base_dir: Path) -> None:
    """Make a config's relative paths relative to the recipe file, as `dataset:` is.

    A field marked `metadata={"path": True}` is always a path; `{"path": "if-exists"}` may also
    be a name (an expert's `expert:NAME`) and is resolved only when the file or folder exists.
    Nested configs are walked too.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            resolve_paths(value, base_dir)
            continue
        kind = f.metadata.get("path")
        if not kind or not isinstance(value, str):
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        resolved = (base_dir / path).resolve()
        if kind is True or resolved.exists():
            setattr(config, f.name, str(resolved))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`--set a.b=value`: value parsed as YAML (so `3`, `1e-3`, `[64, 64]`, `true` get types)."""
    import yaml

    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise DataError(f"--set {item}: expected key=value")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise DataError(f"--set {key}: {part} is not a mapping")
            node = child
        node[leaf] = yaml.safe_load(text) if text else None
    return data


def parse_recipe(data: Any, *, base_dir: Path = Path("."), overrides: Sequence[str] = ()) -> Recipe:
    """A loaded YAML mapping (plus `--set` overrides) -> `Recipe`; DataError names the bad key."""
    if not isinstance(data, Mapping):
        raise DataError("a recipe must be a YAML mapping")
    data = apply_overrides(dict(data), list(overrides))
    algo = data.get("algo")
    if algo is None:
        raise DataError("algo: required key is missing")
    if algo not in ALGORITHMS:
        raise DataError(f"algo: unknown algorithm {algo!r} (known: {', '.join(sorted(ALGORITHMS.names()))})")
    cls = ALGORITHMS[algo]
    top = dict(data)
    config = build_dataclass(cls.Config, top.pop("config", None), "config")
    hints = typing.get_type_hints(Recipe)
    known = {f.name for f in dataclasses.fields(Recipe) if f.metadata.get("yaml", True)}
    for key in top:
        if key not in known:
            raise DataError(f"{key}: unknown key (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {"config": config, "base_dir": base_dir}
    for key, value in top.items():
        if key == "eval":
            kwargs[key] = build_dataclass(EvalConfig, value, "eval")
        else:
            kwargs[key] = coerce(value, hints[key], key)
    recipe = Recipe(**kwargs)
    resolve_paths(recipe.config, base_dir)
    if cls.needs_dataset and recipe.dataset is None:
        raise DataError(f"dataset: required for algo {algo}")
    if recipe.threads < 1:
        raise DataError("threads: must be at least 1")
    return recipe


def yaml_error(exc: Exception, path: Path) -> DataError:
    """One line an editor can jump to: `recipe.yaml:3:9: invalid YAML (what the parser expected)`."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    context = getattr(exc, "context", None)
    detail = f"{problem}, {' '.join(str(context).split())}" if context else problem
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return DataError(f"invalid YAML ({detail})", subject=where)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read and check a recipe file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError("no such recipe file") from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from None
    return parse_recipe(data, base_dir=path.resolve().parent, overrides=overrides)
