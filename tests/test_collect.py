"""`ildata collect` and the rollout engine, on real gymnasium / seals envs and the real PPO expert."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from support import EXPERT_ZIP

import ildata
from ildata.cli import main
from ildata.collect import RandomPolicy, collect, rollout
from ildata.envs import env_spaces

EXPERT = EXPERT_ZIP


class SplitObs(gym.ObservationWrapper):
    """CartPole with a Dict observation {"cart": (x, v), "pole": (theta, omega)}."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = gym.spaces.Dict(
            {
                "cart": gym.spaces.Box(low[:2], high[:2], dtype=np.float32),
                "pole": gym.spaces.Box(low[2:], high[2:], dtype=np.float32),
            }
        )

    def observation(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"cart": obs[:2], "pole": obs[2:]}


DICT_ENV = "ildata-test/DictCartPole-v0"
if DICT_ENV not in gym.registry:
    gym.register(DICT_ENV, entry_point=lambda: SplitObs(gym.make("CartPole-v1").unwrapped), max_episode_steps=60)


def replay(env_id: str, episode: ildata.Episode) -> None:
    """Reset with the recorded seed and replay the actions: every observation, reward and flag must match."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=episode.seed)
    flat = ildata.episode.flatten_obs
    for key, value in flat(obs).items():
        np.testing.assert_array_equal(value, flat(episode.obs)[key][0])
    for t, action in enumerate(episode.acts):
        obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in flat(obs).items():
            np.testing.assert_array_equal(value, flat(episode.obs)[key][t + 1])
        assert reward == episode.rews[t]
    assert (terminated, truncated and not terminated) == (episode.terminated, episode.truncated)


def test_rollout_records_seeds_final_obs_and_flags_across_vector_autoresets() -> None:
    # 3 envs, 7 episodes: every env autoresets at least once, which is where off-by-one
    # errors of gymnasium 1.0's next-step autoreset would show.
    _, action_space = env_spaces("CartPole-v1")
    episodes = rollout(RandomPolicy(action_space, seed=1), "CartPole-v1", 7, seed=10, num_envs=3)
    assert [ep.seed for ep in episodes] == list(range(10, 17))
    for ep in episodes:
        assert ep.obs.shape == (len(ep) + 1, 4)
        assert ep.terminated and not ep.truncated  # random CartPole falls well before 500 steps
        replay("CartPole-v1", ep)


def test_truncation_is_recorded_as_truncation() -> None:
    _, action_space = env_spaces("Pendulum-v1")
    episodes = rollout(RandomPolicy(action_space, seed=0), "Pendulum-v1", 3, seed=0, num_envs=2)
    assert [len(ep) for ep in episodes] == [200, 200, 200]
    assert all(ep.truncated and not ep.terminated for ep in episodes)
    replay("Pendulum-v1", episodes[2])


def test_dict_observations_roll_out_and_save() -> None:
    _, action_space = env_spaces(DICT_ENV)
    episodes = rollout(RandomPolicy(action_space, seed=0), DICT_ENV, 4, seed=0, num_envs=2)
    for ep in episodes:
        assert set(ep.obs) == {"cart", "pole"} and ep.obs["pole"].shape == (len(ep) + 1, 2)
        replay(DICT_ENV, ep)


def test_deterministic_policy_gives_same_episodes_for_any_number_of_envs(tmp_path: Path) -> None:
    from algos.policies import load_policy

    expert = load_policy(EXPERT, env_id="seals/CartPole-v0")
    one = rollout(expert, "seals/CartPole-v0", 3, seed=5, num_envs=1)
    three = rollout(expert, "seals/CartPole-v0", 3, seed=5, num_envs=3)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)
    # seals' CartPole is fixed-horizon: 500 steps, ended by the time limit, never terminated.
    assert all(len(ep) == 500 and ep.truncated and not ep.terminated for ep in one)
    assert all(np.sum(ep.rews) == 500 for ep in one)


def test_collect_writes_store_with_provenance_and_reference_returns(tmp_path: Path) -> None:
    from algos.policies import load_policy

    dst = tmp_path / "cartpole"
    rc = main(
        [
            "collect",
            "--policy",
            str(EXPERT),
            "--env",
            "CartPole-v1",
            "--episodes",
            "4",
            "--num-envs",
            "2",
            "--random-episodes",
            "5",
            "--quiet",
            str(dst),
        ]
    )
    assert rc == 0
    ds = ildata.load(dst)
    assert len(ds) == 4 and ds.env_id == "CartPole-v1"
    assert ds.episodes["seed"].to_list() == [0, 1, 2, 3]
    c = ds.info["collection"]
    assert c["expert_mean_return"] == 500.0
    assert c["random_episodes"] == 5 and 8 < c["random_mean_return"] < 100
    assert c["policy_sha256"] == ildata.store.sha256_file(EXPERT)
    # The stored episodes are exactly what the expert does from those seeds.
    replay("CartPole-v1", ds[3])
    expert = load_policy(EXPERT, env_id="CartPole-v1")
    np.testing.assert_array_equal(expert(ds[1].obs[:-1]), ds[1].acts)
    # Collecting again refuses to overwrite, and the existing store is untouched.
    assert main(["collect", "--policy", "random", "--env", "CartPole-v1", "--episodes", "1", "--quiet", str(dst)]) == 2
    assert ildata.load(dst).fingerprint == ds.fingerprint


def test_collect_python_api_random_policy(tmp_path: Path) -> None:
    _, action_space = env_spaces("Pendulum-v1")
    ds = collect(RandomPolicy(action_space, seed=0), "Pendulum-v1", 2, str(tmp_path / "p"), random_episodes=2)
    t = ds.transitions()
    assert t.acts.shape == (400, 1) and t.dones.sum() == 2 and not t.terminated.any()
    collection = json.loads((tmp_path / "p" / "meta" / "info.json").read_text())["collection"]
    assert collection["episodes"] == 2
    # The recorded std is the population std `ildata inspect` shows (ildata.stats.rollout_stats).
    from ildata.stats import rollout_stats

    returns = np.asarray(ds.returns)
    assert returns[0] != returns[1]
    assert collection["expert_std_return"] == pytest.approx(float(np.std(returns)), rel=1e-12)
    assert collection["expert_std_return"] == pytest.approx(rollout_stats(ds.lengths, returns)["return_std"], rel=1e-12)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--policy", "random", "--env", "NoSuchEnv-v0", "--episodes", "2"], "NoSuchEnv-v0"),
        (["--policy", "missing.zip", "--env", "CartPole-v1", "--episodes", "2"], "missing.zip"),
        (["--policy", str(EXPERT), "--env", "Pendulum-v1", "--episodes", "2"], "shape"),
        (["--policy", "random", "--env", "CartPole-v1", "--episodes", "0"], "episodes"),
    ],
)
def test_collect_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    dst = tmp_path / "out"
    assert main(["collect", *args, "--quiet", str(dst)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ildata: error:") and needle in err[0]
    assert not dst.exists()
