"""The one interface every algorithm in `algos/` implements, and the registry recipes use.

A recipe names an algorithm (`algo: bc`) and gives its `config:` mapping; `ALGORITHMS[name]`
is the class and `ALGORITHMS[name].Config` the dataclass that mapping must fit key for key
(d3rlpy's style: one typed config per algorithm, so a recipe maps onto it one-to-one).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

# Modules that define algorithms; importing one registers its classes through `register`.
# Imported lazily (see `algorithms()`) so that `ildata --help` never pays for torch/sklearn.
ALGORITHM_MODULES: tuple[str, ...] = (
    "algos.bc",
    "algos.expert",
    "algos.density",
    "algos.mce_irl",
)

# Recipe name -> algorithm class; filled by `register` when the modules above are imported.
ALGORITHMS: dict[str, type[Algorithm]] = {}

LogFn = Callable[[int, dict[str, float]], None]


def register(name: str) -> Callable[[type[Algorithm]], type[Algorithm]]:
    """Class decorator: make an algorithm available to recipes as `algo: <name>`."""

    def decorate(cls: type[Algorithm]) -> type[Algorithm]:
        cls.name = name
        ALGORITHMS[name] = cls
        return cls

    return decorate


def algorithms() -> dict[str, type[Algorithm]]:
    """Import every algorithm module (once) and return the filled registry."""
    for module in ALGORITHM_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency, not an absent optional module
                raise
    return ALGORITHMS


def quiet_import(module: str) -> Any:
    """Import a module whose import prints legacy `gym`'s deprecation banner to stderr.

    stable-baselines3 and d3rlpy import the old `gym` package when it is installed (d3rlpy
    pins it); its banner says nothing about ildata and would land in every CLI run.
    """
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(module)


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, numpy and torch, and pin torch's thread count.

    The thread count is set explicitly because on a small shared machine torch's default
    (one thread per core) made a BC step 10-40x slower (FIELD-NOTES, "torch on 2 cores").
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)


class Algorithm:
    """Base class: `Config`, `fit(dataset)`, `policy`/`reward`, `save(run_dir)`/`load(run_dir)`.

    `policy` is an `algos.policies.Policy` (a callable obs -> action) or None;
    `reward` is a callable `(obs, acts, next_obs) -> rewards` over batches, or None.
    """

    name: ClassVar[str] = ""
    # The dataclass a recipe's `config:` mapping is checked against (subclasses override it).
    Config: ClassVar[type] = object
    # False for algorithms that learn from the environment only (the RL expert trainer).
    needs_dataset: ClassVar[bool] = True

    def __init__(self, config: Any, *, observation_space: Any, action_space: Any, seed: int = 0) -> None:
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.seed = seed
        self.policy: Any = None
        self.reward: Callable[..., np.ndarray] | None = None

    def fit(self, dataset: Any, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Train; call `log(step, metrics)` along the way; return the final metrics."""
        raise NotImplementedError

    def save(self, run_dir: Path) -> None:
        """Write what was learned under `run_dir` (the policy under `run_dir/policy/`)."""
        raise NotImplementedError

    @classmethod
    def load(cls, run_dir: Path) -> Algorithm:
        """Rebuild a trained algorithm from what `save` wrote."""
        raise NotImplementedError
