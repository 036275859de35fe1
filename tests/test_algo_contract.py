"""The contract every registered algorithm keeps (d3rlpy's style: one shared tester).

Parametrized over `algos.base.ALGORITHMS`, so an algorithm is tested here as soon as it
registers: fit on a tiny budget, `save`, `load_algorithm`, and the rebuilt algorithm acts and
rewards exactly as the trained one. Budgets shrink through the shared config words
(`n_gradient_steps`, `total_timesteps`, ...), so a new algorithm that uses them needs no entry
in CASES unless it needs another env or dataset.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import DATASETS

import ildata
from algos.base import ALGORITHM_FILE, ALGORITHMS, Algorithm, load_algorithm, seed_everything
from algos.recipe import build_dataclass
from ildata.episode import DataError
from ildata.spaces import space_to_dict

# Budget keys, wherever they sit in a config (nested learner configs too), capped at these values.
BUDGET: dict[str, int] = {
    "n_gradient_steps": 30,
    "total_timesteps": 256,
    "rollout_steps": 64,
    "n_epochs": 1,
    "log_interval": 10,
    "max_samples": 300,
}
# Names retired for one name per meaning (see algos.bc.BCConfig.RENAMED and the others).
RETIRED = {
    "n_steps",
    "lr",
    "hidden",
    "standardise",
    "num_envs",
    "max_iter",
    "ppo_n_steps",
    "ppo_timesteps",
    "gen_steps_per_round",
    "reward_normalization",
    "obs_norm",
    "disc_input_norm",
}


@dataclass
class Case:
    """What one algorithm needs: the env it runs in, its data, settings beyond the budget caps."""

    env_id: str | None = "CartPole-v1"
    dataset: str | None = "cartpole-expert"
    episodes: int = 3  # the first episodes of the dataset: a tiny one
    config: dict[str, Any] = field(default_factory=dict)
    min_env_steps: int = 0  # online algorithms: fit must really step the env this much


CASES: dict[str, Case] = {
    "rl": Case(env_id="Pendulum-v1", dataset=None, config={"learner": {"algo": "sac", "learning_starts": 64, "net_arch": [16]}}),
    "density": Case(config={"total_timesteps": 128, "learner": {"batch_size": 32}}),
    "tabular_optimal": Case(env_id="ildata/CliffWorld-v0", dataset=None),
    "mce_irl": Case(env_id="ildata/CliffWorld-v0", dataset="gridworld-expert", episodes=20),
    # fixed-horizon env (adversarial imitation refuses CartPole-v1's terminations); 2 envs x 64
    # steps a rollout, so the 256-step budget is 2 whole rounds
    "gail": Case(env_id="seals/CartPole-v0", config={"n_envs": 2}, min_env_steps=256),
    "airl": Case(env_id="seals/CartPole-v0", config={"n_envs": 2}, min_env_steps=256),
}


def _capped(value: Any) -> Any:
    """The config mapping with every budget key capped (recursively)."""
    if isinstance(value, dict):
        return {
            k: min(v, BUDGET[k]) if k in BUDGET and isinstance(v, int) and not isinstance(v, bool) else _capped(v) for k, v in value.items()
        }
    return value


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny_config(cls: type[Algorithm], case: Case) -> Any:
    """The algorithm's default config, budget-capped, through the recipe parser (all checks apply)."""
    defaults = dataclasses.asdict(cls.Config())
    return build_dataclass(cls.Config, _merged(_capped(defaults), case.config), "config")


def tiny_dataset(case: Case, tmp_path: Path) -> ildata.TrajectoryDataset | None:
    if case.dataset is None:
        return None
    full = ildata.load(DATASETS / case.dataset)
    return ildata.save(full.select(np.arange(case.episodes)).to_batch(), tmp_path / "data", env_id=full.env_id)


