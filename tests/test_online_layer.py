"""The online layer (algos/online): seeded vec envs, reward wrapper, recorder, learners, reward nets.

Real envs and small budgets; every count is checked against the vec env's own step counter.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support import run_cli

import ildata
from algos.online.budget import BudgetExceeded, StepBudget
from algos.online.learners import Learner, PPOConfig, SACConfig, TRPOConfig, learner_config, make_learner
from algos.online.recorder import EpisodeRecorder
from algos.online.reward_nets import RewardNet, RewardNetConfig, RunningNorm, ShapedRewardNet, load_reward_net
from algos.online.reward_wrapper import RewardVecEnvWrapper
from algos.online.vec_env import PolicyRunner, base_env, make_vec_env
from algos.policies import load_policy
from algos.sampler import obs_features
from ildata.collect import rollout
from ildata.episode import DataError, Episode


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """One torch thread: on the shared 2-core machine two made SAC's updates 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lean_policy(obs: Any) -> np.ndarray:
    """Deterministic, mediocre CartPole policy: short episodes of varying length."""
    return (np.asarray(obs)[..., 2] > 0).astype(np.int64)


def record_until(venv: Any, recorder: EpisodeRecorder, seeds: set[int], policy: Any = lean_policy) -> dict[int, Episode]:
    """Step with `policy` until every seed in `seeds` has a finished episode."""
    obs = venv.reset()
    done: dict[int, Episode] = {}
    while not seeds <= set(done):
        obs, *_ = venv.step(policy(obs))
        for ep in recorder.episodes:
            done[int(ep.seed)] = ep  # type: ignore[arg-type]
    return done


# ----------------------------------------------------------------------------- vec_env


