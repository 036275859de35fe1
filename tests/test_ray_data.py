"""A parquet-sharded store is read by Ray Data without ildata: per-feature statistics computed
with `ray.data.read_parquet` over the shards equal `ds.stats()` (the code docs/large-datasets.md
shows)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from support import make_episodes

import ildata
from ildata.store import layout

ray = pytest.importorskip("ray")


def test_ray_data_reads_parquet_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "SHARD_BYTES", 4000)  # several shards
    store = ildata.save(make_episodes([30] * 40, obs_dim=5, act_dim=2), tmp_path / "store", data_format="parquet")
    info = json.loads((tmp_path / "store" / "meta" / "info.json").read_text())
    assert len(info["data_files"]) > 3
    expected = store.stats()["features"]

    def feature_moments(batch: dict[str, np.ndarray], columns: list[str]) -> dict[str, np.ndarray]:
        """Per batch: count, sum, sum of squares, min and max of each column, per last-axis entry."""
        out: dict[str, np.ndarray] = {}
        for name in columns:
            values = np.stack(list(batch[name])) if batch[name].dtype == object else batch[name]
            values = values.reshape(len(values), -1).astype(np.float64)
            out[f"{name}/n"] = np.array([len(values)])
            out[f"{name}/sum"] = values.sum(axis=0)[None]
            out[f"{name}/sq"] = (values**2).sum(axis=0)[None]
            out[f"{name}/min"] = values.min(axis=0)[None]
            out[f"{name}/max"] = values.max(axis=0)[None]
        return out

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, logging_level=logging.ERROR
    )
    try:
        columns = ["obs", "acts", "rews"]
        data = ray.data.read_parquet(str(tmp_path / "store" / "data"), columns=columns)
        parts = data.map_batches(feature_moments, fn_kwargs={"columns": columns}, batch_format="numpy").take_all()
    finally:
        ray.shutdown()

    for name in columns:
        n = sum(int(p[f"{name}/n"]) for p in parts)  # one row per batch
        total = np.sum([p[f"{name}/sum"] for p in parts], axis=0)
        squares = np.sum([p[f"{name}/sq"] for p in parts], axis=0)
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean**2, 0))
        assert n == expected[name]["count"]
        np.testing.assert_allclose(mean, expected[name]["mean"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(std, expected[name]["std"], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(np.min([p[f"{name}/min"] for p in parts], axis=0), expected[name]["min"])
        np.testing.assert_array_equal(np.max([p[f"{name}/max"] for p in parts], axis=0), expected[name]["max"])
