"""Every format the `imitation` library ever wrote: real files, generated N0/HF, hostile and broken input."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from support import LEGACY, REPO, as_printed, make_episodes, manifest_rows

import ildata
from ildata.episode import DataError, Episode
from ildata.formats import imitation_hf, read_source

MANIFEST = manifest_rows()


def test_manifest_covers_every_fixture() -> None:
    files = sorted(p.name for p in LEGACY.iterdir() if p.suffix in (".pkl", ".npz"))
    assert sorted(r["file"] for r in MANIFEST) == files and len(files) == 14


def _returns(batch) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(batch.lengths)[:-1]])
    return np.add.reduceat(batch.rews.astype(np.float64), starts)


@pytest.mark.parametrize("row", MANIFEST, ids=[r["file"] for r in MANIFEST])
def test_real_imitation_files_match_manifest(row: dict[str, str]) -> None:
    source = read_source(LEGACY / row["file"])
    batch = source.batch
    kind = "npz" if row["file"].startswith("n") else "pickle"
    assert source.format == f"imitation-{kind}-{row['file'][:2].upper()}"
    assert batch.num_episodes == int(row["trajectories"])
    assert batch.num_transitions == int(row["steps (transitions)"])
    lo, hi = map(int, row["length min-max"].split("-"))
    assert (batch.lengths.min(), batch.lengths.max()) == (lo, hi)
    shape, dtype = row["obs shape, dtype"].split()
    assert list(batch.obs.shape[1:]) == json.loads(shape)
    assert batch.obs.dtype == np.dtype(dtype)
    assert batch.acts.dtype == np.dtype(row["acts dtype"])
    assert batch.obs.sum(dtype=np.float64) == as_printed(row["obs sum"])
    assert batch.acts.sum(dtype=np.float64) == as_printed(row["acts sum"])
    assert _returns(batch).mean() == as_printed(row["mean return"])
    # Stored terminal=True (or P0-P4, which had no flag): ended, but terminated vs truncated unknown.
    assert row["terminal flag stored"] in ("True", "None")
    assert batch.terminated.all() and not batch.truncated.any() and not batch.termination_known.any()
    assert batch.infos is None  # all empty in these files
    assert any("terminal=True" in note for note in source.notes)


def test_npz_content_named_pkl_is_read_as_npz(tmp_path: Path) -> None:
    """imitation wrote npz content into .pkl files in 2022: detection is by content."""
    renamed = tmp_path / "final.pkl"
    renamed.write_bytes((LEGACY / "n1-pendulum-v1-final.npz").read_bytes())
    source = read_source(renamed)
    assert source.format == "imitation-npz-N1" and source.batch.num_transitions == 11200


# ----------------------------------------------------------------------------- N0 / N1 written here


def _infos_with_truncation(length: int, truncated: bool) -> np.ndarray:
    infos = np.array([{"speed": np.float32(t), "TimeLimit.truncated": False} for t in range(length)], dtype=object)
    infos[-1] = {"speed": np.float32(length - 1), "TimeLimit.truncated": truncated}
    return infos


def test_n0_dagger_demo(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    obs, acts, rews = rng.standard_normal((8, 3)), rng.integers(0, 4, 7), rng.standard_normal(7).astype(np.float32)
    path = tmp_path / "demo.npz"
    np.savez_compressed(path, obs=obs, acts=acts, infos=_infos_with_truncation(7, True), rews=rews, terminal=np.array(True))
    source = read_source(path)
    batch = source.batch
    assert source.format == "imitation-npz-N0"
    np.testing.assert_array_equal(batch.obs, obs)
    np.testing.assert_array_equal(batch.acts, acts)
    np.testing.assert_array_equal(batch.rews, rews)
    assert batch.rews.dtype == np.float32 and batch.obs.dtype == np.float64
    # TimeLimit.truncated on the last step: truncated, not terminated, and known.
    assert batch.truncated.tolist() == [True] and batch.terminated.tolist() == [False]
    assert batch.termination_known.tolist() == [True]
    assert batch.infos[3] == {"speed": 3.0, "TimeLimit.truncated": False}
    assert type(batch.infos[3]["speed"]) is float  # numpy scalars become plain Python (JSON)


def test_n0_2019_without_terminal_and_none_infos(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    np.savez_compressed(path, obs=np.zeros((4, 2), np.float32), acts=np.ones(3, np.int64), infos=np.array(None))
    batch = read_source(path).batch
    assert batch.lengths.tolist() == [3] and batch.rews is None and batch.infos is None
    assert batch.terminated.tolist() == [True] and batch.termination_known.tolist() == [False]


def _synthetic():
    spec = importlib.util.spec_from_file_location("synthetic", REPO / "benchmarks" / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_n1_generator_matches_reader(tmp_path: Path) -> None:
    path = _synthetic().write_imitation_npz(tmp_path / "demos.npz", n_episodes=5, length=7, obs_dim=3, act_dim=2, seed=1)
    with np.load(path) as npz:  # numeric members only: no pickle involved
        obs, acts, indices = npz["obs"], npz["acts"], npz["indices"]
    assert indices.tolist() == [7, 14, 21, 28] and obs.shape == (40, 3)
    batch = read_source(path).batch
    assert batch.lengths.tolist() == [7] * 5
    np.testing.assert_array_equal(batch.obs, obs)
    np.testing.assert_array_equal(batch.acts, acts)
    assert batch.infos is None and batch.obs.dtype == np.float32


def test_n1_single_trajectory_float_indices_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "one.npz"
    np.savez_compressed(
        path,
        obs=np.arange(12.0).reshape(6, 2),
        acts=np.arange(5),
        infos=_infos_with_truncation(5, False),
        terminal=np.array([True]),
        indices=np.cumsum([]),  # what imitation wrote for N=1: an empty float64 array
    )
    batch = read_source(path).batch
    assert batch.lengths.tolist() == [5]
    # TimeLimit.truncated False on a terminal step: a real termination, and known to be one.
    assert batch.terminated.tolist() == [True] and batch.termination_known.tolist() == [True]


# ----------------------------------------------------------------------------- HF directories


def _save_like_imitation(trajs: list[dict], dst: Path, num_shards: int = 1) -> None:
    """imitation 1.0.1's serialize.save: trajectories_to_dict -> Dataset.from_dict -> save_to_disk."""
    import datasets

    data = {
        "obs": [t["obs"] for t in trajs],
        "acts": [t["acts"] for t in trajs],
        "infos": [t.get("infos") or ["{}"] * len(t["acts"]) for t in trajs],
        "terminal": [t["terminal"] for t in trajs],
    }
    if all("rews" in t for t in trajs):
        data["rews"] = [t["rews"] for t in trajs]
    datasets.Dataset.from_dict(data).save_to_disk(str(dst), num_shards=num_shards)


