"""The shipped experts (datasets/experts/NAME, named `expert:NAME`): they load by name without a
path, act well enough for DAgger and normalised scores, and the CLI takes the name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import DATASETS, run_cli

import ildata
from algos.base import load_algorithm
from algos.expert import Expert, ExpertConfig
from algos.online.vec_env import base_env
from algos.policies import EXPERTS_DIR, evaluate, load_policy, policy_env_id, shipped_experts
from algos.recipe import build_dataclass
from ildata.cli import main
from ildata.envs import env_spaces
from ildata.episode import DataError

# name -> (env, bar the mean return over 5 seeded episodes must beat)
BARS: dict[str, list[tuple[str, float]]] = {
    "cartpole-ppo": [("seals/CartPole-v0", 499.9), ("CartPole-v1", 499.9)],
    "pendulum-sac": [("Pendulum-v1", -250.0)],
    "mountaincar-dqn": [("seals/MountainCar-v0", -130.0)],
}


def test_experts_folder_is_the_repository_one() -> None:
    assert EXPERTS_DIR == DATASETS / "experts"
    assert set(BARS) <= set(shipped_experts())


@pytest.mark.parametrize("name", sorted(BARS))
def test_shipped_expert_loads_by_name_and_scores(name: str) -> None:
    card = json.loads((EXPERTS_DIR / name / "expert.json").read_text())
    assert policy_env_id(f"expert:{name}") == card["env_id"]
    assert card["random"]["mean"] < card["expert"]["mean"] and card["expert"]["episodes"] == 50
    for env_id, bar in BARS[name]:
        policy = load_policy(f"expert:{name}", env_id=env_id)
        result = evaluate(policy, env_id, 5, seed=0, num_envs=5)
        assert result["mean"] > bar, (name, env_id, result["returns"])


def test_shipped_experts_are_small() -> None:
    for name in shipped_experts():  # the largest: mountaincar-dqn, rl-zoo's 256x256 Q-net + target + Adam state (1.1 MB)
        size = sum(p.stat().st_size for p in (EXPERTS_DIR / name).iterdir())
        assert size < 1_500_000, name


def test_unknown_expert_name_lists_the_shipped_ones() -> None:
    with pytest.raises(DataError, match="no such shipped expert.*cartpole-ppo"):
        load_policy("expert:no-such", env_id="CartPole-v1")


def test_cli_eval_and_collect_take_an_expert_name(tmp_path: Path, capsys) -> None:
    # eval: the env defaults to the one the expert was trained in
    result = run_cli("eval", "expert:cartpole-ppo", "--episodes", "2", "--seed", "0", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["env_id"] == "seals/CartPole-v0" and report["mean"] == 500.0

    dst = tmp_path / "demos"
    args = ["collect", "--policy", "expert:pendulum-sac", "--env", "Pendulum-v1", "--episodes", "2"]
    assert main([*args, "--random-episodes", "2", "--quiet", str(dst)]) == 0
    ds = ildata.load(dst)
    collection = ds.info["collection"]
    assert collection["policy"] == "expert:pendulum-sac" and collection["expert_mean_return"] > -250
    assert collection["policy_sha256"] == ildata.store.sha256_path(EXPERTS_DIR / "pendulum-sac")

    capsys.readouterr()
    assert main(["eval", "expert:nope", "--env", "CartPole-v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such shipped expert" in err[0] and "pendulum-sac" in err[0]


@pytest.mark.parametrize(
    ("env_id", "learner", "n_envs", "budget", "taken"),
    [
        ("CartPole-v1", {"algo": "trpo", "rollout_steps": 32, "batch_size": 32, "n_critic_updates": 1}, 2, 150, 128),
        ("CartPole-v1", {"algo": "dqn", "learning_starts": 16, "train_freq": 4, "batch_size": 8}, 3, 100, 96),
    ],
    ids=["trpo", "dqn"],
)
def test_expert_trainer_budget_and_saved_policy(tmp_path: Path, env_id: str, learner: dict, n_envs: int, budget: int, taken: int) -> None:
    """`total_timesteps` bounds the env steps the step counter saw; rows log `env_steps`; the SB3 zip
    the run saves loads back (without unpickling) as the algorithm that wrote it."""
    config = build_dataclass(ExpertConfig, {"total_timesteps": budget, "n_envs": n_envs, "log_interval": 1, "learner": learner}, "config")
    algo = Expert(config, observation_space=None, action_space=None, seed=0)
    rows: list[dict[str, float]] = []
    metrics = algo.fit(None, env_id=env_id, log=lambda step, m: rows.append(m))
    assert base_env(algo.model.get_env()).steps == metrics["env_steps"] == taken <= budget
    assert rows and all(r["env_steps"] <= budget for r in rows)
    algo.save(tmp_path / "run")
    again = load_algorithm(tmp_path / "run")
    assert isinstance(again, Expert) and type(again.model) is type(algo.model)  # TRPO is not mistaken for A2C
    obs = np.stack([env_spaces(env_id)[0].sample() for _ in range(8)])
    assert algo.policy is not None
    np.testing.assert_array_equal(load_policy(tmp_path / "run", env_id=env_id)(obs), algo.policy(obs))


def test_expert_config_renamed_keys() -> None:
    with pytest.raises(DataError, match="^config.algorithm was renamed to config.learner$"):
        build_dataclass(ExpertConfig, {"algorithm": "SAC"}, "config")
    with pytest.raises(DataError, match="n_steps was renamed to learner.rollout_steps"):
        build_dataclass(ExpertConfig, {"learner": {"algo": "ppo", "n_steps": 8}}, "config")


@pytest.mark.parametrize("name", sorted(BARS))
def test_direct_deterministic_actions_equal_sb3_predict(name: str) -> None:
    """SB3Policy computes deterministic actions from the network's modules (no distribution object
    per call); they must be exactly what SB3's own `predict` returns."""
    policy = load_policy(f"expert:{name}")
    assert policy._direct is not None  # the fast path is taken for every shipped expert
    space = policy.observation_space
    rng = np.random.default_rng(0)
    obs = rng.uniform(np.maximum(space.low, -3), np.minimum(space.high, 3), size=(64, *space.shape)).astype(space.dtype)
    expected, _ = policy.model.predict(obs, deterministic=True)
    np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-6, atol=1e-6)
    assert policy.act(obs).dtype == np.asarray(expected).dtype
