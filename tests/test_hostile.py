"""Hostile input to the imitation and d3rlpy readers and the in-memory episode types: every
file here is made to break something (crash, hang, escape its folder, traceback), and each one
must end in a one-line `DataError` naming the file and the problem, through `read_source` and
through `ildata convert` (exit 2, one stderr line, no traceback, no destination left behind)."""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pytest
from support import make_episodes, run_cli

import ildata
from ildata.episode import MAX_INFO_DEPTH, DataError, EpisodeBatch, Obs, normalise_dtype
from ildata.formats import READERS, WRITERS, d3rlpy_h5, imitation_hf, read_source
from ildata.fsutil import ALREADY_EXISTS
from ildata.registry import Registry


def assert_cli_refuses(src: Path, tmp_path: Path, *fragments: str) -> str:
    """`ildata convert SRC DST` exits 2 with one stderr line naming SRC, and leaves no DST."""
    dst = tmp_path / "converted"
    result = run_cli("convert", str(src), str(dst), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(src) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert not dst.exists()
    assert not list(tmp_path.glob(".converted*")), "a temporary output was left behind"
    return lines[0]


# ----------------------------------------------------------------------------- file makers


def write_npz(path: Path, *, obs: Any = None, acts: Any = None, infos: Any = None, raw: dict[str, bytes] | None = None) -> Path:
    """An imitation N1 npz of two trajectories (3 and 2 steps); `raw` members replace arrays."""
    members: dict[str, Any] = {
        "obs": np.arange(14, dtype=np.float32).reshape(7, 2) if obs is None else obs,
        "acts": np.array([0, 1, 0, 1, 1]) if acts is None else acts,
        "indices": np.array([3]),
        "terminal": np.array([True, True]),
        "rews": np.ones(5, dtype=np.float32),
    }
    if infos is not None:
        members["infos"] = infos
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            if raw and name in raw:
                zf.writestr(f"{name}.npy", raw[name])
                continue
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=True)  # writing: the test makes its own object members
            zf.writestr(f"{name}.npy", buf.getvalue())
    return path


def npy_header_only(descr: str, shape: tuple[int, ...]) -> bytes:
    """A `.npy` payload that declares `descr` and holds no data (zero-width dtypes)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def object_steps(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def shared_reference_bomb(levels: int = 40) -> list[Any]:
    """A list that expands to 2**levels elements but pickles to a few hundred bytes (memo refs)."""
    node: list[Any] = [0]
    for _ in range(levels):
        node = [node, node]
    return node


class FakeRolloutTrajectory:
    """Pickled as imitation's P2 NamedTuple `imitation.util.rollout.Trajectory(acts, obs, rews, infos)`."""

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return (FakeRolloutTrajectory, self.args)


def write_p2_pickle(path: Path, infos: list[Any]) -> Path:
    """A P2 trajectory pickle, the class renamed to imitation's in the GLOBAL opcode."""
    trajectory = FakeRolloutTrajectory(
        np.zeros(len(infos), dtype=np.int64), np.zeros((len(infos) + 1, 2), np.float32), np.ones(len(infos), np.float32), infos
    )
    data = pickle.dumps([trajectory], protocol=2)
    here = f"{FakeRolloutTrajectory.__module__}\n{FakeRolloutTrajectory.__qualname__}\n".encode()
    assert here in data
    path.write_bytes(data.replace(here, b"imitation.util.rollout\nTrajectory\n"))
    return path


def write_hf_dir(path: Path, infos: list[list[str]] | None = None) -> Path:
    """What imitation 1.0.1's `serialize.save` writes (Dataset.from_dict(...).save_to_disk)."""
    dataset_class = importlib.import_module("datasets").Dataset  # by name: the repo's datasets/ shadows it for mypy
    n = 3
    dataset_class.from_dict(
        {
            "obs": [np.arange(10, dtype=np.float32).reshape(5, 2)] * n,
            "acts": [np.array([0, 1, 0, 1])] * n,
            "infos": infos or [["{}"] * 4] * n,
            "terminal": [True] * n,
            "rews": [np.ones(4, dtype=np.float32)] * n,
        }
    ).save_to_disk(str(path))
    return path


