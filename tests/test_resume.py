"""Exact resume: a run interrupted right after a checkpoint and continued with `--resume` ends with the
same metrics.csv (row for row), the same policy weights and, for DAgger, the same labelled store as a
run that was never interrupted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from support import DATASETS, interrupted_then_resumed

import ildata
from algos.base import seed_everything

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


def _recipe(tmp_path: Path, base: str, config: Mapping[str, object], **top: object) -> Path:
    data = yaml.safe_load((ROOT / "recipes" / base).read_text())
    data["config"] = {**data["config"], **config}
    data.update(top)
    if isinstance(data.get("dataset"), str) and not Path(data["dataset"]).is_absolute():
        data["dataset"] = str((ROOT / "recipes" / data["dataset"]).resolve())
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _assert_same_run(whole: Path, resumed: Path) -> None:
    assert (resumed / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    a = torch.load(resumed / "policy" / "weights.pt", weights_only=True)
    b = torch.load(whole / "policy" / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bc_resumes_exactly_mid_row_with_normalized_obs_validation_and_rollouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checkpoints every 15 steps, rows every 10: the checkpoint at 30 holds a half-summed row.
    config = {
        "n_gradient_steps": 60,
        "log_interval": 10,
        "checkpoint_every": 15,
        "normalize_obs": True,
        "validation_fraction": 0.25,
        "l2_weight": 1e-4,
        "rollout_interval": 20,
        "rollout_episodes": 1,
    }
    recipe = _recipe(tmp_path, "bc-cartpole.yaml", config, eval={"episodes": 1})
    whole, resumed = interrupted_then_resumed(tmp_path, recipe, stop_at=40, monkeypatch=monkeypatch)
    _assert_same_run(whole, resumed)


def _dagger_recipe(tmp_path: Path, **config: object) -> Path:
    base = {
        "expert": "expert:cartpole-ppo",
        "rounds": 4,
        "total_timesteps": 10_000,
        "beta_schedule": "constant",
        "bc": {"n_gradient_steps": 30, "log_interval": 30},
    }
    return _recipe(tmp_path, "dagger-cartpole.yaml", {**base, **config}, env="CartPole-v1", eval={"episodes": 1})


def _assert_same_store(whole: Path, resumed: Path) -> None:
    a, b = ildata.load(whole / "rollouts"), ildata.load(resumed / "rollouts")
    assert a.verify() == [] and b.verify() == []
    ta, tb = a.transitions(), b.transitions()
    assert np.array_equal(np.asarray(ta.obs), np.asarray(tb.obs)) and np.array_equal(np.asarray(ta.acts), np.asarray(tb.acts))
    assert [ep.seed for ep in a] == [ep.seed for ep in b]


def test_dagger_resumes_exactly_with_episodes_running_across_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The learner executes 70% of the actions: episodes end at any step, so the checkpoint after
    # round 2 has every sub-env in the middle of an episode that round 3 finishes.
    recipe = _dagger_recipe(tmp_path, steps_per_round=150, n_envs=3, beta_value=0.3)
    whole, resumed = interrupted_then_resumed(tmp_path, recipe, stop_at=300, monkeypatch=monkeypatch)
    _assert_same_run(whole, resumed)
    _assert_same_store(whole, resumed)


def test_dagger_resumes_exactly_through_rounds_that_finish_no_episode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The expert alone acts (500-step episodes), 50 steps per sub-env per round: no round finishes
    # an episode, so BC goes on through the warm-start data's epoch where the last round left it.
    demos = str(DATASETS / "cartpole-expert")
    recipe = _dagger_recipe(tmp_path, steps_per_round=100, n_envs=2, beta_value=1.0, demonstrations=demos)
    whole, resumed = interrupted_then_resumed(tmp_path, recipe, stop_at=200, monkeypatch=monkeypatch)
    _assert_same_run(whole, resumed)


def _random_policy(seed: int, n_envs: int) -> Callable[[object], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, 2, size=n_envs)


def test_rollout_env_restored_from_its_save_steps_on_as_the_original(tmp_path: Path) -> None:
    from algos.dagger_rollouts import UNFINISHED_FILE, RolloutEnv

    original = RolloutEnv("CartPole-v1", 3, seed=5)
    original.run(_random_policy(0, 3), 3 * 40)
    assert original.recorder.running_state()["pos"].min() > 0  # random CartPole episodes last ~20 steps: all mid-episode
    original.recorder.pop_batch()
    original.save(tmp_path)
    restored = RolloutEnv("CartPole-v1", 3, seed=5)
    restored.restore(tmp_path)
    original.run(_random_policy(1, 3), 3 * 60)
    restored.run(_random_policy(1, 3), 3 * 60)
    a, b = original.recorder.pop_batch(), restored.recorder.pop_batch()
    assert a is not None and b is not None and a.seeds is not None and b.seeds is not None
    assert list(a.seeds) == list(b.seeds) and a.num_episodes >= 6
    for name in ("obs", "acts", "rews"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name

    # An env that does not replay to the saved state is said so (here: the saved actions are altered).
    saved = dict(np.load(tmp_path / UNFINISHED_FILE))
    saved["executed"] = 1 - saved["executed"]
    np.savez(tmp_path / UNFINISHED_FILE, **saved)
    with pytest.warns(UserWarning, match="not deterministic given its seed"):
        RolloutEnv("CartPole-v1", 3, seed=5).restore(tmp_path)