# What jsonpickle 3 writes for {"x": np.float32(1.0)}: decoding it would call numpy functions.
JSONPICKLE_INFO = (
    '{"x": {"py/reduce": [{"py/function": "numpy.core.multiarray.scalar"}, {"py/tuple": [{"py/reduce": '
    '[{"py/type": "numpy.dtype"}, {"py/tuple": ["f4", false, true]}]}, {"py/b64": "AACAPw=="}]}]}}'
)


def test_hf_directory_written_by_datasets(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    trajs = [
        {
            "obs": rng.standard_normal((n + 1, 4)).astype(np.float32),
            "acts": rng.integers(0, 2, n),
            "rews": np.ones(n, np.float32),
            "terminal": True,
        }
        for n in (5, 3, 4)
    ]
    trajs[0]["infos"] = ["{}"] * 4 + ['{"TimeLimit.truncated": true}']
    trajs[1]["infos"] = [JSONPICKLE_INFO, '{"a": [1, 2]}', '{"TimeLimit.truncated": false}']
    _save_like_imitation(trajs, tmp_path / "hf", num_shards=2)
    assert len(list((tmp_path / "hf").glob("data-*.arrow"))) == 2
    source = read_source(tmp_path / "hf")
    batch = source.batch
    assert source.format == "imitation-hf"
    assert batch.lengths.tolist() == [5, 3, 4]
    np.testing.assert_array_equal(batch.obs, np.concatenate([t["obs"] for t in trajs]))
    np.testing.assert_array_equal(batch.acts, np.concatenate([t["acts"] for t in trajs]))
    assert batch.obs.dtype == np.float32 and batch.acts.dtype == np.int64 and batch.rews.dtype == np.float32
    assert batch.truncated.tolist() == [True, False, False]
    assert batch.terminated.tolist() == [False, True, True]
    assert batch.termination_known.tolist() == [True, True, False]
    assert batch.infos[5] == JSONPICKLE_INFO  # kept verbatim, never run through jsonpickle
    assert batch.infos[6] == {"a": [1, 2]}


def test_hf_box_actions_float64_obs_without_rewards(tmp_path: Path) -> None:
    trajs = [{"obs": np.full((3, 2), i, np.float64), "acts": np.full((2, 1), i, np.float32), "terminal": bool(i)} for i in range(2)]
    _save_like_imitation(trajs, tmp_path / "hf")
    batch = read_source(tmp_path / "hf").batch
    assert batch.obs.dtype == np.float64 and batch.acts.shape == (4, 1) and batch.acts.dtype == np.float32
    assert batch.rews is None and batch.infos is None
    assert batch.terminated.tolist() == [False, True]


def test_imitation_table_with_wrong_obs_count_is_refused() -> None:
    table = pa.table({"obs": [[[0.0], [1.0]]], "acts": [[0, 1]], "infos": [["{}", "{}"]], "terminal": [True]})
    with pytest.raises(DataError, match="trajectory 0: 2 observations for 2 actions"):
        imitation_hf.batch_from_imitation_table(table)


def _episodes() -> list[Episode]:
    flags = [(True, False), (False, True), (True, False), (False, False)]
    episodes = make_episodes([4, 5, 6, 7], seed=3, flags=flags, termination_known=[True, True, False, True])
    episodes[1].infos = [{"step": t} for t in range(len(episodes[1]))]
    return episodes


def test_hf_writer_round_trip(tmp_path: Path) -> None:
    import datasets

    ds = ildata.save(_episodes(), tmp_path / "store")
    imitation_hf.write(ds, tmp_path / "hf")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    original, back = ds.to_batch(), read_source(tmp_path / "hf").batch
    for name in ("obs", "acts", "rews", "lengths", "terminated", "truncated", "termination_known"):
        np.testing.assert_array_equal(getattr(back, name), getattr(original, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(original, name).dtype, name
    # Episode 1 (5 steps) had infos; its last one now also carries the truncation flag.
    assert back.infos[4:9] == [{"step": t} for t in range(4)] + [{"step": 4, "TimeLimit.truncated": True}]
    # What imitation 1.0.1 reads with `datasets.load_from_disk`: its column types, one row per trajectory.
    hf = datasets.load_from_disk(str(tmp_path / "hf"))
    assert hf.num_rows == 4 and set(hf.column_names) == {"obs", "acts", "infos", "terminal", "rews"}
    assert str(hf.features["obs"]) == "List(List(Value('float32')))"
    assert str(hf.features["infos"]) == "List(Value('string'))"
    assert hf[1]["infos"][-1] == '{"TimeLimit.truncated": true, "step": 4}'
    assert hf["terminal"] == [True, True, True, False]
    # Feature types are spelled `Sequence`, which datasets < 4 (imitation 1.0.1's era) also loads.
    info = (tmp_path / "hf" / "dataset_info.json").read_text()
    assert '"List"' not in info and '"Sequence"' in info
    schema = pa.ipc.open_stream(pa.memory_map(str(next((tmp_path / "hf").glob("data-*.arrow"))))).schema
    assert b'"List"' not in schema.metadata[b"huggingface"]


def test_convert_to_imitation_from_legacy_pickle(tmp_path: Path) -> None:
    src = LEGACY / "p5-pendulum-terminal-proto4.pkl"
    ildata.convert(src, tmp_path / "hf", to="imitation")
    original, back = read_source(src).batch, read_source(tmp_path / "hf").batch
    np.testing.assert_array_equal(back.obs, original.obs)
    np.testing.assert_array_equal(back.acts, original.acts)
    np.testing.assert_array_equal(back.rews, original.rews)
    assert not back.termination_known.any() and back.terminated.all()


def _imitation_classes(monkeypatch: pytest.MonkeyPatch, module: str) -> tuple[type, type]:
    """Dataclasses that pickle under imitation's own class paths (`module`.Trajectory[WithRew])."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))

    @dataclasses.dataclass(frozen=True)
    class Trajectory:
        obs: np.ndarray
        acts: np.ndarray
        infos: object

    @dataclasses.dataclass(frozen=True)
    class TrajectoryWithRew(Trajectory):
        rews: np.ndarray

    for cls in (Trajectory, TrajectoryWithRew):
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(sys.modules[module], cls.__name__, cls)
    return Trajectory, TrajectoryWithRew


def test_p3_dataclasses_with_numpy_infos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """P3 (imitation.util.data, 2020): no fixture survives, so pickle one under its class path."""
    Trajectory, _ = _imitation_classes(monkeypatch, "imitation.util.data")
    infos = [{"x": np.float32(t), "TimeLimit.truncated": np.bool_(t == 2)} for t in range(3)]
    trajs = [Trajectory(np.ones((4, 2)), np.arange(3), infos), Trajectory(np.zeros((2, 2)), np.arange(1), None)]
    path = tmp_path / "p3.pkl"
    path.write_bytes(pickle.dumps(trajs, protocol=3))
    source = read_source(path)
    batch = source.batch
    assert source.format == "imitation-pickle-P3" and batch.lengths.tolist() == [3, 1] and batch.rews is None
    assert batch.infos[:3] == [
        {"x": 0.0, "TimeLimit.truncated": False},
        {"x": 1.0, "TimeLimit.truncated": False},
        {"x": 2.0, "TimeLimit.truncated": True},
    ]
    assert batch.infos[3] is None
    assert batch.truncated.tolist() == [True, False] and batch.termination_known.tolist() == [True, False]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_p5_every_pickle_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: int) -> None:
    _, TrajectoryWithRew = _imitation_classes(monkeypatch, "imitation.data.types")
    obs = np.arange(10, dtype=np.float32).reshape(5, 2)
    traj = TrajectoryWithRew(obs, np.arange(4), None, np.full(4, 0.5))
    state = {**traj.__dict__, "terminal": False}
    object.__setattr__(traj, "__dict__", state)  # P5's state dict: the P4 fields plus `terminal`
    path = tmp_path / "p5.pkl"
    path.write_bytes(pickle.dumps([traj], protocol=protocol))
    source = read_source(path)
    assert source.format == "imitation-pickle-P5"
    np.testing.assert_array_equal(source.batch.obs, obs)
    assert source.batch.obs.dtype == np.float32 and source.batch.rews.sum() == 2.0
    assert source.batch.terminated.tolist() == [False]


# ----------------------------------------------------------------------------- hostile input


class _OpensFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


class _RunsShell:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("payload", [_OpensFile, _RunsShell])
def test_hostile_pickle_is_refused(tmp_path: Path, payload) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "demos.pkl"
    legit = {"obs": np.zeros((3, 2)), "act": np.zeros(2), "rew": np.zeros(2)}
    path.write_bytes(pickle.dumps([legit, payload(target)], protocol=4))
    with pytest.raises(DataError, match=r"refusing to unpickle global '(io|builtins|posix|os)\.(open|system)'"):
        read_source(path)
    assert not target.exists()


def test_hostile_object_member_in_npz_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "demos.pkl"  # npz content behind a .pkl name, as imitation once wrote
    infos = np.empty(3, dtype=object)
    infos[:] = [{}, {}, _OpensFile(target)]
    with open(path, "wb") as f:
        np.savez_compressed(f, obs=np.zeros((4, 2)), acts=np.zeros(3), infos=infos, terminal=np.array([True]), indices=np.cumsum([]))
    with pytest.raises(DataError, match="refusing to unpickle global"):
        read_source(path)
    assert not target.exists()


@pytest.mark.parametrize(
    "body, message",
    [
        (b"cnumpy\nndarray\n(I1000000000000\ntR.", "numpy.ndarray called directly"),
        (b"cnumpy\ndtype\n(I1\ntR.", "unexpected arguments to numpy.dtype"),
        (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I1000000000000\ntC\x01bt\x85R.", "_reconstruct"),
        (b"cnumpy.core.multiarray\n_reconstruct\n(cbuiltins\nint\n(I0\ntC\x01bt\x85R.", "refusing to unpickle global 'builtins.int'"),
    ],
)
def test_allowed_globals_cannot_be_misused(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "crafted.pkl"
    path.write_bytes(b"\x80\x02" + body)
    with pytest.raises(DataError, match=message):
        read_source(path)


# ----------------------------------------------------------------------------- broken input


def _n1(tmp_path: Path, **overrides) -> Path:
    members = dict(
        obs=np.zeros((9, 2), np.float32),
        acts=np.zeros(7, np.int64),
        terminal=np.array([True, True]),
        indices=np.array([4]),
        rews=np.zeros(7),
    )
    members.update(overrides)
    path = tmp_path / "n1.npz"
    np.savez_compressed(path, **members)
    return path


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(obs=np.zeros((8, 2), np.float32)), "obs has 8 rows but acts and indices imply 9"),
        (dict(indices=np.array([9])), "indices do not match acts"),
        (dict(indices=np.array([4, 2]), terminal=np.array([True] * 3), obs=np.zeros((10, 2))), "indices do not match acts"),
        (dict(terminal=np.array([True])), "terminal has 1 entries but indices describe 2"),
        (dict(rews=np.zeros(6)), "6 rewards for 7 actions"),
    ],
)
def test_inconsistent_n1_is_refused(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_source(_n1(tmp_path, **overrides))


def test_truncated_and_corrupted_files(tmp_path: Path) -> None:
    data = (LEGACY / "p4-cartpole-dataclass.pkl").read_bytes()
    (tmp_path / "half.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated pickle|corrupted pickle"):
        read_source(tmp_path / "half.pkl")
    npz = bytearray((LEGACY / "n1-cartpole-v1-final.npz").read_bytes())
    (tmp_path / "cut.npz").write_bytes(npz[: len(npz) // 2])
    with pytest.raises(DataError, match="corrupted or truncated npz"):
        read_source(tmp_path / "cut.npz")
    npz[len(npz) // 3 : len(npz) // 3 + 64] = bytes(64)  # zeroed block inside the obs stream
    (tmp_path / "flipped.npz").write_bytes(bytes(npz))
    with pytest.raises(DataError, match="corrupted"):
        read_source(tmp_path / "flipped.npz")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_source(tmp_path / "empty.pkl")


@pytest.mark.parametrize(
    "obj, message",
    [
        ([], "empty list"),
        ([1, 2], "trajectory 0: a int, not an imitation trajectory"),
        ({"obs": 1}, "pickle holds a dict"),
        ([{"obs": np.zeros((3, 2)), "act": np.zeros(3), "rew": np.zeros(3)}], "trajectory 0: 3 observations for 3 actions"),
        (
            [{"obs": np.zeros((3, 2)), "act": np.zeros(2), "rew": np.zeros(2)}, {"obs": np.zeros((3, 2)), "act": np.zeros(2)}],
            "some trajectories have rewards",
        ),
    ],
)
def test_malformed_pickles(tmp_path: Path, obj, message: str) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=3))
    with pytest.raises(DataError, match=message):
        read_source(path)


def test_cli_refuses_hostile_pickle(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    src = tmp_path / "demos.pkl"
    src.write_bytes(pickle.dumps([_RunsShell(target)]))
    dst = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "ildata.cli", "convert", str(src), str(dst), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(rf"ildata: error: {re.escape(str(src))}: refusing to unpickle global", lines[0])
    assert not dst.exists() and not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["demos.pkl"]


def test_cli_reports_inconsistent_npz(tmp_path: Path) -> None:
    src = _n1(tmp_path, obs=np.zeros((8, 2), np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "ildata.cli", "convert", str(src), str(tmp_path / "out"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"ildata: error: {src}: obs has 8 rows")
    assert not (tmp_path / "out").exists()
