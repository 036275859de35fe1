"""`ildata convert` and `ildata inspect` end to end, on the real legacy files of tests/fixtures."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from support import LEGACY, as_printed, manifest_rows, run_cli

import ildata

FIXTURES = LEGACY


ROWS = manifest_rows()


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_every_fixture_converts_and_matches_manifest(row, tmp_path):
    src = FIXTURES / row["file"]
    before = src.read_bytes()
    ds = ildata.convert(src, tmp_path / "ds")
    assert src.read_bytes() == before  # the source is never modified
    ds = ildata.load(tmp_path / "ds")  # reopen from disk
    assert len(ds) == int(row["trajectories"])
    assert ds.num_transitions == int(row["steps (transitions)"])
    low, high = (int(x) for x in row["length min-max"].split("-"))
    assert (ds.lengths.min(), ds.lengths.max()) == (low, high)
    shape, dtype = re.match(r"\[(.*)\] (\w+)", row["obs shape, dtype"]).groups()
    batch = ds.to_batch()
    assert batch.obs.dtype == np.dtype(dtype) and list(batch.obs.shape[1:]) == [int(shape)]
    assert batch.acts.dtype == np.dtype(row["acts dtype"])
    assert batch.obs.sum(dtype=np.float64) == as_printed(row["obs sum"])
    assert batch.acts.sum(dtype=np.float64) == as_printed(row["acts sum"])
    assert ds.stats()["return_mean"] == as_printed(row["mean return"])
    # imitation folds truncation into `terminal`: the store must not claim to know
    assert not ds.episode_column("termination_known").any()
    provenance = ds.info["provenance"]
    assert provenance["source_format"].startswith("imitation-")
    assert len(provenance["source_sha256"]) == 64
    assert ds.info["fingerprint"].startswith("xxh3_128:")


def test_cli_convert_then_inspect_json(tmp_path):
    src = FIXTURES / "n1-cartpole-v1-final.npz"
    done = run_cli("convert", str(src), str(tmp_path / "ds"), "--env", "CartPole-v1")
    assert done.returncode == 0, done.stderr
    assert "57 episodes, 26964 transitions" in done.stderr
    shown = run_cli("inspect", str(tmp_path / "ds"), "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["episodes"] == 57 and report["transitions"] == 26964
    assert report["rollout_stats"]["return_mean"] == pytest.approx(473.0526, rel=1e-6)
    assert report["horizon"]["fixed"] is False and report["horizon"]["histogram"]["500"] > 0
    assert report["termination"]["unknown"] == 57
    assert sum(report["action_histogram"].values()) == 26964
    assert report["action_histogram"]["1"] == 13396  # acts sum of a 0/1 action space
    assert report["action_space"] == {"type": "Discrete", "dtype": "int64", "n": 2, "start": 0}  # an object, not a string
    assert report["observation_space"]["type"] == "Box" and report["observation_space"]["shape"] == [4]
    assert report["spaces_inferred"] is False
    assert report["problems"] == []
    # the human-readable form shows the same facts
    table = run_cli("inspect", str(tmp_path / "ds"))
    assert table.returncode == 0 and "26964" in table.stdout and "variable" in table.stdout


def test_inspect_reads_legacy_files_without_conversion(tmp_path):
    shown = run_cli("inspect", str(FIXTURES / "p1-pendulum-namedtuple3.pkl"), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["format"] == "imitation-pickle-P1"
    assert report["horizon"] == {"fixed": True, "length": 200, "histogram": {"200": 16}}
    assert report["features"]["obs"] == {"dtype": "float64", "shape": [3]}
    assert report["action_histogram"] is None  # continuous actions
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_inspect_reports_validation_problems(tmp_path):
    import gymnasium as gym

    rng = np.random.default_rng(0)
    obs = rng.standard_normal((11, 4)).astype(np.float32)
    obs[3, 2] = np.nan
    acts = np.array([0, 1, 1, 0, 3, 1, 0, 0, 1, 1])  # 3 is outside Discrete(2)
    env = gym.make("CartPole-v1")
    ildata.save(
        [ildata.Episode(obs=obs, acts=acts, rews=np.ones(10))],
        tmp_path / "ds",
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    report = json.loads(run_cli("inspect", str(tmp_path / "ds"), "--json").stdout)
    assert any("NaN" in p and p.startswith("obs") for p in report["problems"])
    assert any("1 steps outside the action space" in p for p in report["problems"])


BAD_INPUTS = {
    "empty file": (b"", "empty"),
    "unknown format": (b"hello, this is text\n" * 10, "unknown format"),
    "truncated pickle": ((FIXTURES / "p4-cartpole-dataclass.pkl").read_bytes()[:5000], ""),
    "truncated npz": ((FIXTURES / "n1-cartpole-v1-final.npz").read_bytes()[:20000], ""),
    "corrupted npz": (
        (FIXTURES / "n1-cartpole-v1-final.npz").read_bytes()[:4000]
        + b"\0" * 5000
        + (FIXTURES / "n1-cartpole-v1-final.npz").read_bytes()[9000:],
        "",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_one_line_error_and_no_output(name, tmp_path):
    content, expected = BAD_INPUTS[name]
    src = tmp_path / "input.bin"
    src.write_bytes(content)
    out = tmp_path / "out"
    done = run_cli("convert", str(src), str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"ildata: error: {src}: ") and expected in lines[0]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.bin"]  # no output, no temp folder
    assert src.read_bytes() == content
    shown = run_cli("inspect", str(src))
    assert shown.returncode == 2 and len(shown.stderr.strip().splitlines()) == 1


def test_convert_refuses_to_overwrite_unless_asked(tmp_path):
    src = FIXTURES / "p5-cartpole-single-proto4.pkl"
    assert run_cli("convert", str(src), str(tmp_path / "ds")).returncode == 0
    again = run_cli("convert", str(src), str(tmp_path / "ds"))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run_cli("convert", str(FIXTURES / "p0-cartpole-dicts.pkl"), str(tmp_path / "ds"), "--overwrite").returncode == 0
    assert len(ildata.load(tmp_path / "ds")) == 7
    missing = run_cli("convert", str(tmp_path / "nope.pkl"), str(tmp_path / "x"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_env_spaces_are_taken_when_the_source_has_none(tmp_path):
    ds = ildata.convert(FIXTURES / "p2-pendulum-namedtuple4.pkl", tmp_path / "ds", env_id="Pendulum-v1")
    space = ds.observation_space
    assert space.dtype == np.float64 and space.shape == (3,)  # data dtype kept, env bounds used
    assert space.high.tolist() == [1.0, 1.0, 8.0]
    assert ds.action_space.shape == (1,) and ds.env_id == "Pendulum-v1"


def test_convert_to_minari_by_dataset_id(tmp_path, monkeypatch):
    import os

    env = dict(os.environ, MINARI_DATASETS_PATH=str(tmp_path / "minari"))
    src = FIXTURES / "n1-cartpole-v1-final.npz"
    done = subprocess.run(
        [sys.executable, "-m", "ildata.cli", "convert", str(src), "minari:ildata/cartpole-v0", "--to", "minari", "--env", "CartPole-v1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "note:" in done.stderr  # what minari cannot represent is said
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    import minari

    assert "ildata/cartpole-v0" in minari.list_local_datasets()
    dataset = minari.load_dataset("ildata/cartpole-v0")
    assert dataset.total_episodes == 57 and dataset.total_steps == 26964
    back = ildata.convert("minari:ildata/cartpole-v0", tmp_path / "back")
    original = ildata.convert(src, tmp_path / "orig")
    np.testing.assert_array_equal(back.transitions().obs, original.transitions().obs)
    assert not back.episode_column("termination_known").any()  # the unknown flag survives the trip


def test_convert_to_parquet_store(tmp_path):
    done = run_cli("convert", str(FIXTURES / "p4-pendulum-dataclass.pkl"), str(tmp_path / "pq"), "--to", "parquet")
    assert done.returncode == 0, done.stderr
    ds = ildata.load(tmp_path / "pq")
    assert ds.info["data_format"] == "parquet" and len(ds) == 56
    assert ds.transitions().obs.dtype == np.float64


def test_inspect_minari_spec_without_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    ildata.convert(FIXTURES / "p5-cartpole-single-proto4.pkl", "minari:ildata/single-v0", to="minari")
    from ildata.report import report

    result = report("minari:ildata/single-v0")
    assert result["format"].startswith("minari") and result["transitions"] == 458


def test_inspect_shows_spaces_as_gymnasium_does():
    """inspect describes a store's spaces from info.json without gymnasium, in gymnasium's words."""
    from gymnasium.spaces import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple

    from ildata.report import space_repr
    from ildata.spaces import space_to_dict

    inf = np.inf
    made = [
        Box(-1, 1, (3,), np.float32),
        Box(np.array([-4.8, -inf], np.float32), np.array([4.8, inf], np.float32), dtype=np.float32),
        Box(0, 255, (2, 4, 3), np.uint8),
        Box(-inf, inf, (), np.float64),
        Discrete(2),
        Discrete(5, start=-2),
        MultiDiscrete([3, 4]),
        MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[1, 1], [0, 0]])),
        MultiBinary(4),
        MultiBinary([2, 3]),
        Dict({"pos": Box(-1, 1, (2,)), "flag": Discrete(2)}),
        Tuple((Discrete(3), Box(0, 1, (1,)))),
    ]
    for space in made:
        assert space_repr(space_to_dict(space)) == str(space)
