"""Density reward: ranks expert above random CartPole trajectories (permutation test), per-timestep
models, standardisation, relabelling into a new dataset, PPO fed by the learned reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import permutation_test

import ildata
from algos.base import seed_everything
from algos.density import DensityConfig, DensityReward, relabel
from algos.online.learners import PPOConfig
from algos.online.vec_env import base_env
from algos.policies import evaluate, load_policy
from algos.recipe import load_recipe
from algos.sampler import run_positions
from ildata.collect import rollout
from ildata.episode import DataError, Episode, EpisodeBatch

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "datasets" / "cartpole-expert"


@pytest.fixture(scope="module")
def expert() -> ildata.TrajectoryDataset:
    return ildata.load(CARTPOLE)


@pytest.fixture(scope="module")
def random_episodes(expert) -> ildata.TrajectoryDataset:
    """Random-policy CartPole trajectories, seeds far from the expert's."""
    policy = load_policy("random", env_id="CartPole-v1", seed=7)
    return rollout(policy, "CartPole-v1", 12, seed=50_000, num_envs=4)


def _fit(expert, **config) -> tuple[DensityReward, ildata.TrajectoryDataset]:
    train, held_out = expert.split(0.6, seed=0)
    algo = DensityReward(
        DensityConfig(max_samples=3000, **config),
        observation_space=expert.observation_space,
        action_space=expert.action_space,
        seed=0,
    )
    algo.fit(train)
    return algo, held_out


def _mean_rewards(algo: DensityReward, episodes) -> np.ndarray:
    """Each trajectory's mean learned reward (one vectorised call per trajectory)."""
    out = []
    for ep in episodes:
        t = np.arange(len(ep))
        out.append(algo.reward(ep.obs[:-1], ep.acts, ep.obs[1:], t=t).mean())
    return np.array(out)


@pytest.mark.parametrize(
    "config",
    [
        {"features": "state"},
        {"features": "state_action", "bandwidth": 0.3},
        {"features": "state_state", "stationary": False, "bandwidth": 1.0},
    ],
    ids=["state", "state_action", "state_state-per_timestep"],
)
def test_density_reward_ranks_expert_above_random(expert, random_episodes, config) -> None:
    algo, held_out = _fit(expert, **config)
    expert_scores = _mean_rewards(algo, held_out)
    random_scores = _mean_rewards(algo, random_episodes)
    result = permutation_test(
        (expert_scores, random_scores),
        lambda a, b: np.mean(a) - np.mean(b),
        alternative="greater",
        n_resamples=4999,
        random_state=0,
    )
    assert result.pvalue < 0.05, (expert_scores, random_scores)


def test_per_timestep_models_and_standardisation(expert, tmp_path: Path) -> None:
    algo, held_out = _fit(expert, features="state", stationary=False)
    assert len(algo.kdes) == int(expert.lengths.max())  # one KDE per timestep
    z = algo.scaler.transform(algo.samples)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-9)
    ep = held_out[0]
    # A timestep past the longest demonstration uses the last model; no timestep is an error.
    last = algo.reward(ep.obs[:3], t=np.array([499, 499, 499]))
    np.testing.assert_allclose(algo.reward(ep.obs[:3], t=np.array([10_000] * 3)), last)
    assert not np.allclose(algo.reward(ep.obs[:3], t=np.array([0, 0, 0])), last)
    with pytest.raises(DataError, match="timestep"):
        algo.reward(ep.obs[:3])

    # Standardised inputs: rescaling one observation dimension by 1000 shifts every log density
    # by the same constant (the Jacobian), so the reward ranks states identically.
    scale = np.array([1000, 1, 1, 1], dtype=np.float32)
    scaled = [Episode(obs=e.obs * scale, acts=e.acts, rews=e.rews, truncated=e.truncated) for e in expert]
    ds_scaled = ildata.save(EpisodeBatch.from_episodes(scaled), tmp_path / "scaled", env_id="CartPole-v1")
    base, _ = _fit(expert, features="state")
    wide, _ = _fit(ds_scaled, features="state")
    x = held_out[1].obs[:50]
    diff = wide.reward(x * scale) - base.reward(x)
    np.testing.assert_allclose(diff, diff[0], atol=1e-6)


def test_relabel_writes_a_new_dataset(expert, tmp_path: Path) -> None:
    algo, _ = _fit(expert, features="state_state", stationary=False, bandwidth=1.0)
    fingerprint = expert.fingerprint
    out = relabel(expert, algo.reward, tmp_path / "relabelled", reward_name="density")
    assert len(out) == len(expert) and out.num_transitions == expert.num_transitions
    tr = expert.transitions()
    expected = algo.reward(tr.obs, tr.acts, tr.next_obs, t=run_positions(expert.lengths))
    np.testing.assert_allclose(out.transitions().rews, expected)
    np.testing.assert_array_equal(out.transitions().obs, tr.obs)
    assert out.info["relabelled"] == {"source_fingerprint": fingerprint, "reward": "density"}
    assert ildata.load(CARTPOLE).fingerprint == fingerprint  # the source is untouched
    with pytest.raises(DataError, match="new dataset"):
        relabel(expert, algo.reward, CARTPOLE, overwrite=True)