def probe_batch(algo: Algorithm, dataset: ildata.TrajectoryDataset | None) -> tuple[Any, Any, Any]:
    """(obs, acts, next_obs) to compare actions and rewards on: the data's, or sampled from the spaces."""
    if dataset is not None:
        tr = dataset.transitions()
        rows = np.arange(min(64, len(tr)))
        pick = lambda o: ildata.episode.map_obs(o, lambda leaf: np.asarray(leaf)[rows])  # noqa: E731
        return pick(tr.obs), np.asarray(tr.acts)[rows], pick(tr.next_obs)
    assert algo.observation_space is not None and algo.action_space is not None
    algo.observation_space.seed(0)
    algo.action_space.seed(0)
    obs = np.stack([algo.observation_space.sample() for _ in range(32)])
    acts = np.stack([algo.action_space.sample() for _ in range(32)])
    return obs, acts, obs[::-1].copy()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_fit_save_load_algorithm_gives_identical_actions_and_rewards(name: str, tmp_path: Path) -> None:
    cls = ALGORITHMS[name]
    case = CASES.get(name, Case())
    dataset = tiny_dataset(case, tmp_path)
    if dataset is not None:
        spaces = (dataset.observation_space, dataset.action_space)
    else:
        assert case.env_id is not None, f"{name}: a case needs an env or a dataset"
        spaces = ildata.envs.env_spaces(case.env_id)
    algo = cls(tiny_config(cls, case), observation_space=spaces[0], action_space=spaces[1], seed=3)
    rows: list[int] = []
    metrics = algo.fit(dataset, env_id=case.env_id, log=lambda step, m: rows.append(step))
    assert isinstance(metrics, dict) and rows, f"{name}: fit logged nothing"
    assert algo.policy is not None or algo.reward is not None, f"{name}: fit learned neither a policy nor a reward"
    assert metrics.get("env_steps", 0) >= case.min_env_steps, f"{name}: fit took {metrics.get('env_steps')} env steps"

    run_dir = tmp_path / "run"
    algo.save(run_dir)
    meta = json.loads((run_dir / ALGORITHM_FILE).read_text())
    assert meta["algorithm"] == name and meta["seed"] == 3 and meta["env_id"] == algo.env_id
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(algo.config)))
    assert meta["versions"]["numpy"] == np.__version__

    again = load_algorithm(run_dir)
    assert type(again) is cls and again.config == algo.config and again.seed == algo.seed and again.env_id == algo.env_id
    for mine, theirs in ((algo.observation_space, again.observation_space), (algo.action_space, again.action_space)):
        assert theirs is not None and mine is not None and space_to_dict(theirs) == space_to_dict(mine)
    assert isinstance(cls.load(run_dir), cls)

    obs, acts, next_obs = probe_batch(algo, dataset)
    if algo.policy is not None:
        assert again.policy is not None, f"{name}: the loaded algorithm lost its policy"
        np.testing.assert_array_equal(again.policy(obs), algo.policy(obs))
    if algo.reward is not None:
        assert again.reward is not None, f"{name}: the loaded algorithm lost its reward"
        np.testing.assert_array_equal(again.reward(obs, acts, next_obs), algo.reward(obs, acts, next_obs))


def dotted_fields(cls: type) -> set[str]:
    """Every field of a config dataclass, nested configs' as `outer.inner`."""
    hints = typing.get_type_hints(cls)
    out = set()
    for f in dataclasses.fields(cls):
        out.add(f.name)
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out |= {f"{f.name}.{inner}" for inner in dotted_fields(hint)}
    return out


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_config_uses_the_shared_names(name: str) -> None:
    """One name per meaning: no config field (nested ones included) uses a retired name, and
    every rename points at a field that exists."""
    config_cls = ALGORITHMS[name].Config
    fields = dotted_fields(config_cls)
    leaves = {f.rsplit(".", 1)[-1] for f in fields}
    assert not leaves & RETIRED, f"{name}: {sorted(leaves & RETIRED)}"
    for old, new in getattr(config_cls, "RENAMED", {}).items():
        assert old not in fields and new in fields, (old, new)


def test_load_algorithm_refuses_what_it_cannot_rebuild(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no algorithm.json"):
        load_algorithm(tmp_path)
    meta = {"format": 1, "algorithm": "nope", "config": {}, "observation_space": None, "action_space": None, "seed": 0, "env_id": None}
    (tmp_path / ALGORITHM_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="unknown algorithm 'nope'"):
        load_algorithm(tmp_path)
    meta.update(algorithm="bc", config={"n_steps": 5})
    (tmp_path / ALGORITHM_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="config.n_steps was renamed to config.n_gradient_steps"):
        load_algorithm(tmp_path)


def test_load_checks_the_class(tmp_path: Path) -> None:
    from algos.tabular_mdp import TabularOptimal, TabularOptimalConfig

    algo = TabularOptimal(TabularOptimalConfig(), seed=0)
    algo.fit(None, env_id="ildata/CliffWorld-v0")
    algo.save(tmp_path)
    assert isinstance(TabularOptimal.load(tmp_path), TabularOptimal)
    with pytest.raises(DataError, match="holds algorithm 'tabular_optimal', not 'bc'"):
        ALGORITHMS["bc"].load(tmp_path)
