"""Exact resume for preference comparisons: a run interrupted right after a round's checkpoint and
continued with `--resume` ends with the same metrics.csv (row for row), the same learner weights
and the same preference pairs as a run never interrupted, with the sub-envs' episodes running
across the checkpoint (replayed from their seeds) and an off-policy or on-policy learner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from support import interrupted_then_resumed

from algos.base import seed_everything
from algos.preferences import PreferenceDataset

# 1200 env steps on 2 Pendulum envs (200-step episodes): 600 of initial sampling, then three
# learner phases of 100 steps per env, so the checkpoint after round 2 (row 1000) has both
# sub-envs half-way through an episode that round 3 finishes.
SMALL: dict[str, Any] = {
    "total_timesteps": 1200,
    "n_envs": 2,
    "iterations": 3,
    "comparisons": 24,
    "initial_comparison_frac": 0.5,
    "initial_sampling_frac": 0.5,
    "fragment_length": 10,
    "ensemble_size": 2,
    "active_selection": True,
    "initial_reward_epochs": 2,
    "reward_epochs": 1,
    "reward_hidden": [16],
}
LEARNERS = {
    "sac": {"algo": "sac", "learning_starts": 50, "batch_size": 32, "net_arch": [16]},
    "ppo": {"algo": "ppo", "rollout_steps": 20, "batch_size": 20, "n_epochs": 2, "net_arch": [16]},
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


def _recipe(tmp_path: Path, learner: dict[str, Any]) -> Path:
    recipe = {
        "name": "prefs",
        "algo": "preference_comparisons",
        "env": "Pendulum-v1",
        "seed": 3,
        "config": {**SMALL, "learner": learner},
        "eval": {"episodes": 1},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_preference_comparisons_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, learner: str) -> None:
    recipe = _recipe(tmp_path, LEARNERS[learner])
    # Interrupted at the row after round 2 (logged once its checkpoint is written), mid-episode.
    whole, resumed = interrupted_then_resumed(tmp_path, recipe, 1000, monkeypatch, checkpoint_file="running.npz")

    rows = (whole / "metrics.csv").read_text()
    assert [line.split(",")[0] for line in rows.splitlines()[1:]] == ["0", "800", "1000", "1200"]
    assert (resumed / "metrics.csv").read_text() == rows
    a = torch.load(resumed / "policy" / "parameters.pt", weights_only=True)["state_dicts"]["policy"]
    b = torch.load(whole / "policy" / "parameters.pt", weights_only=True)["state_dicts"]["policy"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pairs, pairs_whole = PreferenceDataset.load(resumed / "preferences.parquet"), PreferenceDataset.load(whole / "preferences.parquet")
    assert pairs.to_table().equals(pairs_whole.to_table())
