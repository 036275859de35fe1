"""The one interface every algorithm in `algos/` implements, its registry, and its persistence.

A recipe names an algorithm (`algo: bc`) and gives its `config:` mapping; `ALGORITHMS[name]`
is the class and `ALGORITHMS[name].Config` the dataclass that mapping must fit key for key
(d3rlpy's style: one typed config per algorithm, so a recipe maps onto it one-to-one).

Persistence has one path. `Algorithm.save(run_dir)` writes `algorithm.json` (what identifies
the algorithm: name, config, spaces, seed, env, library versions) and then calls the
subclass's `_save_state(run_dir)`, which writes only what was learned. `load_algorithm(run_dir)`
reads `algorithm.json`, rebuilds the algorithm from its config exactly as a recipe would, and
calls `_load_state(run_dir)`. A new algorithm implements `fit`, `_save_state` and `_load_state`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import gymnasium as gym
import numpy as np

# quiet_import and seed_everything live in algos.runtime (the bottom of algos); re-exported here
# because algorithms, tests and benchmarks import them from algos.base.
from algos.runtime import quiet_import as quiet_import
from algos.runtime import seed_everything as seed_everything
from algos.typed_config import build_dataclass
from ildata.episode import DataError
from ildata.registry import Registry

if TYPE_CHECKING:
    from algos.policies import Policy
    from ildata.store import TrajectoryDataset

# Modules that define algorithms; importing one registers its classes through `register`.
# Imported lazily (on the first lookup) so that `ildata --help` never pays for torch/sklearn.
ALGORITHM_MODULES: tuple[str, ...] = (
    "algos.bc",
    "algos.expert",
    "algos.density",
    "algos.tabular_mdp",
    "algos.mce_irl",
    "algos.dagger",
    "algos.gail",
    "algos.airl",
    "algos.preference_comparisons",
)

ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm", ALGORITHM_MODULES)

ALGORITHM_FILE = "algorithm.json"
# Bumped when algorithm.json changes incompatibly.
ALGORITHM_FORMAT = 1

# Libraries whose versions a run folder and algorithm.json record.
VERSIONED = (
    "ildata",
    "numpy",
    "torch",
    "gymnasium",
    "pyarrow",
    "polars",
    "stable-baselines3",
    "d3rlpy",
    "scikit-learn",
    "scipy",
    "seals",
)

LogFn = Callable[[int, dict[str, float]], None]
A = TypeVar("A", bound="Algorithm")


class RewardFn(Protocol):
    """A learned reward over a batch of transitions; `t` (timesteps) for time-dependent rewards."""

    def __call__(self, obs: Any, acts: Any = None, next_obs: Any = None, *, t: Any = None) -> np.ndarray: ...


def register(name: str) -> Callable[[type[A]], type[A]]:
    """Class decorator: make an algorithm available to recipes as `algo: <name>`."""

    def decorate(cls: type[A]) -> type[A]:
        cls.name = name
        ALGORITHMS.register(name)(cls)
        return cls

    return decorate


def library_versions() -> dict[str, str | None]:
    """Python and the versions of the libraries a result depends on (None: not installed)."""
    import platform
    import sys

    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class Algorithm:
    """Base class: `Config`, `fit(dataset)`, `policy`/`reward`, `save(run_dir)`; `load_algorithm` rebuilds.

    `policy` is an `algos.policies.Policy` (a callable obs -> action) or None;
    `reward` is a `RewardFn` over batches of transitions, or None.
    """

    name: ClassVar[str] = ""
    # The dataclass a recipe's `config:` mapping is checked against (subclasses override it).
    Config: ClassVar[type] = object
    # False for algorithms that learn from the environment only (the RL expert trainer).
    needs_dataset: ClassVar[bool] = True

    def __init__(self, config: Any, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.seed = seed
        # The env trained in or evaluated against; set by `fit`, saved in algorithm.json.
        self.env_id: str | None = None
        self.policy: Policy | None = None
        self.reward: RewardFn | None = None

    # True for algorithms that save every finished round under `checkpoint_dir` and continue from
    # the last one when `fit` finds it there (`ildata train RECIPE --resume RUN`).
    resumable: ClassVar[bool] = False
    checkpoint_dir: Path | None = None

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Train; call `log(step, metrics)` along the way; return the final metrics."""
        raise NotImplementedError

    def check_inputs(self, dataset: TrajectoryDataset | None, env_id: str | None) -> None:
        """Load and check what the config names (experts, extra data) before any training starts;
        a DataError names the recipe key. Most algorithms need nothing beyond their constructor."""

    def reference_returns(self, env_id: str, episodes: int, seed: int) -> dict[str, float | None]:
        """Expert and random mean returns to score against when the recipe has no dataset."""
        return {"expert_return": None, "random_return": None}

    # ------------------------------------------------------------------------- persistence

    def save(self, run_dir: str | Path) -> None:
        """Write `algorithm.json`, then the learned state (`_save_state`) under `run_dir`."""
        from ildata.spaces import space_to_dict

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": ALGORITHM_FORMAT,
            "algorithm": self.name,
            "config": dataclasses.asdict(self.config),
            "observation_space": None if self.observation_space is None else space_to_dict(self.observation_space),
            "action_space": None if self.action_space is None else space_to_dict(self.action_space),
            "seed": self.seed,
            "env_id": self.env_id,
            "versions": library_versions(),
        }
        (run_dir / ALGORITHM_FILE).write_text(json.dumps(meta, indent=2))
        self._save_state(run_dir)

    def _save_state(self, run_dir: Path) -> None:
        """Write what `fit` learned (weights, tables, the policy under `run_dir/policy/`)."""
        raise NotImplementedError

    def _load_state(self, run_dir: Path) -> None:
        """Read back what `_save_state` wrote into this freshly constructed algorithm."""
        raise NotImplementedError

    @classmethod
    def load(cls: type[A], run_dir: str | Path) -> A:
        """`load_algorithm`, checking that the run folder holds this algorithm."""
        algo = load_algorithm(run_dir)
        if not isinstance(algo, cls):
            raise DataError(f"holds algorithm {algo.name!r}, not {cls.name!r}", subject=run_dir)
        return algo


