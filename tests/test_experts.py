"""The shipped experts (datasets/experts/NAME, named `expert:NAME`): they load by name without a
path, act well enough for DAgger and normalised scores, and the CLI takes the name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import DATASETS, run_cli

import ildata
from algos.policies import EXPERTS_DIR, evaluate, load_policy, policy_env_id, shipped_experts
from ildata.cli import main
from ildata.episode import DataError

# name -> (env, bar the mean return over 5 seeded episodes must beat)
BARS: dict[str, list[tuple[str, float]]] = {
    "cartpole-ppo": [("seals/CartPole-v0", 499.9), ("CartPole-v1", 499.9)],
    "pendulum-sac": [("Pendulum-v1", -250.0)],
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
    for name in shipped_experts():
        size = sum(p.stat().st_size for p in (EXPERTS_DIR / name).iterdir())
        assert size < 1_000_000, name


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