def write_d3rlpy_dump(path: Path, *, obs_dtype: str = "<f4", acts_dtype: str = "<i8") -> Path:
    """A one-episode dump as d3rlpy writes it (terminated, 3 steps)."""
    with h5py.File(path, "w") as h5:
        h5.create_dataset("columns", data=["observations", "actions", "rewards", "terminated"])
        h5.create_dataset("num_episodes", data=1)
        h5.create_dataset("version", data="2.1")
        h5.create_dataset("observations_0", data=np.arange(6).reshape(3, 2).astype(obs_dtype))
        h5.create_dataset("actions_0", data=np.array([[0], [1], [2]], dtype=acts_dtype))
        h5.create_dataset("rewards_0", data=np.ones((3, 1), dtype="<f4"))
        h5.create_dataset("terminated_0", data=True)
    return path


# ----------------------------------------------------------------------------- crashes


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hf_dir(tmp_path_factory.mktemp("hf") / "hf")


def corrupt_acts_offsets(folder: Path, offsets: list[int]) -> None:
    """Overwrite the offsets buffer of the `acts` list column in the folder's Arrow stream."""
    file = next(folder.glob("data-*.arrow"))
    data = bytearray(file.read_bytes())
    buffer = pa.py_buffer(bytes(data))
    table = pa.ipc.open_stream(pa.BufferReader(buffer)).read_all()
    column_offsets = table.column("acts").chunk(0).buffers()[1]
    start = column_offsets.address - buffer.address  # zero-copy: the buffer lies inside `data`
    assert column_offsets.size == 4 * len(offsets)
    data[start : start + column_offsets.size] = np.array(offsets, dtype=np.int32).tobytes()
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("offsets", [[0, 4, 10**9, 2 * 10**9], [0, 8, 4, 12]], ids=["out-of-range", "decreasing"])
def test_arrow_offsets_out_of_range_are_one_line_errors(tmp_path: Path, hf_dir: Path, offsets: list[int]) -> None:
    import shutil

    src = tmp_path / "hf"
    shutil.copytree(hf_dir, src)
    corrupt_acts_offsets(src, offsets)
    with pytest.raises(DataError, match="corrupted Arrow stream") as caught:
        read_source(src)
    assert Path(str(caught.value.subject)).parent == src
    if offsets[1] == 4:
        assert_cli_refuses(src, tmp_path, "corrupted Arrow stream", "data-")


def test_uncorrupted_hf_dir_still_reads(hf_dir: Path) -> None:
    batch = read_source(hf_dir).batch
    assert batch.lengths.tolist() == [4, 4, 4]


# ----------------------------------------------------------------------------- hangs


def test_infos_sharing_one_list_many_times_are_refused_npz(tmp_path: Path) -> None:
    infos = object_steps([{}, {}, {}, {}, {"bomb": shared_reference_bomb()}])
    src = write_npz(tmp_path / "bomb.npz", infos=infos)
    assert src.stat().st_size < 10_000  # 2**40 elements once expanded
    with pytest.raises(DataError, match="infos expand to more than"):
        read_source(src)
    assert_cli_refuses(src, tmp_path, "infos expand to more than")


def test_infos_sharing_one_list_many_times_are_refused_pickle(tmp_path: Path) -> None:
    src = write_p2_pickle(tmp_path / "bomb.pkl", [{}, {"bomb": shared_reference_bomb()}])
    assert src.stat().st_size < 10_000
    with pytest.raises(DataError, match="infos expand to more than"):
        read_source(src)