def test_seed_schedule_same_episodes_for_any_number_of_envs() -> None:
    wanted = set(range(5, 12))
    reference = {ep.seed: ep for ep in rollout(lean_policy, "CartPole-v1", 7, seed=5)}
    for num_envs in (1, 2, 3):
        venv = make_vec_env("CartPole-v1", num_envs, seed=5)
        recorder = EpisodeRecorder(venv)
        episodes = record_until(recorder, recorder, wanted)
        # Episodes start in seed order: the first K started are seeds 5 .. 5+K-1, with no gap.
        started = venv.schedule.episodes_started
        assert sorted(episodes) == list(range(5, 5 + len(episodes)))
        assert started >= len(episodes)
        for seed in wanted:  # the same episode as `ildata collect`'s for that seed
            np.testing.assert_array_equal(episodes[seed].obs, reference[seed].obs)
            np.testing.assert_array_equal(episodes[seed].acts, reference[seed].acts)
        assert venv.steps == num_envs * (venv.steps // num_envs) > 0


def test_step_counter_counts_every_env_step() -> None:
    venv = make_vec_env("seals/CartPole-v0", 3, seed=0)
    venv.reset()
    for _ in range(10):
        venv.step(np.zeros(3, dtype=np.int64))
    wrapped = RewardVecEnvWrapper(venv, lambda o, a, n, t: np.zeros(len(a)))
    assert base_env(wrapped).steps == 30


def test_policy_runner_and_budget_use_the_step_counter() -> None:
    venv = make_vec_env("CartPole-v1", 3, seed=0)
    venv.reset()
    venv.step(np.zeros(3, dtype=np.int64))  # steps before the budget starts are not charged
    recorder = EpisodeRecorder(venv)
    budget = StepBudget(recorder, 100)
    runner = PolicyRunner(recorder)
    assert runner.run(lean_policy, budget.allow(64)) == 63  # 21 vector steps of 3 envs
    assert runner.run(lean_policy, budget.allow(64)) == 36  # what is left: 37, floored to 36
    assert budget.used == venv.steps - 3 == 99 and budget.remaining == 1 and budget.allow(64) == 1
    assert recorder.num_episodes > 0  # episodes continued across the two calls
    batch = recorder.pop_batch()
    assert batch is not None and batch.num_transitions <= 99
    runner.run(lean_policy, 3)
    with pytest.raises(BudgetExceeded):
        budget.check()


# ----------------------------------------------------------------------------- reward wrapper


class RecordingReward:
    """A reward_fn that keeps every call's arguments and returns 10 * next_obs[:, 0] + terminated."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def __call__(self, obs: Any, acts: np.ndarray, next_obs: Any, terminated: np.ndarray) -> np.ndarray:
        self.calls.append((np.array(obs), np.array(acts), np.array(next_obs), np.array(terminated)))
        return 10 * np.asarray(next_obs)[:, 0] + terminated


@pytest.mark.parametrize(("env_id", "steps", "expect_terminated"), [("seals/CartPole-v0", 520, False), ("CartPole-v1", 120, True)])
def test_reward_wrapper(env_id: str, steps: int, expect_terminated: bool) -> None:
    num_envs = 2
    raw = make_vec_env(env_id, num_envs, seed=3)
    fn = RecordingReward()
    wrapped = RewardVecEnvWrapper(make_vec_env(env_id, num_envs, seed=3), fn)
    rng = np.random.default_rng(0)
    raw_obs, obs = raw.reset(), wrapped.reset()
    finished = 0
    for step in range(steps):
        action = rng.integers(0, 2, size=num_envs)
        prev = obs
        raw_obs, raw_rew, raw_done, raw_infos = raw.step(action)
        obs, rew, done, infos = wrapped.step(action)
        assert isinstance(obs, np.ndarray) and isinstance(raw_obs, np.ndarray)
        call_obs, call_acts, call_next, call_term = fn.calls[step]  # exactly one call per vector step
        assert len(fn.calls) == step + 1 and call_obs.shape[0] == num_envs
        np.testing.assert_array_equal(call_obs, prev)
        np.testing.assert_array_equal(call_acts, action)
        np.testing.assert_array_equal(obs, raw_obs)
        np.testing.assert_array_equal(done, raw_done)
        np.testing.assert_allclose(rew, 10 * call_next[:, 0] + call_term, rtol=1e-6)
        for i in range(num_envs):
            assert infos[i]["env_reward"] == raw_rew[i]
            assert infos[i]["TimeLimit.truncated"] == raw_infos[i]["TimeLimit.truncated"]
            if done[i]:  # the true final observation, not the next episode's reset observation
                finished += 1
                np.testing.assert_array_equal(call_next[i], infos[i]["terminal_observation"])
                assert not np.array_equal(call_next[i], obs[i])
                assert call_term[i] == (not infos[i]["TimeLimit.truncated"]) == expect_terminated
            else:
                np.testing.assert_array_equal(call_next[i], obs[i])
                assert not call_term[i]
    assert finished >= 2


def test_reward_wrapper_passes_timesteps_when_asked() -> None:
    seen: list[np.ndarray] = []

    def reward(obs: Any, acts: np.ndarray, next_obs: Any, terminated: np.ndarray, *, t: np.ndarray) -> np.ndarray:
        seen.append(t)
        return np.zeros(len(acts))

    wrapped = RewardVecEnvWrapper(make_vec_env("CartPole-v1", 2, seed=0), reward, timesteps=True)
    wrapped.reset()
    lengths = np.zeros(2, dtype=np.int64)
    for _ in range(60):
        _, _, done, _ = wrapped.step(np.zeros(2, dtype=np.int64))  # always left: falls in ~10 steps
        np.testing.assert_array_equal(seen[-1], lengths)
        lengths = np.where(done, 0, lengths + 1)


# ----------------------------------------------------------------------------- recorder


@pytest.mark.parametrize(("env_id", "terminated"), [("CartPole-v1", True), ("seals/CartPole-v0", False)])
def test_recorder_saves_true_episodes_as_store(tmp_path: Path, env_id: str, terminated: bool) -> None:
    venv = make_vec_env(env_id, 2, seed=7)
    recorder = EpisodeRecorder(venv, capacity=8)  # forces the buffers to grow
    wrapped = RewardVecEnvWrapper(recorder, lambda o, a, n, t: np.full(len(a), -5.0))  # learned reward != env's
    rng = np.random.default_rng(1)
    wrapped.reset()
    true_returns: dict[int, float] = {}
    running = np.zeros(2)
    finals: dict[int, np.ndarray] = {}
    while len(true_returns) < 3:
        seeds = venv.schedule.current.copy()
        _, rew, done, infos = wrapped.step(rng.integers(0, 2, size=2))
        assert (rew == -5.0).all()
        running += [info["env_reward"] for info in infos]
        for i in np.flatnonzero(done):
            true_returns[int(seeds[i])] = running[i]
            finals[int(seeds[i])] = infos[i]["terminal_observation"]
            running[i] = 0.0
    ds = recorder.save(tmp_path / "round-0")
    assert recorder.pop_batch() is None  # saving popped them
    reopened = ildata.load(tmp_path / "round-0")
    assert reopened.env_id == env_id and len(reopened) == len(true_returns)
    assert [ds[i].seed for i in range(len(ds))] == sorted(true_returns)
    np.testing.assert_allclose(np.asarray(reopened.returns), np.array([true_returns[s] for s in sorted(true_returns)]))
    for k in range(len(reopened)):
        ep = reopened[k]
        np.testing.assert_array_equal(np.asarray(ep.obs)[-1], finals[int(ep.seed)])
        assert ep.terminated == terminated and ep.truncated == (not terminated)
    result = run_cli("inspect", str(tmp_path / "round-0"))
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- learners


LEARNER_CASES = [
    ("CartPole-v1", 2, PPOConfig(rollout_steps=32, batch_size=32, n_epochs=1), 150, 128),
    ("Pendulum-v1", 1, SACConfig(learning_starts=20, batch_size=16, train_freq=2, buffer_size=1000), 61, 60),
    ("CartPole-v1", 1, TRPOConfig(rollout_steps=64, batch_size=64, n_critic_updates=1), 150, 128),
    ("Pendulum-v1", 2, PPOConfig(rollout_steps=32, batch_size=32, n_epochs=1, use_sde=True, sde_sample_freq=4), 150, 128),
]


@pytest.mark.parametrize(("env_id", "num_envs", "config", "budget", "expected"), LEARNER_CASES, ids=["ppo", "sac", "trpo", "ppo-gsde"])
def test_learner_budget_and_persistence(tmp_path: Path, env_id: str, num_envs: int, config: Any, budget: int, expected: int) -> None:
    logged: list[tuple[int, dict[str, float]]] = []
    venv = make_vec_env(env_id, num_envs, seed=0)
    learner = make_learner(config, venv, seed=0, log=lambda step, m: logged.append((step, m)))
    assert learner.plan(budget) == expected
    assert learner.learn(budget) == expected
    assert venv.steps == expected <= budget
    assert learner.learn(budget) == expected  # rounds continue the same run
    assert venv.steps == learner.num_timesteps == 2 * expected
    assert logged and all(step <= venv.steps for step, _ in logged)
    assert any(key.startswith("train/") for _, metrics in logged for key in metrics)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert learner.learn(learner.unit - 1) == 0
    assert venv.steps == 2 * expected and caught

    learner.save(tmp_path / "learner")
    loaded = Learner.load(tmp_path / "learner")
    assert type(loaded) is type(learner) and loaded.config == learner.config
    assert loaded.num_timesteps == learner.num_timesteps
    for name, tensor in learner._variables().items():  # SAC's learned entropy coefficient too
        torch.testing.assert_close(loaded._variables()[name], tensor)
    obs = np.stack([venv.observation_space.sample() for _ in range(16)])
    np.testing.assert_array_equal(loaded.policy(obs), learner.policy(obs))
    np.testing.assert_allclose(loaded.policy(obs[0]), learner.policy(obs)[0], rtol=1e-5)  # one observation too
    from_run_folder = load_policy(tmp_path / "learner", env_id=env_id)  # the `ildata eval` path
    np.testing.assert_array_equal(from_run_folder(obs), learner.policy(obs))
    expected_actions, _ = learner.model.predict(obs, deterministic=True)  # the fast path is SB3's mode (gSDE too)
    np.testing.assert_allclose(learner.policy(obs), expected_actions, rtol=1e-6, atol=1e-6)


def test_one_online_round_learns_on_the_learned_reward_and_records_true_returns(tmp_path: Path) -> None:
    """What a GAIL/AIRL round does: PPO on a reward net's reward, its rollouts recorded."""
    venv = make_vec_env("CartPole-v1", 2, seed=0)
    recorder = EpisodeRecorder(venv)
    net = RewardNet(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(recorder, net.predict)
    logged: list[dict[str, float]] = []
    learner = make_learner(PPOConfig(rollout_steps=64, batch_size=64, n_epochs=1), wrapped, log=lambda step, m: logged.append(m))
    assert learner.learn(300) == 256 == venv.steps
    buffer = learner.model.rollout_buffer  # type: ignore[attr-defined]
    assert not np.allclose(buffer.rewards, 1.0)  # PPO saw the learned reward, not CartPole's 1 per step
    batch = recorder.pop_batch()
    assert batch is not None
    returns = batch.returns()
    assert returns is not None
    np.testing.assert_array_equal(returns, batch.lengths)  # true CartPole returns: 1 per step
    monitor_means = [m["rollout/ep_rew_mean"] for m in logged if "rollout/ep_rew_mean" in m]
    # SB3 logs the Monitor (true) return over the same episodes: the recorder saw all of them.
    assert monitor_means and float(np.mean(returns)) == pytest.approx(monitor_means[-1])
    ds = ildata.save(
        batch, tmp_path / "round", observation_space=venv.observation_space, action_space=venv.action_space, env_id="CartPole-v1"
    )
    assert len(ds) == batch.num_episodes


def test_learner_config_from_recipe_mapping() -> None:
    config = learner_config({"algo": "sac", "learning_rate": 1e-3, "net_arch": [64, 64], "ent_coef": 0.1})
    assert isinstance(config, SACConfig) and config.net_arch == [64, 64] and config.ent_coef == 0.1
    assert learner_config({}) == PPOConfig()
    with pytest.raises(DataError, match="n_step"):
        learner_config({"algo": "ppo", "n_step": 5})
    with pytest.raises(DataError, match="learner.algo"):
        learner_config({"algo": "a2c"})
    # SB3's n_steps is rollout_steps here (env steps and gradient steps are different words)
    assert learner_config({"algo": "trpo", "rollout_steps": 64}) == TRPOConfig(rollout_steps=64)
    with pytest.raises(DataError, match="^learner.n_steps was renamed to learner.rollout_steps$"):
        learner_config({"algo": "ppo", "n_steps": 64})
    with pytest.raises(DataError, match="rollout_steps: must be at least 1"):
        learner_config({"rollout_steps": 0})


# ----------------------------------------------------------------------------- reward nets


def test_running_norm_is_applied_updated_in_training_and_frozen_in_eval() -> None:
    norm = RunningNorm(3)
    x = torch.tensor([[10.0, -4.0, 0.5], [14.0, -2.0, 0.5], [12.0, -6.0, 0.5]])
    norm.train()
    norm(x[:2])
    norm(x[2:])  # two batches merge into the statistics of all three rows
    torch.testing.assert_close(norm.mean, x.mean(0))
    torch.testing.assert_close(norm.var, x.var(0, unbiased=False))
    norm.eval()
    before = norm.mean.clone()
    out = norm(x + 100)
    torch.testing.assert_close(norm.mean, before)
    torch.testing.assert_close(out, (x + 100 - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + norm.eps))


def test_reward_net_normalisation_changes_forward_and_is_saved(tmp_path: Path) -> None:
    venv = make_vec_env("CartPole-v1", 1)
    net = RewardNet(venv.observation_space, venv.action_space, RewardNetConfig(use_next_state=True))
    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(64, 4)) * 5 + 3).astype(np.float32)
    acts = rng.integers(0, 2, size=64)
    term = np.zeros(64, dtype=bool)
    encoded = net.encode(obs, acts, obs, term)
    np.testing.assert_array_equal(encoded[1].numpy(), obs_features(acts, venv.action_space))  # one-hot
    np.testing.assert_array_equal(encoded[0].numpy(), obs_features(obs, venv.observation_space))
    untrained = net.predict(obs, acts, obs, term)
    net.train()
    net(*net.encode(obs, acts, obs, term))  # a training-mode forward pass updates the normaliser
    assert isinstance(net.norm, RunningNorm) and float(net.norm.count) == 64
    trained = net.predict(obs, acts, obs, term)
    assert not np.allclose(untrained, trained)  # same weights, different normalisation
    assert isinstance(net.norm, RunningNorm) and float(net.norm.count) == 64  # predict (eval) left it frozen
    net.eval()
    with torch.no_grad():  # numpy fast path == torch forward
        np.testing.assert_allclose(trained, net(*net.encode(obs, acts, obs, term)).numpy(), rtol=1e-4, atol=1e-5)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    net(*net.encode(obs, acts, obs, term)).pow(2).mean().backward()
    optimiser.step()  # in place: the numpy copy must see it
    stepped = net.predict(obs, acts, obs, term)
    assert not np.allclose(stepped, trained)
    with torch.no_grad():
        np.testing.assert_allclose(stepped, net(*net.encode(obs, acts, obs, term)).numpy(), rtol=1e-4, atol=1e-5)
    trained = stepped
    net.save(tmp_path / "net")
    loaded = load_reward_net(tmp_path / "net")
    assert isinstance(loaded.norm, RunningNorm) and isinstance(net.norm, RunningNorm)
    torch.testing.assert_close(loaded.norm.mean, net.norm.mean)
    np.testing.assert_allclose(loaded.predict(obs, acts, obs, term), trained, rtol=1e-6)


