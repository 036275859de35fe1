"""Linux file names are bytes and need not be UTF-8 (Python hands them over surrogate-escaped):
stores, Minari datasets and imitation HF directories in such a folder are read, converted into
such a folder, inspected, verified and loaded like any other."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import DATASETS, minari_toy_dataset, run_cli
from test_hostile import write_hf_dir

import ildata

BAD = os.fsdecode(b"bad-\xff")
OUT = os.fsdecode(b"out-\xfe\xff")


def _minari_dataset(root: Path, data_format: str) -> Path:
    """A small Minari dataset made by minari itself (`create_dataset_from_buffers`), under `root`."""
    minari_toy_dataset(f"ns/toy-{data_format}-v0", (5, 3, 4), data_format)
    return root / "ns" / f"toy-{data_format}-v0"


@pytest.fixture()
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Path, int]]:
    """Every kind of source, copied into a folder whose name is not UTF-8, with its episode count."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    folder = tmp_path / BAD
    folder.mkdir()
    shutil.copytree(DATASETS / "cartpole-expert", folder / "store")
    write_hf_dir(folder / "hf")
    for data_format in ("arrow", "hdf5"):
        shutil.copytree(_minari_dataset(tmp_path / "minari", data_format), folder / f"minari-{data_format}")
    counts = {"store": 30, "hf": 3, "minari-arrow": 3, "minari-hdf5": 3}
    return {name: (folder / name, count) for name, count in counts.items()}


def test_a_store_in_a_non_utf8_folder_loads_and_verifies(sources: dict[str, tuple[Path, int]]) -> None:
    store, count = sources["store"]
    assert len(ildata.load(store, verify=True)) == count
    assert len(ildata.load(str(store))) == count
    shown = run_cli("inspect", str(store))
    assert shown.returncode == 0, shown.stderr
    checked = run_cli("verify", str(store))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{store.parent.parent}/bad-\\xff/store: OK: {count} episodes")  # the name printed escaped


@pytest.mark.parametrize("name", ["store", "hf", "minari-arrow", "minari-hdf5"])
def test_every_source_kind_converts_between_non_utf8_folders(tmp_path: Path, sources: dict[str, tuple[Path, int]], name: str) -> None:
    src, count = sources[name]
    shown = run_cli("inspect", str(src))
    assert shown.returncode == 0, shown.stderr
    dst = tmp_path / OUT / name
    done = run_cli("convert", str(src), str(dst))
    assert done.returncode == 0, done.stderr
    assert "out-\\xfe\\xff" in done.stdout + done.stderr  # printed escaped, never as raw bytes
    for command in ("inspect", "verify"):
        checked = run_cli(command, str(dst))
        assert checked.returncode == 0, (command, checked.stderr)
    ds = ildata.load(dst, verify=True)
    assert len(ds) == count
    assert os.fsencode(ds.meta.provenance.source_path or "").endswith(os.fsencode(src.name))


def test_a_store_saved_into_a_non_utf8_folder_reopens(tmp_path: Path) -> None:
    expert = ildata.load(DATASETS / "cartpole-expert")
    for data_format in ("arrow", "parquet"):
        saved = expert[:5].save(tmp_path / OUT / data_format, data_format=data_format)
        again = ildata.load(saved.path, verify=True)
        assert len(again) == 5 and again.fingerprint == saved.fingerprint
        assert again.verify() == []