def test_ppo_is_fed_the_density_reward(expert, tmp_path: Path) -> None:
    """PPO's rollout buffer holds the learned reward, while Monitor records the env's return."""
    algo = DensityReward(
        DensityConfig(
            features="state",
            max_samples=2000,
            # normalize_reward off, so that the buffer holds the raw learned reward
            total_timesteps=600,  # two 256-step rollouts fit; a third would not
            learner=PPOConfig(rollout_steps=256, n_epochs=2, normalize_reward=False),
            reward_margin=None,
        ),
        observation_space=expert.observation_space,
        action_space=expert.action_space,
        seed=0,
    )
    logged: list[dict[str, float]] = []
    metrics = algo.fit(expert, log=lambda step, m: logged.append(m))
    buffer = algo.ppo.rollout_buffer
    obs = buffer.observations.reshape(-1, 4)
    np.testing.assert_allclose(buffer.rewards.reshape(-1), algo.reward(obs), rtol=1e-5, atol=1e-5)
    # Random-ish early CartPole episodes last ~20 steps; their true return is what Monitor saw.
    assert 5 < metrics["ppo_env_return_mean"] < 200
    assert metrics["ppo_learned_reward_mean"] == pytest.approx(float(buffer.rewards.mean()))
    assert len(logged) == 3  # the density fit, then one entry per PPO rollout
    # Budget: total_timesteps bounds the env steps the vec env's own counter saw.
    assert metrics["env_steps"] == base_env(algo.ppo.get_env()).steps == 512 <= algo.config.total_timesteps
    assert [m["env_steps"] for m in logged[1:]] == [256, 512]

    algo.save(tmp_path)
    again = DensityReward.load(tmp_path)
    np.testing.assert_allclose(again.reward(obs[:20]), algo.reward(obs[:20]))
    policy = load_policy(tmp_path)
    np.testing.assert_array_equal(policy(obs[:20]), algo.policy(obs[:20]))


@pytest.mark.slow
def test_ppo_on_the_recipe_reward_beats_a_random_policy(expert) -> None:
    """The shipped recipe (fewer PPO steps) imitates: in seals/CartPole-v0 (500-step episodes,
    true reward 1 while the pole is up) its policy's true returns beat a random policy's."""
    recipe = load_recipe(ROOT / "recipes" / "density-cartpole.yaml", ["config.total_timesteps=60000"])
    seed_everything(recipe.seed, recipe.threads)  # as `ildata train` does: same numerics in any test order
    algo = DensityReward(recipe.config, observation_space=expert.observation_space, action_space=expert.action_space, seed=recipe.seed)
    algo.fit(expert, env_id=recipe.env)
    trained = np.array(evaluate(algo.policy, recipe.env, 10, seed=100_000)["returns"])
    random = np.array(evaluate(load_policy("random", env_id=recipe.env, seed=7), recipe.env, 10, seed=100_000)["returns"])
    result = permutation_test(
        (trained, random), lambda a, b: np.mean(a) - np.mean(b), alternative="greater", n_resamples=4999, random_state=0
    )
    assert result.pvalue < 0.01 and trained.mean() > 2 * random.mean(), (trained, random)


def test_ppo_reward_is_the_density_at_each_timestep(expert) -> None:
    """The layer's reward wrapper hands the per-timestep model each transition's step index."""
    from algos.online.reward_wrapper import RewardVecEnvWrapper
    from algos.online.vec_env import make_vec_env

    algo, _ = _fit(expert, features="state_action", stationary=False)
    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", 1, seed=3), lambda o, a, n, term, t: algo.reward(o, a, n, t=t), timesteps=True)
    obs = venv.reset()
    for t in range(3):
        next_obs, reward, _, info = venv.step(np.array([1]))
        expected = algo.reward(obs, np.array([1]), next_obs, t=np.array([t]))[0]
        assert reward[0] == pytest.approx(expected, rel=1e-6) and info[0]["env_reward"] == 1.0
        obs = next_obs


def test_bad_config_names_the_key() -> None:
    with pytest.raises(DataError, match="features"):
        DensityConfig(features="action")
    with pytest.raises(DataError, match="bandwidth"):
        DensityConfig(bandwidth=0.0)
    from algos.recipe import build_dataclass

    with pytest.raises(DataError, match=r"^config.ppo was renamed to config.learner$"):
        build_dataclass(DensityConfig, {"ppo": {"total_timesteps": 5}}, "config")
    with pytest.raises(DataError, match=r"^config.learner.n_steps was renamed to config.learner.rollout_steps$"):
        build_dataclass(DensityConfig, {"learner": {"n_steps": 5}}, "config")
    with pytest.raises(DataError, match=r"^config.ppo_timesteps was renamed to config.total_timesteps$"):
        build_dataclass(DensityConfig, {"ppo_timesteps": 5}, "config")