def test_shaped_reward_net_zeroes_next_potential_only_on_termination(tmp_path: Path) -> None:
    venv = make_vec_env("Pendulum-v1", 1)
    net = ShapedRewardNet(venv.observation_space, venv.action_space, RewardNetConfig(use_action=True, shaped=True, gamma=0.9))
    rng = np.random.default_rng(0)
    obs, next_obs = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    acts = rng.uniform(-2, 2, size=(8, 1)).astype(np.float32)
    net.train()
    net(*net.encode(obs, acts, next_obs, np.zeros(8)))
    alive = net.predict(obs, acts, next_obs, np.zeros(8, dtype=bool))
    ended = net.predict(obs, acts, next_obs, np.ones(8, dtype=bool))
    net.eval()
    with torch.no_grad():
        h_next = net.potential(net.encode(obs, acts, next_obs, np.zeros(8))[2]).numpy()
    np.testing.assert_allclose(alive - ended, 0.9 * h_next, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(alive, net(*net.encode(obs, acts, next_obs, np.zeros(8))).numpy(), rtol=1e-4, atol=1e-5)
    net.save(tmp_path / "airl")
    np.testing.assert_allclose(load_reward_net(tmp_path / "airl").predict(obs, acts, next_obs, np.zeros(8)), alive, rtol=1e-6)


def test_gsde_on_discrete_actions_is_a_config_error_not_a_crash() -> None:
    with pytest.raises(DataError, match=r"learner.use_sde: gSDE needs continuous \(Box\) actions, the env has Discrete\(2\)"):
        make_learner(PPOConfig(rollout_steps=32, use_sde=True), make_vec_env("CartPole-v1", 1, seed=0))
