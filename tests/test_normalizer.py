"""One normaliser for the online algorithms (`algos.online.normalizer`): the torch `RunningNorm`
in its running, frozen and fixed modes (the learner's input layer is its fixed mode), and the
scalar `RewardMoments` on SB3's `RunningMeanStd`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from algos.online.learners import FixedObsNorm, Learner, PPOConfig, make_learner
from algos.online.normalizer import RewardMoments, RunningNorm, obs_statistics
from algos.online.vec_env import make_vec_env


def test_reward_moments_count_exactly_and_merge_batches_like_one() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, n).astype(np.float32) for n in (5, 1, 17, 0, 9)]
    moments = RewardMoments()
    assert moments.count == 0 and moments.apply(parts[0], "standard") is parts[0]  # nothing seen: as is
    for part in parts:
        moments.update(part)  # the empty batch is skipped
    everything = np.concatenate(parts).astype(np.float64)
    assert moments.count == 32
    np.testing.assert_allclose([moments.mean, moments.var], [everything.mean(), everything.var()], rtol=1e-6)
    x = np.array([1.0, 5.0])
    std = np.sqrt(moments.var) + 1e-8
    np.testing.assert_array_equal(moments.apply(x, "standard"), (x - moments.mean) / std)
    np.testing.assert_array_equal(moments.apply(x, "scale"), x / std)
    np.testing.assert_array_equal(moments.apply(x, "off"), x)
    again = RewardMoments(*moments.to_list())  # what a run folder saves and loads
    assert again.to_list() == moments.to_list()


def test_running_norm_modes_running_frozen_fixed() -> None:
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    norm = RunningNorm(2)
    norm.train()
    norm(x)
    assert float(norm.count) == 3
    norm.frozen = True  # frozen in training mode too
    norm(x * 100)
    assert float(norm.count) == 3
    norm.reset()
    assert float(norm.count) == 0 and not norm.frozen and torch.equal(norm.mean, torch.zeros(2))
    mean, std = np.array([2.0, -1.0]), np.array([0.1, 3.0])
    fixed = RunningNorm(2, eps=0.0)
    fixed.set_statistics(mean, std)
    fixed.train()
    out = fixed(x)  # fixed: frozen, and divides by exactly std
    expected = (x - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)
    assert torch.equal(out, expected) and float(fixed.count) == 1
    torch.testing.assert_close(fixed.std, torch.tensor(std, dtype=torch.float32))


def test_learner_input_layer_is_the_fixed_norm_and_old_saves_still_load(tmp_path: Path) -> None:
    venv = make_vec_env("CartPole-v1", 1)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32) * [1, 2, 3, 4]
    stats = obs_statistics(obs)
    learner = make_learner(PPOConfig(rollout_steps=16, batch_size=16, normalize_obs=True), venv, obs_stats=stats)
    layers = [m for m in learner.model.policy.modules() if isinstance(m, FixedObsNorm)]
    assert layers and all(isinstance(layer.norm, RunningNorm) and layer.norm.frozen for layer in layers)
    np.testing.assert_allclose(layers[0].std.numpy(), stats[1], rtol=1e-6)
    learner.save(tmp_path / "new")
    # A learner saved when the layer held `mean`/`std` buffers of its own loads into the shared norm.
    saved = torch.load(tmp_path / "new" / "parameters.pt", weights_only=True)
    policy = saved["state_dicts"]["policy"]
    for key in [k for k in policy if k.endswith(".norm.mean")]:
        prefix = key[: -len("norm.mean")]
        policy[prefix + "mean"] = policy.pop(key)
        policy[prefix + "std"] = torch.sqrt(policy.pop(prefix + "norm.var"))
        del policy[prefix + "norm.count"]
    (tmp_path / "old").mkdir()
    for name in ("learner.json", "policy.json"):
        (tmp_path / "old" / name).write_text((tmp_path / "new" / name).read_text().replace('"normalize_obs"', '"obs_norm"'))
    torch.save(saved, tmp_path / "old" / "parameters.pt")
    old = Learner.load(tmp_path / "old")
    assert old.config.normalize_obs
    np.testing.assert_array_equal(old.policy(obs), learner.policy(obs))
