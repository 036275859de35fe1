"""The plain RL algorithm (`algo: rl`) trains a fresh learner on a reward another run learned
(`config.reward_from`), paid normalised: the transfer check of a learned reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from support import DATASETS

import ildata
from algos.airl import AIRL
from algos.base import load_algorithm, seed_everything
from algos.expert import Expert
from algos.recipe import build_dataclass
from ildata.cli import main

SEALS = "seals/CartPole-v0"
PPO: dict[str, Any] = {"algo": "ppo", "rollout_steps": 32, "batch_size": 32, "n_epochs": 1}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


@pytest.fixture(scope="module")
def airl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    expert = ildata.load(DATASETS / "cartpole-expert")
    config = build_dataclass(AIRL.Config, {"total_timesteps": 128, "n_envs": 2, "learner": PPO}, "config")
    algo = AIRL(config, observation_space=expert.observation_space, action_space=expert.action_space, seed=0)
    algo.fit(expert, env_id=SEALS)
    out = tmp_path_factory.mktemp("airl") / "run"
    algo.save(out)
    return out


def _recipe(tmp_path: Path, **config: Any) -> Path:
    # the dataset gives the spaces the reward was learned for (seals/CartPole-v0's own bounds differ)
    recipe = {
        "algo": "rl",
        "dataset": str(DATASETS / "cartpole-expert"),
        "env": SEALS,
        "config": {"total_timesteps": 128, "n_envs": 2, "learner": PPO, **config},
        "eval": {"episodes": 1},
    }
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_rl_trains_on_a_saved_reward_and_keeps_it(airl_run: Path, tmp_path: Path) -> None:
    assert main(["train", str(_recipe(tmp_path, reward_from=str(airl_run))), "--out", str(tmp_path / "fresh"), "--quiet"]) == 0
    fresh, learned = load_algorithm(tmp_path / "fresh"), load_algorithm(airl_run)
    assert isinstance(fresh, Expert) and fresh.policy is not None and fresh.reward is not None and learned.reward is not None
    tr = ildata.load(DATASETS / "cartpole-expert").transitions()
    np.testing.assert_array_equal(fresh.reward(tr.obs, tr.acts, tr.next_obs), learned.reward(tr.obs, tr.acts, tr.next_obs))
    assert fresh.policy(np.asarray(tr.obs)[:8]).shape == (8,)


@pytest.mark.parametrize("mode", ["off", "standard"])
def test_the_learner_is_paid_the_saved_reward_normalised_or_raw(airl_run: Path, mode: str) -> None:
    config = build_dataclass(
        Expert.Config,
        {"total_timesteps": 128, "n_envs": 2, "learner": PPO, "reward_from": str(airl_run), "normalize_reward": mode},
        "config",
    )
    expert = ildata.load(DATASETS / "cartpole-expert")
    algo = Expert(config, observation_space=expert.observation_space, action_space=expert.action_space, seed=0)
    algo.fit(None, env_id=SEALS)
    assert algo.learner is not None and algo.reward is not None
    buffer = algo.learner.model.rollout_buffer  # type: ignore[attr-defined]  # the last rollout: what the learner was paid
    obs = buffer.observations.reshape(-1, 4)
    paid = buffer.rewards.swapaxes(0, 1).reshape(-1)
    raw = algo.reward(obs, buffer.actions.reshape(-1).astype(np.int64), obs)  # AIRL's g(s): s' unused
    if mode == "off":
        np.testing.assert_allclose(paid, raw, rtol=1e-5)
    else:
        assert not np.allclose(paid, raw) and abs(paid.mean()) < 3


def test_a_missing_reward_run_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(_recipe(tmp_path, reward_from=str(tmp_path / "nothing"))), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "config.reward_from" in err and not (tmp_path / "run").exists()
