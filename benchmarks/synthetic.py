"""Synthetic data generators for the benchmarks: files laid out exactly as real tools write them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_imitation_npz(path: str | Path, n_episodes: int, length: int, obs_dim: int, act_dim: int, seed: int = 0) -> Path:
    """Write `n_episodes` Box-space trajectories the way imitation v0.3's `types.save` did.

    Mirrors that function step by step: per-trajectory arrays concatenated, infos replaced by
    `np.full(len(traj), {})` (one shared empty dict per trajectory, pickled inside the npz),
    `indices = np.cumsum(lengths[:-1])`, `np.savez_compressed` to a temporary file, then
    `os.replace`. Observations keep each episode's final one (len+1 rows); rewards are float64
    as in the real v0.3 files under shared/fixtures/imitation-legacy.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    trajs = [
        (
            rng.standard_normal((length + 1, obs_dim), dtype=np.float32),
            rng.uniform(-1.0, 1.0, (length, act_dim)).astype(np.float32),
            rng.standard_normal(length),
        )
        for _ in range(n_episodes)
    ]
    condensed = {
        "obs": np.concatenate([obs for obs, _, _ in trajs]),
        "acts": np.concatenate([acts for _, acts, _ in trajs]),
        "infos": np.concatenate([np.full(length, {}) for _ in trajs]),
        "terminal": np.array([True] * n_episodes),
        "indices": np.cumsum([length for _ in trajs[:-1]]),
        "rews": np.concatenate([rews for _, _, rews in trajs]),
    }
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "wb") as f:
        np.savez_compressed(f, **condensed)
    os.replace(tmp_path, path)
    return path
