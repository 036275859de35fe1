"""BC: sampler, objective, heads, Dict observations, save/load, and the quality bars on shipped data."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ildata
from algos.base import ALGORITHMS, load_algorithm, seed_everything
from algos.bc import BC, BCConfig
from algos.policies import evaluate, load_policy, normalized_score, p_value_not_above, reference_returns
from algos.sampler import TransitionSampler, obs_features

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "datasets" / "cartpole-expert"
PENDULUM = ROOT / "datasets" / "pendulum-expert"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


def make_dict_dataset(tmp_path: Path) -> ildata.TrajectoryDataset:
    """Small real-looking dataset with Dict observations (Box + Discrete leaves), Discrete actions."""
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(4):
        n = 30
        pos = rng.normal(size=(n + 1, 3)).astype(np.float32)
        mode = rng.integers(0, 3, size=n + 1)
        # The expert's action is a function of the observation, so BC can learn it exactly.
        acts = (pos[:-1, 0] + 2 * (mode[:-1] == 2) > 0.5).astype(np.int64)
        episodes.append(ildata.Episode(obs={"pos": pos, "mode": mode}, acts=acts, rews=np.ones(n)))
    obs_space = gym.spaces.Dict({"mode": gym.spaces.Discrete(3), "pos": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
    return ildata.save(episodes, tmp_path / "dict", observation_space=obs_space, action_space=gym.spaces.Discrete(2))


def test_registry_has_bc_and_rl() -> None:
    assert ALGORITHMS["bc"] is BC and ALGORITHMS["bc"].Config is BCConfig
    assert "rl" in ALGORITHMS


def test_sampler_gathers_exact_rows_and_covers_each_epoch() -> None:
    ds = ildata.load(CARTPOLE)
    t = ds.transitions()
    sampler = TransitionSampler(t, ds.observation_space, ds.action_space, batch_size=256, seed=3)
    seen = []
    for _ in range(len(t) // 256):
        idx = sampler.indices()
        batch = sampler.gather(idx)
        np.testing.assert_array_equal(batch.obs.numpy(), t.obs[idx])
        np.testing.assert_array_equal(batch.acts.numpy(), t.acts[idx])
        assert batch.obs.dtype == torch.float32 and batch.acts.dtype == torch.int64
        seen.append(idx)
    seen = np.concatenate(seen)
    assert len(np.unique(seen)) == len(seen)  # no row twice within an epoch
    again = TransitionSampler(t, ds.observation_space, ds.action_space, batch_size=256, seed=3)
    np.testing.assert_array_equal(again.indices(), seen[:256])  # seeded


def test_dict_features_concatenate_leaves_and_one_hot_discrete(tmp_path: Path) -> None:
    ds = make_dict_dataset(tmp_path)
    t = ds.transitions()
    features = obs_features(t.obs, ds.observation_space)
    assert features.shape == (120, 3 + 3)
    np.testing.assert_array_equal(features[:, :3], np.eye(3, dtype=np.float32)[t.obs["mode"]])  # key order: mode, pos
    np.testing.assert_array_equal(features[:, 3:], t.obs["pos"])


def test_loss_is_neglogp_minus_entropy_plus_l2_as_in_imitation() -> None:
    ds = ildata.load(CARTPOLE)
    cfg = BCConfig(n_gradient_steps=20, log_interval=20, ent_weight=0.3, l2_weight=0.01)
    algo = BC(cfg, observation_space=ds.observation_space, action_space=ds.action_space, seed=0)
    m = algo.fit(ds)
    # l2_norm is logged before the step, the same tensors as the loss: the identity is exact per step,
    # so it holds for the averages too.
    assert m["loss"] == pytest.approx(m["neglogp"] - 0.3 * m["entropy"] + 0.01 * m["l2_norm"], rel=1e-5)
    assert 0 < m["prob_true_act"] < 1 and m["entropy"] > 0


def test_dict_observations_train_and_round_trip(tmp_path: Path) -> None:
    ds = make_dict_dataset(tmp_path)
    algo = BC(
        BCConfig(n_gradient_steps=1000, batch_size=32, learning_rate=3e-3, log_interval=1000, hidden_sizes=[32]),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        seed=0,
    )
    metrics = algo.fit(ds)
    assert metrics["prob_true_act"] > 0.9
    algo.save(tmp_path / "run")
    policy = load_policy(tmp_path / "run")
    obs = ds.transitions().obs
    np.testing.assert_array_equal(policy(obs), algo.policy(obs))
    single = policy({"mode": 2, "pos": np.array([-1.0, 0.0, 0.0], np.float32)})
    assert single.shape == () and single == 1
    assert policy({"mode": 0, "pos": np.array([-1.0, 0.0, 0.0], np.float32)}) == 0


@pytest.mark.parametrize("head", ["gaussian", "deterministic"])
def test_continuous_heads_fit_and_reload(tmp_path: Path, head: str) -> None:
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1, 1, size=(201, 3)).astype(np.float32)
    acts = np.clip(obs[:-1, :2] * 1.5, -1, 1).astype(np.float32)
    ds = ildata.save(
        [ildata.Episode(obs=obs, acts=acts, rews=np.zeros(200))], tmp_path / "c", action_space=gym.spaces.Box(-1, 1, (2,), np.float32)
    )
    algo = BC(
        BCConfig(head=head, n_gradient_steps=1500, batch_size=64, learning_rate=3e-3, log_interval=500, ent_weight=0.0),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        seed=0,
    )
    first = algo.fit(ds, log=None)
    pred = algo.policy(obs[:-1])
    assert pred.shape == (200, 2) and pred.dtype == np.float32
    assert np.abs(pred - acts).mean() < 0.1
    if head == "deterministic":  # std fixed at 1: neglogp is 0.5 * squared error + const
        assert first["entropy"] == pytest.approx(2 * 0.5 * np.log(2 * np.pi * np.e), rel=1e-5)
    algo.save(tmp_path / head)
    np.testing.assert_array_equal(load_policy(tmp_path / head)(obs[:-1]), pred)


def test_head_must_fit_action_space() -> None:
    ds = ildata.load(CARTPOLE)
    with pytest.raises(ildata.DataError, match="head"):
        BC(BCConfig(head="gaussian"), observation_space=ds.observation_space, action_space=ds.action_space)


@pytest.mark.slow
def test_bc_cartpole_reaches_95_percent_of_expert() -> None:
    ds = ildata.load(CARTPOLE)
    expert = reference_returns(ds)["expert_return"]
    algo = BC(
        BCConfig(n_gradient_steps=1500, log_interval=1500), observation_space=ds.observation_space, action_space=ds.action_space, seed=0
    )
    algo.fit(ds)
    result = evaluate(algo.policy, "CartPole-v1", 10, seed=200_000)
    assert p_value_not_above(result["returns"], 0.95 * expert) < 0.05, result


@pytest.mark.slow
def test_bc_pendulum_reaches_0_9_normalised_score() -> None:
    from algos.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "bc-pendulum.yaml")
    ds = ildata.load(recipe.dataset_path())
    refs = reference_returns(ds)
    algo = BC(recipe.config, observation_space=ds.observation_space, action_space=ds.action_space, seed=0)
    algo.fit(ds)
    result = evaluate(algo.policy, "Pendulum-v1", 30, seed=200_000)
    # The bar in return units: score >= 0.9  <=>  return >= random + 0.9 (expert - random).
    bar = refs["random_return"] + 0.9 * (refs["expert_return"] - refs["random_return"])
    assert p_value_not_above(result["returns"], bar) < 0.05, (result, refs)
    assert normalized_score(result["mean"], refs["random_return"], refs["expert_return"]) >= 0.9


def test_d3rlpy_backend_trains_saves_and_reloads(tmp_path: Path) -> None:
    ds = ildata.load(CARTPOLE)
    algo = BC(
        BCConfig(backend="d3rlpy", n_gradient_steps=300, log_interval=100, batch_size=64),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        seed=0,
    )
    rows = []
    algo.fit(ds, log=lambda step, m: rows.append((step, m)))
    assert [step for step, _ in rows] == [100, 200, 300] and "loss" in rows[-1][1]
    obs = ds.transitions().obs[:50]
    actions = algo.policy(obs)
    assert set(np.unique(actions)) <= {0, 1}
    algo.save(tmp_path / "run")
    np.testing.assert_array_equal(load_policy(tmp_path / "run")(obs), actions)
    again = load_algorithm(tmp_path / "run")  # the whole algorithm, d3rlpy model included
    assert again.config == algo.config
    np.testing.assert_array_equal(again.policy(obs), actions)


def test_validation_holds_out_whole_episodes_and_logs_val_loss(tmp_path: Path) -> None:
    ds = ildata.load(CARTPOLE)
    cfg = BCConfig(n_gradient_steps=20, log_interval=10, validation_fraction=0.2)
    algo = BC(cfg, observation_space=ds.observation_space, action_space=ds.action_space, seed=3)
    rows: list[tuple[int, dict[str, float]]] = []
    algo.fit(ds, log=lambda step, m: rows.append((step, m)))
    assert [step for step, _ in rows] == [10, 20] and all("val_loss" in m and 0 < m["val_prob_true_act"] < 1 for _, m in rows)
    train, held_out = ds.split(0.8, seed=3)
    assert algo.validation is not None and len(algo.validation.acts) == held_out.num_transitions
    # The held-out loss is the training objective on exactly those episodes' transitions.
    tr = held_out.transitions()
    with torch.no_grad():
        dist = algo.net.distribution(torch.from_numpy(obs_features(tr.obs, ds.observation_space)))
    acts = torch.from_numpy(np.asarray(tr.acts).astype(np.int64))
    expected = float(-dist.log_prob(acts).mean() - cfg.ent_weight * dist.entropy().mean())
    assert algo.validation_metrics()["val_loss"] == pytest.approx(expected, rel=1e-5)
    one = ds.select([0, 1])
    with pytest.raises(ildata.DataError, match="validation_fraction: 0.2 of 2 episodes leaves 2 for training and 0"):
        BC(cfg, observation_space=ds.observation_space, action_space=ds.action_space).fit(one)
    with pytest.raises(ildata.DataError, match=r"validation_fraction: must be in \[0, 1\)"):
        BCConfig(validation_fraction=1.0)


@pytest.mark.parametrize("head", ["categorical", "gaussian", "deterministic"])
def test_closed_form_loss_terms_match_torch_distributions(head: str) -> None:
    from algos.bc import PolicyNet, batch_terms

    torch.manual_seed(0)
    net = PolicyNet(5, [8], "tanh", head, 3)
    with torch.no_grad():
        net.log_std.copy_(torch.tensor([0.3, -0.2, 0.1]) if head == "gaussian" else torch.zeros(3))
    obs = torch.randn(16, 5)
    acts = torch.randint(0, 3, (16,)) if head == "categorical" else torch.randn(16, 3)
    log_prob, entropy = batch_terms(net, obs, acts)
    dist = net.distribution(obs)
    assert torch.allclose(log_prob, dist.log_prob(acts), atol=1e-5)
    assert torch.allclose(entropy, dist.entropy().mean(), atol=1e-5)
