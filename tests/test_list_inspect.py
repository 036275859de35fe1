"""`ildata list`, `ildata inspect` (hf://, provenance, width, --plots), `push --dry-run` and the
`minari:` not-present message, on datasets made here: a store, a Minari root and a fake
huggingface_hub cache (its folder layout), all under tmp_path. Nothing reaches a network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import REPO, make_episodes

import ildata

COMMIT = "0123456789abcdef0123456789abcdef01234567"
COLLECTION = {"policy": "expert.zip", "seed": 3, "episodes": 4, "expert_mean_return": 1.5, "random_mean_return": -2.0}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ildata.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, str]:
    """An empty Minari root, Hub cache and ildata cache; offline, and an endpoint nothing listens on."""
    env = {
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "ILDATA_CACHE": str(tmp_path / "ildata-cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_TOKEN": "",
    }
    for key in ("MINARI_DATASETS_PATH", "HF_HUB_CACHE", "ILDATA_CACHE"):
        Path(env[key]).mkdir()
    return env


@pytest.fixture
def store(tmp_path: Path) -> ildata.TrajectoryDataset:
    from gymnasium import spaces

    return ildata.save(
        make_episodes((5, 7, 6, 4), act_dim=None, n_actions=3),
        tmp_path / "mine" / "toy",
        observation_space=spaces.Box(-10, 10, (3,), np.float32),
        action_space=spaces.Discrete(3),
        env_id="Toy-v0",
        extra_info={"collection": COLLECTION},
    )


def fake_hub_snapshot(cache: Path, store: ildata.TrajectoryDataset, repo: str = "me--toy") -> Path:
    """huggingface_hub's cache layout for a dataset repo whose `main` is COMMIT."""
    folder = cache / f"datasets--{repo}"
    snapshot = folder / "snapshots" / COMMIT
    shutil.copytree(store.path / "meta", snapshot / "meta")
    shutil.copytree(store.path / "data", snapshot / "data")
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_list_shows_folders_minari_root_and_hub_cache(homes, store, tmp_path):
    minari = cli("convert", str(store.path), "minari:ns/toy-v0", "--to", "minari", env=homes)
    assert minari.returncode == 0, minari.stderr
    fake_hub_snapshot(Path(homes["HF_HUB_CACHE"]), store)
    (tmp_path / "mine" / "not-a-dataset").mkdir()

    done = cli("list", str(tmp_path / "mine"), "--json", env=homes)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {str(store.path), "minari:ns/toy-v0", "hf://me/toy@main"}
    for row, kind in zip(rows.values(), ("ildata", "minari", "hub ildata")):
        assert row["kind"] == kind and row["episodes"] == 4 and row["steps"] == 22 and row["bytes"] > 0
    assert rows[str(store.path)]["env_id"] == "Toy-v0"

    table = cli("list", str(store.path), "--no-local", env=homes)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 2 and lines[1].split()[:4] == [str(store.path), "ildata", "4", "22"]

    missing = cli("list", str(tmp_path / "nope"), env=homes)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such folder" in missing.stderr


def test_inspect_hf_reference_reads_the_cache_without_converting(homes, store):
    fake_hub_snapshot(Path(homes["HF_HUB_CACHE"]), store)
    done = cli("inspect", "hf://me/toy@main", "--json", env=homes)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["path"] == "hf://me/toy@main"
    assert report["episodes"] == 4 and report["fingerprint"] == store.fingerprint
    assert report["disk_bytes"] > 0  # the cache's links are followed
    assert not any(Path(homes["ILDATA_CACHE"]).rglob("*.arrow"))  # nothing converted


def test_inspect_shows_provenance_collection_and_space_objects(store):
    done = cli("inspect", str(store.path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["fingerprint"] == store.fingerprint and report["env_id"] == "Toy-v0"
    assert report["provenance"]["tool"].startswith("ildata")
    assert report["collection"]["expert_mean_return"] == 1.5
    assert report["observation_space"] == {"type": "Box", "dtype": "float32", "shape": [3], "low": -10.0, "high": 10.0}
    assert report["action_space"] == {"type": "Discrete", "dtype": "int64", "n": 3, "start": 0}

    table = cli("inspect", str(store.path), env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    for expected in (store.fingerprint, "expert return", "random return", "Box float32 (3,) in [-10, 10]", "Discrete: 3 values (0..2)"):
        assert expected in text, expected


def test_inspect_stays_within_80_columns_on_a_long_path(tmp_path, store):
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / "toy"
    shutil.copytree(store.path, deep)
    table = cli("inspect", str(deep), env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 80


def test_inspect_plots_writes_pngs(store, tmp_path):
    out = tmp_path / "plots"
    done = cli("inspect", str(store.path), "--plots", str(out))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["actions.png", "features-obs.png", "lengths.png", "returns.png"]
    for path in out.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_push_dry_run_prints_card_and_files_and_contacts_nothing(homes, store):
    done = cli("push", str(store.path), "me/toy", "--dry-run", env=homes)
    assert done.returncode == 0, done.stderr
    assert "dry run" in done.stdout and "nothing was contacted" in done.stdout
    assert "ildata-format-v1" in done.stdout  # the card's tags
    for rel in ("data/shard-00000.arrow", "meta/info.json", "meta/episodes.parquet", "README.md"):
        assert rel in done.stdout
    size = (store.path / "meta" / "info.json").stat().st_size
    assert f"{size:,} bytes" in done.stdout


def test_absent_minari_dataset_says_where_it_looked_and_how_to_get_it(homes):
    done = cli("inspect", "minari:ns/absent-v0", env=homes)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert homes["MINARI_DATASETS_PATH"] in done.stderr
    assert "minari download ns/absent-v0" in done.stderr and "ildata convert" in done.stderr


def test_missing_path_is_no_such_file(tmp_path):
    for args in (("inspect", "nope"), ("render", "nope", "x.gif")):
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2 and "no such file or directory" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["list", "inspect", "render", "convert", "push", "pull", "collect", "eval", "verify", "train"])
def test_help_has_examples(command):
    done = cli(command, "--help")
    assert done.returncode == 0 and "examples:\n  ildata " + command in done.stdout