def test_ordinary_infos_in_pickle_and_npz_are_kept(tmp_path: Path) -> None:
    infos = [{"step": 0, "x": np.float32(1.5)}, {"step": 1, "TimeLimit.truncated": True}]
    batch = read_source(write_p2_pickle(tmp_path / "ok.pkl", infos)).batch
    assert batch.infos == [{"step": 0, "x": 1.5}, {"step": 1, "TimeLimit.truncated": True}]
    assert batch.truncated.tolist() == [True]
    shared = [1, 2]  # shared by reference, but small: fine
    npz_infos = object_steps([{"s": shared}] * 5)
    assert read_source(write_npz(tmp_path / "ok.npz", infos=npz_infos)).batch.infos == [{"s": [1, 2]}] * 5


def test_in_memory_infos_sharing_lists_are_refused_by_save(tmp_path: Path) -> None:
    episodes = make_episodes([2])
    episodes[0].infos = [{}, {"bomb": shared_reference_bomb()}]
    with pytest.raises(DataError, match="infos expand to more than"):
        ildata.save(episodes, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_named_pipe_source_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "demos.pkl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_source(fifo)
    assert_cli_refuses(fifo, tmp_path, "not a regular file")


def test_named_pipe_inside_hf_folder_is_refused(tmp_path: Path, hf_dir: Path) -> None:
    import shutil

    src = tmp_path / "hf"
    shutil.copytree(hf_dir, src)
    data = next(src.glob("data-*.arrow"))
    data.unlink()
    os.mkfifo(data)
    with pytest.raises(DataError, match="not a regular file") as caught:
        read_source(src)
    assert caught.value.subject == data


# ----------------------------------------------------------------------------- dtypes


UNSTORABLE = ["<c8", "<U3", "|V4", "<M8[s]", "<m8[s]", "|O", "<f16"]


@pytest.mark.parametrize("dtype", UNSTORABLE)
def test_unstorable_obs_dtype_is_a_one_line_error(tmp_path: Path, dtype: str) -> None:
    obs = np.zeros((7, 2), dtype=dtype)
    if dtype == "|O":
        obs[:] = 1.0
    src = write_npz(tmp_path / "x.npz", obs=obs)
    with pytest.raises(DataError, match=r"^obs has dtype .*no store column can hold"):
        read_source(src)


@pytest.mark.parametrize("descr", ["|V0", "|S0"])
def test_zero_width_dtypes_are_one_line_errors(tmp_path: Path, descr: str) -> None:
    src = write_npz(tmp_path / "x.npz", raw={"acts": npy_header_only(descr, (5,))})
    with pytest.raises(DataError, match=rf"^acts has dtype \{descr}"):
        read_source(src)


def test_structured_dtype_through_the_cli(tmp_path: Path) -> None:
    src = write_npz(tmp_path / "structured.npz", acts=np.zeros(5, dtype=[("a", "<f4"), ("b", "<i4")]))
    with pytest.raises(DataError, match="acts has dtype"):
        read_source(src)
    assert_cli_refuses(src, tmp_path, "acts has dtype", "no store column can hold")


def test_unstorable_dtype_in_pickle_and_save(tmp_path: Path) -> None:
    src = tmp_path / "p0.pkl"
    with open(src, "wb") as f:
        pickle.dump([{"obs": np.zeros((3, 2), np.complex64), "act": np.zeros(2, np.int64)}], f, protocol=4)
    with pytest.raises(DataError, match="obs has dtype <c8"):
        read_source(src)
    episodes = make_episodes([2, 3], obs_dtype=np.complex128)
    with pytest.raises(DataError, match="obs has dtype <c16"):
        ildata.save(episodes, tmp_path / "store")
    episodes = make_episodes([2, 3], rewards=False)
    for episode in episodes:
        episode.rews = np.array(["a"] * len(episode))
    with pytest.raises(DataError, match="rews has dtype <U1"):
        ildata.save(episodes, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_big_endian_arrays_become_native(tmp_path: Path) -> None:
    obs = np.arange(14, dtype=">f4").reshape(7, 2)
    batch = read_source(write_npz(tmp_path / "be.npz", obs=obs, acts=np.array([0, 1, 0, 1, 1], dtype=">i8"))).batch
    assert isinstance(batch.obs, np.ndarray)
    assert batch.obs.dtype == np.dtype("<f4") and batch.acts.dtype == np.dtype("<i8")
    np.testing.assert_array_equal(batch.obs, obs)

    dump = write_d3rlpy_dump(tmp_path / "be.h5", obs_dtype=">f4", acts_dtype=">i8")
    batch = read_source(dump).batch
    assert isinstance(batch.obs, np.ndarray)
    assert batch.obs.dtype == np.dtype("<f4") and batch.acts.dtype == np.dtype("<i8")
    assert batch.acts.tolist() == [0, 1, 2]

    episodes = make_episodes([2, 3], obs_dtype=np.float64)
    for episode in episodes:
        episode.obs = np.asarray(episode.obs).astype(">f8")
    ds = ildata.save(episodes, tmp_path / "store")
    assert ds[0].obs.dtype == np.dtype("<f8")  # type: ignore[union-attr]
    out = tmp_path / "converted"
    result = run_cli("convert", str(dump), str(out))
    assert result.returncode == 0, result.stderr


def test_uint64_actions(tmp_path: Path) -> None:
    batch = read_source(write_npz(tmp_path / "fits.npz", acts=np.array([0, 1, 0, 1, 2], dtype=np.uint64))).batch
    assert batch.acts.dtype == np.int64 and batch.acts.tolist() == [0, 1, 0, 1, 2]
    too_big = np.array([0, 1, 0, 1, 2**63], dtype=np.uint64)
    with pytest.raises(DataError, match="acts has uint64 values up to 9223372036854775808, beyond int64"):
        read_source(write_npz(tmp_path / "big.npz", acts=too_big))
    # Observations keep uint64 (a store column holds it).
    assert normalise_dtype("obs", np.array([2**64 - 1], dtype=np.uint64)).dtype == np.uint64


def test_episode_batch_checks_dtypes_in_one_place() -> None:
    obs: Obs = {"a": np.zeros((3, 2), ">f4"), "b": {"c": np.zeros((3,), "<U2")}}
    yes, no = np.array([True]), np.array([False])
    with pytest.raises(DataError, match=r"^obs\.b\.c has dtype <U2"):
        EpisodeBatch(obs=obs, acts=np.zeros(2), lengths=np.array([2]), terminated=yes, truncated=no, termination_known=yes)


def test_deeply_nested_infos_are_one_line_errors(tmp_path: Path) -> None:
    deep_json = "[" * 100_000 + "]" * 100_000
    src = write_hf_dir(tmp_path / "hf", infos=[["{}"] * 3 + [deep_json]] * 3)
    with pytest.raises(DataError, match="nested too deeply"):
        read_source(src)
    assert_cli_refuses(src, tmp_path, "nested too deeply")

    nested: list[Any] = []
    for _ in range(MAX_INFO_DEPTH + 50):
        nested = [nested]
    with pytest.raises(DataError, match=f"infos nested deeper than {MAX_INFO_DEPTH} levels"):
        read_source(write_npz(tmp_path / "deep.npz", infos=object_steps([{}, {}, {}, {}, {"deep": nested}])))


# ----------------------------------------------------------------------------- escapes


def _point_state_json(folder: Path, *filenames: str) -> None:
    state_file = folder / "state.json"
    state = json.loads(state_file.read_text())
    state["_data_files"] = [{"filename": name} for name in filenames]
    state_file.write_text(json.dumps(state))


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink", "unlisted-symlink"])
def test_state_json_cannot_point_outside_the_dataset(tmp_path: Path, hf_dir: Path, where: str) -> None:
    import shutil

    src = tmp_path / "hf"
    shutil.copytree(hf_dir, src)
    outside = tmp_path / "outside.arrow"
    shutil.copy(next(src.glob("data-*.arrow")), outside)  # readable, were it followed
    if where == "parent":
        _point_state_json(src, "../outside.arrow")
    elif where == "absolute":
        _point_state_json(src, str(outside))
    elif where == "symlink":
        (src / "data-link.arrow").symlink_to(outside)
        _point_state_json(src, "data-link.arrow")
    else:  # state.json lists no file: the shards are found by name, and may not lead out either
        (src / "data-link.arrow").symlink_to(outside)
        _point_state_json(src)
    with pytest.raises(DataError, match="outside the dataset folder"):
        read_source(src)
    if where == "parent":
        assert_cli_refuses(src, tmp_path, "outside the dataset folder", "../outside.arrow")


def _replace_actions(dump: Path, tmp_path: Path, how: str) -> None:
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as h5:
        h5.create_dataset("actions_0", data=np.array([[0], [1], [2]], dtype="<i8"))
    raw = tmp_path / "actions.raw"
    raw.write_bytes(np.array([0, 1, 2], dtype="<i8").tobytes())
    with h5py.File(dump, "a") as h5:
        del h5["actions_0"]
        if how == "external-link":
            h5["actions_0"] = h5py.ExternalLink(str(outside), "/actions_0")
        elif how == "soft-link":
            h5["actions_0"] = h5py.SoftLink("/elsewhere")
        elif how == "external-dataset":
            h5.create_dataset("actions_0", shape=(3, 1), dtype="<i8", external=[(str(raw), 0, 24)])
        else:
            layout = h5py.VirtualLayout(shape=(3, 1), dtype="<i8")
            layout[:] = h5py.VirtualSource(str(outside), "actions_0", shape=(3, 1))
            h5.create_virtual_dataset("actions_0", layout)


@pytest.mark.parametrize(
    "how,message",
    [
        ("external-link", "external link"),
        ("soft-link", "soft link"),
        ("external-dataset", "stored in other files"),
        ("virtual-dataset", "stored in other files"),
    ],
)
def test_hdf5_links_out_of_the_file_are_refused(tmp_path: Path, how: str, message: str) -> None:
    dump = write_d3rlpy_dump(tmp_path / "dump.h5")
    assert read_source(dump).batch.acts.tolist() == [0, 1, 2]
    _replace_actions(dump, tmp_path, how)
    with pytest.raises(DataError, match=rf"actions_0 is .*{message}.*refused"):
        read_source(dump)
    if how == "external-link":
        assert_cli_refuses(dump, tmp_path, "external link")


# ----------------------------------------------------------------------------- registries, writers


def test_readers_and_writers_are_registries() -> None:
    assert isinstance(READERS, Registry) and isinstance(WRITERS, Registry)
    assert READERS.names() == ["store_dir", "imitation_hf", "minari_dir", "d3rlpy_h5", "imitation_npz", "imitation_pickle"]
    assert READERS.get("minari_dir").__name__ == "ildata.formats.minari_dir"
    assert WRITERS.names() == ["minari", "d3rlpy", "imitation"]


def test_writers_are_atomic_and_refuse_existing_destinations(tmp_path: Path) -> None:
    ds = ildata.save(make_episodes([2, 3], act_dim=None), tmp_path / "store")
    dump, hf = tmp_path / "out.h5", tmp_path / "hf"
    d3rlpy_h5.write(ds, dump)
    imitation_hf.write(ds, hf)
    before = sorted(p.name for p in tmp_path.iterdir())
    for write, dst in ((d3rlpy_h5.write, dump), (imitation_hf.write, hf)):
        with pytest.raises(DataError, match="already exists") as caught:
            write(ds, dst)
        assert str(caught.value) == ALREADY_EXISTS and caught.value.subject == dst
    WRITERS.get("d3rlpy")(ds, dump, overwrite=True)
    imitation_hf.write(ds, hf, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary left beside them
    assert read_source(hf).batch.lengths.tolist() == [2, 3]
    assert read_source(dump).batch.lengths.tolist() == [2, 3]
