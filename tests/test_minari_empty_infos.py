"""A Minari dataset recorded without step infos: minari's hdf5 backend still writes an (empty)
infos group per episode, which is no infos at all, as minari's own reader and the arrow backend
read it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import minari_toy_dataset

import ildata
from ildata.conversion import convert


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_a_minari_dataset_without_infos_converts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_format: str) -> None:
    import minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    lengths = (5, 3)
    minari_toy_dataset("ns/no-infos-v0", lengths, data_format, infos=False)
    assert next(minari.load_dataset("ns/no-infos-v0").iterate_episodes()).infos == {}
    ds = convert(tmp_path / "minari" / "ns" / "no-infos-v0", tmp_path / "store")
    assert isinstance(ds, ildata.TrajectoryDataset)
    assert ds.lengths.tolist() == list(lengths) and not ds.meta.has_infos