def read_algorithm_meta(run_dir: Path) -> dict[str, Any]:
    """`algorithm.json`, checked enough to name the problem in one line."""
    path = Path(run_dir) / ALGORITHM_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no {ALGORITHM_FILE} (not a run folder saved by algos)", subject=run_dir) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON ({exc})", subject=path) from None
    if not isinstance(meta, dict) or meta.get("format") != ALGORITHM_FORMAT:
        raise DataError(f"unsupported format {meta.get('format') if isinstance(meta, dict) else meta!r}", subject=path)
    missing = [k for k in ("algorithm", "config", "observation_space", "action_space", "seed", "env_id") if k not in meta]
    if missing:
        raise DataError(f"missing {', '.join(missing)}", subject=path)
    return meta


def load_algorithm(run_dir: str | Path) -> Algorithm:
    """Rebuild any saved algorithm: its class from the registry, its config checked as a recipe's."""
    from ildata.spaces import space_from_dict

    run_dir = Path(run_dir)
    meta = read_algorithm_meta(run_dir)
    try:
        cls = ALGORITHMS.get(meta["algorithm"])
    except DataError as exc:
        raise DataError(str(exc), subject=run_dir / ALGORITHM_FILE) from None
    try:
        config = build_dataclass(cls.Config, meta["config"], "config")
    except DataError as exc:
        raise DataError(str(exc), subject=run_dir / ALGORITHM_FILE) from None
    spaces = [None if meta[k] is None else space_from_dict(meta[k]) for k in ("observation_space", "action_space")]
    algo = cls(config, observation_space=spaces[0], action_space=spaces[1], seed=int(meta["seed"]))
    algo.env_id = meta["env_id"]
    algo._load_state(run_dir)
    return algo
