"""A Minari dataset recorded without step infos: minari's hdf5 backend still writes an (empty)
infos group per episode, which is no infos at all, as minari's own reader and the arrow backend
read it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import ildata
from ildata.conversion import convert


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_a_minari_dataset_without_infos_converts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_format: str) -> None:
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    rng = np.random.default_rng(0)
    lengths = (5, 3)
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=i,
            observations=rng.normal(size=(length + 1, 3)).astype(np.float32),
            actions=rng.uniform(-1, 1, (length, 2)).astype(np.float32),
            rewards=list(rng.normal(size=length)),
            terminations=[False] * (length - 1) + [True],
            truncations=[False] * length,
            infos={},
        )
        for i, length in enumerate(lengths)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari warns about every missing author/description field
        minari.create_dataset_from_buffers(
            "ns/no-infos-v0",
            buffers,
            observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            action_space=gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
            data_format=data_format,
        )
    assert next(minari.load_dataset("ns/no-infos-v0").iterate_episodes()).infos == {}
    ds = convert(tmp_path / "minari" / "ns" / "no-infos-v0", tmp_path / "store")
    assert isinstance(ds, ildata.TrajectoryDataset)
    assert ds.lengths.tolist() == list(lengths) and not ds.meta.has_infos
