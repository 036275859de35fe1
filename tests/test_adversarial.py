"""GAIL and AIRL (algos.adversarial, algos.gail, algos.airl) on the online layer.

Fast tests run tiny budgets on real envs and real datasets written to tmp_path; the quality bars
of issue 9 (`slow`) are in test_adversarial_quality.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from support import DATASETS

import ildata
import ildata.cli
from algos.adversarial import AdversarialTrainer, TransitionBatch, relabel_with_run
from algos.airl import AIRL
from algos.base import load_algorithm, seed_everything
from algos.gail import GAIL
from algos.online.reward_nets import RunningNorm, ShapedRewardNet
from algos.policies import evaluate
from algos.recipe import build_dataclass
from ildata.episode import DataError, Episode, EpisodeBatch
from ildata.horizon import VariableHorizonError

SEALS = "seals/CartPole-v0"
RANDOM_RETURN, EXPERT_RETURN = 36.3, 500.0  # seals/CartPole-v0 (50 episodes; benchmarks/REFERENCE-imitation.md)
TINY: dict[str, Any] = {"n_envs": 2, "learner": {"algo": "ppo", "rollout_steps": 32, "batch_size": 32, "n_epochs": 1}}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


def make(cls: type[AdversarialTrainer], dataset: ildata.TrajectoryDataset, seed: int = 0, **config: Any) -> AdversarialTrainer:
    cfg = build_dataclass(cls.Config, config, "config")
    return cls(cfg, observation_space=dataset.observation_space, action_space=dataset.action_space, seed=seed)


@pytest.fixture(scope="module")
def expert() -> ildata.TrajectoryDataset:
    return ildata.load(DATASETS / "cartpole-expert")


def score(algo: AdversarialTrainer, episodes: int = 10) -> float:
    assert algo.policy is not None
    result = evaluate(algo.policy, SEALS, episodes, seed=100_000)
    return (result["mean"] - RANDOM_RETURN) / (EXPERT_RETURN - RANDOM_RETURN)


def left_pusher_dataset(path: Path, episodes: int = 10) -> ildata.TrajectoryDataset:
    """CartPole-v1 episodes of an expert that always pushes left (terminates after about 9 steps)."""
    env = gym.make("CartPole-v1")
    eps = []
    for k in range(episodes):
        obs, _ = env.reset(seed=k)
        rows, acts, rews = [obs], [], []
        while True:
            obs, reward, terminated, truncated, _ = env.step(0)
            rows.append(obs)
            acts.append(0)
            rews.append(reward)
            if terminated or truncated:
                break
        eps.append(
            Episode(obs=np.array(rows), acts=np.array(acts), rews=np.array(rews), terminated=terminated, truncated=truncated, seed=k)
        )
    return ildata.save(
        EpisodeBatch.from_episodes(eps), path, observation_space=env.observation_space, action_space=env.action_space, env_id="CartPole-v1"
    )


# ---------------------------------------------------------------------------------------------- training loop


@pytest.mark.parametrize("order", ["disc_first", "learner_first"])
def test_gail_round_logs_discriminator_and_stays_within_budget(expert, order) -> None:
    algo = make(GAIL, expert, total_timesteps=300, round_order=order, **TINY)
    rows: list[tuple[int, dict[str, float]]] = []
    metrics = algo.fit(expert, env_id=SEALS, log=lambda step, m: rows.append((step, m)))
    # 300 env steps allow 4 rollouts of 2 x 32; the vec env's own counter says how many were taken
    assert algo.budget.counter.steps == algo.budget.used == 256 == metrics["env_steps"]
    logged = [m for _, m in rows if "disc_loss" in m]
    assert len(logged) >= 3
    for m in logged:
        assert 0 <= m["disc_acc"] <= 1 and m["disc_loss"] > 0 and "env_steps" in m
    assert [step for step, _ in rows] == sorted(step for step, _ in rows)


@pytest.mark.parametrize("cls", [GAIL, AIRL])
def test_same_seed_same_metrics_whatever_ran_before(expert, cls) -> None:
    """A fit is a function of its seed: global RNG draws (numpy, torch, random) between two fits in
    one process change nothing (SB3 and the gradient penalty use the global RNGs)."""
    import random

    import torch

    def run() -> tuple[dict[str, float], np.ndarray]:
        algo = make(cls, expert, seed=5, total_timesteps=256, gradient_penalty=1.0, **TINY)
        metrics = algo.fit(expert, env_id=SEALS)
        assert algo.policy is not None
        return metrics, algo.policy(np.asarray(expert.transitions().obs)[:200])

    first, acts = run()
    np.random.rand(7), torch.rand(11), random.random()
    torch.manual_seed(123)
    second, acts_again = run()
    assert first == second and "disc_loss" in first
    np.testing.assert_array_equal(acts, acts_again)
    other = make(cls, expert, seed=6, total_timesteps=256, gradient_penalty=1.0, **TINY).fit(expert, env_id=SEALS)
    assert other["disc_loss"] != first["disc_loss"]  # the seed matters


def test_disc_first_relabels_the_rollout_with_the_updated_discriminator(expert) -> None:
    """After the discriminator trains on a round, PPO's buffer holds the new discriminator's rewards."""
    algo = make(GAIL, expert, total_timesteps=64, round_order="disc_first", normalize_reward="off", **TINY)
    seen: dict[str, np.ndarray] = {}
    end_round = algo.end_round

    def spy(rollout_buffer: Any = None, last_values: Any = None, dones: Any = None) -> None:
        batch = algo.learner_pool()
        end_round(rollout_buffer, last_values, dones)
        seen["buffer"] = rollout_buffer.rewards.copy().reshape(-1)
        seen["now"] = np.logaddexp(0, algo.raw_output(batch))

    algo.end_round = spy  # type: ignore[method-assign]
    algo.fit(expert, env_id=SEALS)
    # no truncation bootstrap in 32 steps of a 500-step env: the buffer is exactly the new reward
    np.testing.assert_allclose(seen["buffer"], seen["now"], rtol=1e-5, atol=1e-6)


def test_gail_reward_forms_and_normalisation_really_applied(expert) -> None:
    algo = make(GAIL, expert, total_timesteps=256, **TINY)
    algo.fit(expert, env_id=SEALS)
    tr = expert.transitions()[np.arange(64)]
    zeros = np.zeros(64, np.float32)
    from algos.adversarial import TransitionBatch

    batch = TransitionBatch(np.asarray(tr.obs), np.asarray(tr.acts), np.asarray(tr.next_obs), zeros, zeros, zeros)
    logit = algo.raw_output(batch)
    raw, seen = algo.learner_rewards(batch)
    np.testing.assert_allclose(raw, np.logaddexp(0, logit), rtol=1e-6)  # -log(1 - sigmoid(x)) = softplus(x)
    assert (raw >= 0).all()
    assert algo.moments.count > 0  # statistics from every round's learner rewards
    np.testing.assert_allclose(seen, (raw - algo.moments.mean) / (np.sqrt(algo.moments.var) + 1e-8), rtol=1e-5)
    logit_algo = make(GAIL, expert, total_timesteps=256, reward_form="logit", normalize_reward="off", **TINY)
    logit_algo.net.load_state_dict(algo.net.state_dict())
    np.testing.assert_allclose(logit_algo.learner_rewards(batch)[1], logit, rtol=1e-6)


def test_discriminator_inputs_are_normalised_by_the_demonstrations(expert) -> None:
    """`disc_normalize_obs: expert` (default): the normaliser holds the demonstrations' statistics all
    run, whatever states the learner drifts to; `running` keeps updating from every batch."""
    tr = expert.transitions()
    x = np.concatenate([np.asarray(tr.obs), np.eye(2)[np.asarray(tr.acts)]], axis=1)
    algo = make(GAIL, expert, total_timesteps=256, gradient_penalty=1.0, **TINY)
    algo.fit(expert, env_id=SEALS)
    norm = algo.net.norm
    assert isinstance(norm, RunningNorm)
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), np.maximum(x.var(0), 1e-4), rtol=1e-3, atol=1e-6)
    running = make(GAIL, expert, total_timesteps=256, disc_normalize_obs="running", gradient_penalty=1.0, **TINY)
    running.fit(expert, env_id=SEALS)
    assert isinstance(running.net.norm, RunningNorm)
    assert not np.allclose(running.net.norm.mean.numpy(), x.mean(0), atol=1e-3)
    # Running statistics count real inputs only: each update adds an expert and a learner batch,
    # never the gradient penalty's interpolations between them.
    updates = running.config.disc_updates_per_round * (256 // (2 * 32))  # rounds of one 2-env x 32-step rollout
    assert float(running.net.norm.count) == updates * 2 * running.config.demo_batch_size


def test_state_only_discriminator_pays_for_states_whatever_the_action(expert) -> None:
    """`disc_use_action: false`: D(s) sees the state alone (normalised by the demonstrations'
    state statistics), so two transitions that differ only in the action get the same reward."""
    algo = make(GAIL, expert, total_timesteps=256, disc_use_action=False, **TINY)
    algo.fit(expert, env_id=SEALS)
    obs = np.array(expert.transitions().obs)
    norm = algo.net.norm
    assert isinstance(norm, RunningNorm) and norm.mean.shape == (obs.shape[1],)
    np.testing.assert_allclose(norm.mean.numpy(), obs.mean(0), rtol=1e-4, atol=1e-5)
    zeros = np.zeros(64, np.float32)
    left = TransitionBatch(obs[:64], np.zeros(64, np.int64), obs[1:65], zeros, zeros, zeros)
    right = TransitionBatch(obs[:64], np.ones(64, np.int64), obs[1:65], zeros, zeros, zeros)
    np.testing.assert_array_equal(algo.learner_rewards(left)[1], algo.learner_rewards(right)[1])
    with_action = make(GAIL, expert, total_timesteps=256, **TINY)
    with_action.fit(expert, env_id=SEALS)
    assert not np.allclose(with_action.learner_rewards(left)[1], with_action.learner_rewards(right)[1])


def test_airl_shaping_zeroes_the_next_potential_on_termination_only(expert) -> None:
    import torch

    algo = make(AIRL, expert, total_timesteps=256, **TINY)
    algo.fit(expert, env_id=SEALS)
    tr = expert.transitions()[np.arange(32)]
    zeros = np.zeros(32, np.float32)
    from algos.adversarial import TransitionBatch

    alive = TransitionBatch(np.asarray(tr.obs), np.asarray(tr.acts), np.asarray(tr.next_obs), zeros, zeros, zeros)
    ended = TransitionBatch(alive.obs, alive.acts, alive.next_obs, np.ones(32, np.float32), zeros, zeros)
    state, action, next_state, _ = algo.encode(alive)
    assert isinstance(algo.net, ShapedRewardNet) and algo.reward is not None
    with torch.no_grad():
        g = algo.net.base_reward(state, action, next_state).numpy()
        h, h_next = algo.net.potential(state).numpy(), algo.net.potential(next_state).numpy()
    gamma = algo.net.config.gamma
    assert gamma == algo.learner_cfg.gamma
    np.testing.assert_allclose(algo.raw_output(alive), g + gamma * h_next - h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(algo.raw_output(ended), g - h, rtol=1e-4, atol=1e-5)
    # the saved reward is g, and the discriminator's logit subtracts the learner's log pi
    np.testing.assert_allclose(algo.reward(alive.obs, alive.acts, alive.next_obs), g, rtol=1e-5, atol=1e-6)
    log_pi = algo.log_prob(alive)
    assert log_pi is not None and (log_pi <= 0).all()
    f_minus = make(AIRL, expert, total_timesteps=256, policy_reward="f-log_pi", normalize_reward="off", **TINY)
    np.testing.assert_allclose(f_minus.policy_reward(np.ones(3), np.full(3, -0.5)), np.full(3, 1.5))


def test_trpo_learner(expert) -> None:
    algo = make(GAIL, expert, total_timesteps=128, n_envs=2, learner={"algo": "trpo", "rollout_steps": 32, "batch_size": 32})
    assert algo.fit(expert, env_id=SEALS)["env_steps"] == 128


@pytest.mark.parametrize(
    ("cls", "demos", "obs_norm"),
    [(GAIL, "pendulum-expert", False), (AIRL, "pendulum-expert", False), (AIRL, "halfcheetah-expert", True)],  # seals MuJoCo
)
def test_sac_learner(cls, demos, obs_norm, tmp_path) -> None:
    data = ildata.load(DATASETS / demos)
    sac = make(
        cls,
        data,
        total_timesteps=300,
        n_envs=1,
        steps_per_round=100,
        disc_updates_per_round=2,
        gradient_penalty=10.0,
        learner={"algo": "sac", "learning_starts": 50, "batch_size": 32, "net_arch": [16], "normalize_obs": obs_norm},
    )
    rows: list[dict[str, float]] = []
    metrics = sac.fit(data, env_id=data.env_id, log=lambda s, m: rows.append(m))
    assert metrics["env_steps"] <= 300 and sum("disc_loss" in m for m in rows) >= 2
    sac.save(tmp_path / "run")
    again = load_algorithm(tmp_path / "run")
    obs = np.asarray(data.transitions().obs)[:16]
    assert again.policy is not None and sac.policy is not None
    np.testing.assert_array_equal(again.policy(obs), sac.policy(obs))
    if cls is AIRL:  # the discriminator's log pi(a|s): SAC's own log-probability of the actions it samples
        assert sac.learner is not None
        policy = sac.learner.model.policy
        with torch.no_grad():
            scaled, expected = policy.actor.action_log_prob(torch.as_tensor(obs))
        acts = policy.unscale_action(scaled.numpy())
        batch = TransitionBatch(obs, acts, obs, np.zeros(16, np.float32), np.zeros(16, np.float32), np.zeros(16, np.float32))
        np.testing.assert_allclose(sac.log_prob(batch), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_learner_obs_norm_holds_the_demonstrations_statistics_and_is_saved_with_the_policy(expert, tmp_path) -> None:
    from algos.expert import Expert, ExpertConfig
    from algos.online.learners import FixedObsNorm

    algo = make(GAIL, expert, total_timesteps=128, n_envs=2, learner={**TINY["learner"], "normalize_obs": True})
    algo.fit(expert, env_id=SEALS)
    assert algo.learner is not None
    norms = [m for m in algo.learner.model.policy.modules() if isinstance(m, FixedObsNorm)]
    obs = np.asarray(expert.transitions().obs)
    assert norms and all(np.allclose(n.mean.numpy(), obs.mean(0), atol=1e-5) for n in norms)
    assert all(np.allclose(n.std.numpy(), obs.std(0), rtol=1e-4) for n in norms)
    algo.save(tmp_path / "run")
    again = load_algorithm(tmp_path / "run")
    assert again.policy is not None and algo.policy is not None
    np.testing.assert_array_equal(again.policy(obs[:64]), algo.policy(obs[:64]))
    # An algorithm without demonstrations cannot set it: one line naming the key, before training.
    rl = Expert(
        ExpertConfig(total_timesteps=64, learner={"algo": "ppo", "rollout_steps": 32, "normalize_obs": True}),
        observation_space=None,
        action_space=None,
    )
    with pytest.raises(DataError, match="learner.normalize_obs: this algorithm has no demonstrations"):
        rl.fit(None, env_id=SEALS)


def test_bc_warm_start_imitates_the_demonstrations_before_any_env_step(expert) -> None:
    algo = make(GAIL, expert, total_timesteps=1, bc_warm_start_steps=1000, **TINY)
    algo.fit(expert, env_id=SEALS)
    tr = expert.transitions()
    assert algo.policy is not None
    assert (algo.policy(np.asarray(tr.obs)) == np.asarray(tr.acts)).mean() > 0.9


# ---------------------------------------------------------------------------------------------- saving, reward reuse


def test_save_load_relabel_and_train_a_fresh_learner_on_the_saved_reward(expert, tmp_path) -> None:
    algo = make(AIRL, expert, total_timesteps=256, **TINY)
    algo.fit(expert, env_id=SEALS)
    algo.save(tmp_path / "airl")
    again = load_algorithm(tmp_path / "airl")
    tr = expert.transitions()
    assert again.reward is not None and algo.reward is not None
    np.testing.assert_array_equal(again.reward(tr.obs, tr.acts, tr.next_obs), algo.reward(tr.obs, tr.acts, tr.next_obs))
    out = relabel_with_run(tmp_path / "airl", expert, tmp_path / "relabelled")
    rews = out.transitions().rews
    assert rews is not None
    np.testing.assert_allclose(rews, algo.reward(tr.obs, tr.acts, tr.next_obs))
    assert ildata.load(DATASETS / "cartpole-expert").fingerprint == expert.fingerprint  # source untouched

    recipe = {
        "algo": "gail",
        "dataset": str(DATASETS / "cartpole-expert"),
        "env": SEALS,
        "config": {"reward_from": str(tmp_path / "airl"), "total_timesteps": 128, **TINY},
        "eval": {"episodes": 2},
    }
    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert ildata.cli.main(["train", str(path), "--out", str(tmp_path / "fresh")]) == 0
    fresh = load_algorithm(tmp_path / "fresh")
    assert fresh.policy is not None and fresh.reward is not None
    np.testing.assert_array_equal(fresh.reward(tr.obs, tr.acts, tr.next_obs), algo.reward(tr.obs, tr.acts, tr.next_obs))


@pytest.mark.parametrize("normalization", ["standard", "off"])
def test_a_fresh_learner_on_a_saved_reward_is_paid_it_normalised(expert, tmp_path, normalization) -> None:
    """AIRL's g is -100s on the states a fresh PPO visits first: paid raw, PPO never learned from it
    (return 50 after 200k env steps vs 500 normalised; RESULTS-adversarial.md). Here a saved g made
    1000x larger and shifted must reach the learner standardised (or exactly as saved, when off)."""
    from algos.online.reward_nets import load_reward_net

    algo = make(AIRL, expert, total_timesteps=256, **TINY)
    algo.fit(expert, env_id=SEALS)
    algo.save(tmp_path / "airl")
    net = load_reward_net(tmp_path / "airl" / "reward_net")
    last = net.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.mul_(1000.0)
        last.bias.mul_(1000.0).sub_(5000.0)
    net.save(tmp_path / "airl" / "reward_net", overwrite=True)
    fresh = make(AIRL, expert, total_timesteps=256, reward_from=str(tmp_path / "airl"), normalize_reward=normalization, **TINY)
    fresh.fit(None, env_id=SEALS)
    assert fresh.learner is not None and fresh.reward is not None
    buffer = fresh.learner.model.rollout_buffer  # type: ignore[attr-defined]  # the last rollout: what the learner was paid
    obs = buffer.observations.reshape(-1, 4)  # flattened env-major by SB3's training pass; rewards were not
    paid = buffer.rewards.swapaxes(0, 1).reshape(-1)
    raw = fresh.reward(obs, buffer.actions.reshape(-1).astype(np.int64), obs)  # g(s): s' unused
    assert raw.mean() < -1000
    if normalization == "off":
        np.testing.assert_allclose(paid, raw, rtol=1e-5)
    else:
        assert abs(paid.mean()) < 3 and paid.std() < 3  # running moments, as SB3's VecNormalize: unit scale


def test_reward_from_a_sweep_folder_takes_each_seeds_own_reward(expert, tmp_path) -> None:
    """`reward_from: SWEEP/<config>` (what `ildata sweep` writes): seed n is paid the reward that
    seed n learned, so a transfer sweep pairs every seed with its own AIRL run."""
    tr = expert.transitions()
    learned = {}
    for seed in (0, 1):
        algo = make(AIRL, expert, seed=seed, total_timesteps=128, **TINY)
        algo.fit(expert, env_id=SEALS)
        algo.save(tmp_path / "default" / f"seed-{seed}")
        assert algo.reward is not None
        learned[seed] = algo.reward(tr.obs, tr.acts, tr.next_obs)
    assert not np.allclose(learned[0], learned[1])
    for seed in (0, 1):
        fresh = make(AIRL, expert, seed=seed, total_timesteps=64, reward_from=str(tmp_path / "default"), **TINY)
        fresh.fit(None, env_id=SEALS)
        assert fresh.reward is not None
        np.testing.assert_array_equal(fresh.reward(tr.obs, tr.acts, tr.next_obs), learned[seed])


# ---------------------------------------------------------------------------------------------- bad input


def _train_error(tmp_path: Path, capsys: Any, dataset: Path, env: str, **config: Any) -> str:
    recipe = {"algo": "gail", "dataset": str(dataset), "env": env, "config": {"total_timesteps": 128, **TINY, **config}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert ildata.cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists()
    return err


def test_variable_horizons_are_refused_before_training_unless_chosen(tmp_path, capsys) -> None:
    left = left_pusher_dataset(tmp_path / "left")
    err = _train_error(tmp_path, capsys, tmp_path / "left", "CartPole-v1")
    assert "config.allow_variable_horizon" in err and "absorbing: true" in err
    # fixed-horizon demonstrations, but the env terminates episodes
    err = _train_error(tmp_path, capsys, DATASETS / "cartpole-expert", "CartPole-v1")
    assert err.count("env: CartPole-v1 terminates") == 1 and "seals/" in err
    # in the library: the same refusal, and a learner episode that terminates is refused too
    algo = make(GAIL, left, total_timesteps=128, **TINY)
    with pytest.raises(VariableHorizonError, match="allow_variable_horizon"):
        algo.fit(left, env_id="CartPole-v1")
    expert = ildata.load(DATASETS / "cartpole-expert")
    with pytest.raises(VariableHorizonError, match="a learner episode in CartPole-v1 terminated"):
        make(GAIL, expert, total_timesteps=512, **TINY).fit(expert, env_id="CartPole-v1")
    assert make(GAIL, left, total_timesteps=128, allow_variable_horizon=True, **TINY).fit(left, env_id="CartPole-v1")["env_steps"] == 128


def test_mismatched_spaces_and_bad_keys_are_one_line_errors(tmp_path, capsys) -> None:
    err = _train_error(tmp_path, capsys, DATASETS / "pendulum-expert", SEALS)
    assert "env" in err and "space" in err
    err = _train_error(tmp_path, capsys, DATASETS / "cartpole-expert", SEALS, learner={"algo": "ppo", "n_steps": 32})
    assert "learner.n_steps was renamed to learner.rollout_steps" in err
    err = _train_error(tmp_path, capsys, DATASETS / "cartpole-expert", SEALS, reward_from=str(tmp_path / "nothing"))
    assert "config.reward_from" in err and "algorithm.json" in err
