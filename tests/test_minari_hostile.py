"""Minari datasets that lie or attack: metadata that disagrees with the data, counts that would
make the reader loop for ever, HDF5 links and external/virtual datasets, files that are not
regular or lie outside the dataset, corrupted Arrow buffers and JSON. Each is one DataError
naming the file; through the CLI, one stderr line and exit 2. Also valid input that must be
accepted: infos with one row per step, as `minari.create_dataset_from_buffers` stores them."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import minari
import numpy as np
import pyarrow as pa
import pytest
from minari.data_collector import EpisodeBuffer
from support import run_cli

import ildata
from ildata.episode import DataError
from ildata.formats import minari_dir, read_source

BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
LENGTHS = (3, 5, 2)


@pytest.fixture()
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))  # inherited by run_cli's subprocess
    return root


def _buffers(*, reset_infos: bool | None = True) -> list[EpisodeBuffer]:
    """Small episodes; infos with T+1 rows (`reset_infos`), T rows (False), or none (None)."""
    rng = np.random.default_rng(0)
    buffers = []
    for i, n in enumerate(LENGTHS):
        infos = None
        if reset_infos is not None:
            rows = n + 1 if reset_infos else n
            infos = {"t": np.arange(rows) + 10 * i, "v": rng.normal(size=(rows, 2))}
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=5 + i,
                observations=rng.uniform(-1, 1, (n + 1, 3)).astype(np.float32),
                actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                rewards=list(rng.normal(size=n)),
                terminations=[False] * (n - 1) + [True],
                truncations=[False] * n,
                infos=infos,
            )
        )
    return buffers


def _create(root: Path, dataset_id: str, backend: str, buffers: list[EpisodeBuffer] | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari warns about every missing author/description field
        minari.create_dataset_from_buffers(dataset_id, buffers or _buffers(), observation_space=BOX, action_space=ACTS, data_format=backend)
    return root / dataset_id


def _edit_json(path: Path, **changes: Any) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def _refused(path: Path, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as excinfo:
        read_source(path)
    assert "\n" not in str(excinfo.value)
    return excinfo.value


def _assert_cli_refuses(src: Path, tmp_path: Path, *needles: str) -> str:
    """`ildata convert src dst`: exit 2, one stderr line, no traceback, nothing written."""
    dst = tmp_path / "out"
    result = run_cli("convert", str(src), str(dst))
    err = result.stderr.strip()
    assert result.returncode == 2, result.stderr
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("ildata: error:")
    for needle in needles:
        assert needle in err
    assert not dst.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    return err


# --------------------------------------------------------------------------- valid input accepted


def test_step_infos_from_create_dataset_from_buffers_are_read(minari_root: Path) -> None:
    """Buffers with one info per step (no reset() info): minari's hdf5 backend stores and loads
    T rows per episode."""
    buffers = _buffers(reset_infos=False)
    folder = _create(minari_root, "ok/steps-hdf5-v0", "hdf5", buffers)
    loaded = list(minari.load_dataset("ok/steps-hdf5-v0").iterate_episodes())
    assert [len(ep.infos["t"]) for ep in loaded] == list(LENGTHS)
    source = read_source(folder)
    assert source.batch.infos == [
        {"t": int(b.infos["t"][k]), "v": b.infos["v"][k].tolist()} for b in buffers for k in range(len(b.rewards))
    ]
    assert not any("reset" in note for note in source.notes)


def test_step_and_observation_infos_mixed_per_episode(minari_root: Path) -> None:
    """Each episode is judged on its own: T+1 rows drop the reset() row, T rows are all steps."""
    with_reset, steps_only = _buffers(reset_infos=True), _buffers(reset_infos=False)
    buffers = [with_reset[0], steps_only[1], with_reset[2]]
    folder = _create(minari_root, "ok/mixed-v0", "hdf5", buffers)
    infos = read_source(folder).batch.infos
    assert infos is not None
    expected = [int(t) for b, first in zip(buffers, (1, 0, 1)) for t in b.infos["t"][first:]]
    assert [info["t"] for info in infos] == expected  # type: ignore[index]


def test_arrow_backend_cannot_hold_step_infos(minari_root: Path) -> None:
    """Why the arrow/parquet backends only ever hold T+1 info rows: minari writes one table per
    episode with one row per observation, so it refuses buffers with T infos itself."""
    with pytest.raises(ValueError, match="not all the same length"):
        _create(minari_root, "ok/steps-arrow-v0", "arrow", _buffers(reset_infos=False))
    folder = _create(minari_root, "ok/obs-arrow-v0", "arrow", _buffers(reset_infos=True))
    infos = read_source(folder).batch.infos
    assert infos is not None and [info["t"] for info in infos][:3] == [1, 2, 3]  # type: ignore[index]


def test_wrong_info_row_count_is_refused(minari_root: Path) -> None:
    folder = _create(minari_root, "bad/inforows-v0", "hdf5")
    with h5py.File(folder / "data" / "main_data.hdf5", "r+") as h5:
        for key in ("t", "v"):
            values = h5[f"episode_1/infos/{key}"][()]
            del h5[f"episode_1/infos/{key}"]
            h5[f"episode_1/infos/{key}"] = values[:2]
    _refused(folder, "episode 1 has 2 info rows for 5 steps")


# --------------------------------------------------------------------------- metadata vs data


@pytest.mark.parametrize("backend", ["arrow", "hdf5"])
def test_total_steps_must_match_the_data(minari_root: Path, backend: str) -> None:
    folder = _create(minari_root, f"bad/steps-{backend}-v0", backend)
    meta = folder / "data" / "metadata.json"
    _edit_json(meta, total_steps=999)
    error = _refused(folder, f"total_steps is 999 but the episodes hold {sum(LENGTHS)}")
    assert error.subject == meta


@pytest.mark.parametrize("backend", ["arrow", "parquet", "hdf5"])
def test_huge_total_episodes_fails_at_once(minari_root: Path, backend: str) -> None:
    """10**7 declared episodes against 3 on disk: the reader lists what exists and compares
    before any loop runs over the declared count."""
    folder = _create(minari_root, f"bad/count-{backend}-v0", backend)
    _edit_json(folder / "data" / "metadata.json", total_episodes=10**7)
    error = _refused(folder, "total_episodes is 10000000 but the data holds 3 episodes")
    assert "is missing" in str(error)
    _edit_json(folder / "data" / "metadata.json", total_episodes=2)
    _refused(folder, r"total_episodes is 2 but the data holds 3 episodes \((episode folder |group episode_)2 is extra\)")
    _edit_json(folder / "data" / "metadata.json", total_episodes="3")
    _refused(folder, "total_episodes is '3', not an integer")


@pytest.mark.parametrize("backend", ["arrow", "hdf5"])
def test_spaces_must_match_the_data(minari_root: Path, backend: str) -> None:
    from minari.serialization import serialize_space

    folder = _create(minari_root, f"bad/space-{backend}-v0", backend)
    meta = folder / "data" / "metadata.json"
    _edit_json(meta, observation_space=serialize_space(gym.spaces.Box(-1, 1, (4,), np.float32)))
    _refused(folder, "observations .*(4,)")
    # float32 data in a float16 Box does not fit (gymnasium's own `contains` rule)
    _edit_json(meta, observation_space=serialize_space(gym.spaces.Box(-1, 1, (3,), np.float16)))
    _refused(folder, "observations has dtype float32 but the space declares float16")
    _edit_json(meta, observation_space=serialize_space(BOX), action_space=serialize_space(gym.spaces.Discrete(3)))
    _refused(folder, "actions .*(2,)|actions holds 2 values per row")
    _edit_json(meta, action_space=serialize_space(gym.spaces.MultiDiscrete([3, 3])))
    _refused(folder, "actions has dtype float32 but the space declares int64")
    _edit_json(meta, action_space=serialize_space(ACTS))
    assert read_source(folder).batch.num_transitions == sum(LENGTHS)


def test_arrow_episode_metadata_must_match_the_episode(minari_root: Path) -> None:
    folder = _create(minari_root, "bad/epmeta-v0", "arrow")
    episode_meta = folder / "data" / "1" / "metadata.json"
    _edit_json(episode_meta, total_steps=7)
    error = _refused(folder, "total_steps is 7 but episode 1's data holds 5 steps")
    assert error.subject == episode_meta
    _edit_json(episode_meta, total_steps=5, id=2)
    _refused(folder, "id is 2 but this is episode 1")


def test_hdf5_episode_attributes_must_match_the_episode(minari_root: Path) -> None:
    folder = _create(minari_root, "bad/epattrs-v0", "hdf5")
    with h5py.File(folder / "data" / "main_data.hdf5", "r+") as h5:
        h5["episode_2"].attrs["total_steps"] = 9
    error = _refused(folder, "total_steps is 9 but episode 2's data holds 2 steps")
    assert error.subject == folder / "data" / "main_data.hdf5"


# --------------------------------------------------------------------------- corrupt metadata.json


def test_invalid_and_deeply_nested_metadata_json(minari_root: Path, tmp_path: Path) -> None:
    folder = _create(minari_root, "bad/json-v0", "arrow")
    meta = folder / "data" / "metadata.json"
    original = meta.read_text()
    meta.write_text(original[:-5])
    assert minari_dir.sniff(folder)  # data/metadata.json is Minari's: the reader says what is wrong
    assert _refused(folder, "not valid JSON").subject == meta
    meta.write_text("[" * 100_000 + "]" * 100_000)
    assert _refused(folder, "nested too deeply").subject == meta
    _assert_cli_refuses(folder, tmp_path, "metadata.json", "nested too deeply")
    meta.write_text(original)
    episode_meta = folder / "data" / "0" / "metadata.json"
    episode_meta.write_text('{"id": ' * 50_000)
    assert _refused(folder, "nested too deeply|not valid JSON").subject == episode_meta
    episode_meta.write_text('{"id": 0, "total_steps": 3, "seed": "x"}')
    _refused(folder, "seed is 'x'")


def test_metadata_json_outside_the_dataset_is_not_read(minari_root: Path, tmp_path: Path) -> None:
    folder = _create(minari_root, "bad/meta-link-v0", "arrow")
    meta = folder / "data" / "metadata.json"
    elsewhere = tmp_path / "elsewhere.json"
    shutil.move(meta, elsewhere)
    meta.symlink_to(elsewhere)
    assert minari_dir.sniff(folder)
    _refused(folder, "metadata.json.*outside the dataset folder")


def test_deeply_nested_space_is_refused(minari_root: Path) -> None:
    folder = _create(minari_root, "bad/space-json-v0", "hdf5")
    space = '{"type": "Dict", "subspaces": {"a": ' * 5000 + "{}" + "}}" * 5000
    _edit_json(folder / "data" / "metadata.json", observation_space=space)
    _refused(folder, "nested too deeply|cannot read space")


# --------------------------------------------------------------------------- files and links


def test_hdf5_external_links_and_datasets_are_not_followed(minari_root: Path, tmp_path: Path) -> None:
    base = _create(minari_root, "bad/h5-v0", "hdf5")
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as h5:
        h5["rewards"] = np.ones(5)
    raw = tmp_path / "secret.bin"
    np.ones(5).tofile(raw)

    def variant(name: str) -> tuple[Path, h5py.File]:
        folder = tmp_path / name
        shutil.copytree(base, folder)
        return folder, h5py.File(folder / "data" / "main_data.hdf5", "r+")

    folder, h5 = variant("external-link")
    with h5:
        del h5["episode_1/rewards"]
        h5["episode_1/rewards"] = h5py.ExternalLink(str(secret), "/rewards")
    assert _refused(folder, "episode_1/rewards is an HDF5 external link").subject == folder / "data" / "main_data.hdf5"

    folder, h5 = variant("soft-link")
    with h5:
        h5["episode_1/infos/loop"] = h5py.SoftLink("/episode_1/infos")
    _refused(folder, "episode_1/infos/loop is an HDF5 soft link")

    folder, h5 = variant("external-dataset")
    with h5:
        del h5["episode_1/rewards"]
        h5.create_dataset("episode_1/rewards", shape=(5,), dtype=np.float64, external=[(str(raw), 0, 40)])
    _refused(folder, "episode_1/rewards is stored in other files")

    folder, h5 = variant("virtual-dataset")
    with h5:
        layout = h5py.VirtualLayout(shape=(5,), dtype=np.float64)
        layout[:] = h5py.VirtualSource(str(secret), "rewards", shape=(5,))
        del h5["episode_1/rewards"]
        h5["episode_1"].create_virtual_dataset("rewards", layout)
    _refused(folder, "episode_1/rewards is stored in other files")
    _assert_cli_refuses(folder, tmp_path, "main_data.hdf5", "external or virtual")


def test_episode_files_must_be_regular_and_inside(minari_root: Path, tmp_path: Path) -> None:
    base = _create(minari_root, "bad/files-v0", "arrow")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(base / "data" / "1" / "part-0.arrow", outside / "part-0.arrow")

    fifo = tmp_path / "fifo"
    shutil.copytree(base, fifo)
    (fifo / "data" / "1" / "part-0.arrow").unlink()
    os.mkfifo(fifo / "data" / "1" / "part-0.arrow")
    assert _refused(fifo, "not a regular file").subject == fifo / "data" / "1" / "part-0.arrow"

    link = tmp_path / "link"
    shutil.copytree(base, link)
    (link / "data" / "1" / "part-0.arrow").unlink()
    (link / "data" / "1" / "part-0.arrow").symlink_to(outside / "part-0.arrow")
    _refused(link, "outside the dataset folder")

    folder_link = tmp_path / "folder-link"
    shutil.copytree(base, folder_link)
    shutil.rmtree(folder_link / "data" / "1")
    (folder_link / "data" / "1").symlink_to(outside)
    _refused(folder_link, "outside the dataset folder")

    h5_fifo = _create(minari_root, "bad/h5fifo-v0", "hdf5")
    (h5_fifo / "data" / "main_data.hdf5").unlink()
    os.mkfifo(h5_fifo / "data" / "main_data.hdf5")
    _refused(h5_fifo, "not a regular file")


def _corrupt_offsets(part: Path) -> None:
    """Rewrite an episode file with an info string column whose offsets point far out of its
    data buffer: reading it unvalidated would touch memory outside the file."""
    with pa.memory_map(str(part)) as source:
        table = pa.ipc.open_file(source).read_all()
    n = table.num_rows
    chars = pa.py_buffer(b"ab" * n)
    offsets = np.arange(n + 1, dtype=np.int32) * 2
    offsets[1] = 1 << 30  # past the data; only full validation looks at offsets between the ends
    offsets = pa.py_buffer(offsets.tobytes())
    names = pa.Array.from_buffers(pa.string(), n, [None, offsets, chars])
    infos = table.column("infos").combine_chunks()
    fields = [infos.field(i) for i in range(infos.type.num_fields)] + [names]
    infos = pa.StructArray.from_arrays(fields, names=[f.name for f in infos.type] + ["name"])
    table = table.set_column(table.column_names.index("infos"), "infos", infos)
    with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def test_corrupted_arrow_offsets_are_one_line_not_a_crash(minari_root: Path, tmp_path: Path) -> None:
    folder = _create(minari_root, "bad/offsets-v0", "arrow")
    for i in range(len(LENGTHS)):
        _corrupt_offsets(folder / "data" / str(i) / "part-0.arrow")
    # In a subprocess: without full validation this would read out of bounds (or segfault).
    err = _assert_cli_refuses(folder, tmp_path, "part-0.arrow", "corrupted arrow file", "offset")
    assert str(folder / "data") in err


def test_cli_refuses_minari_spec_with_lying_count(minari_root: Path, tmp_path: Path) -> None:
    folder = _create(minari_root, "bad/cli-v0", "parquet")
    _edit_json(folder / "data" / "metadata.json", total_episodes=10**7)
    dst = tmp_path / "out"
    result = run_cli("convert", "minari:bad/cli-v0", str(dst))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "total_episodes is 10000000 but the data holds 3 episodes" in result.stderr
    assert "Traceback" not in result.stderr and not dst.exists()


# --------------------------------------------------------------------------- writer


def test_writer_leaves_nothing_behind_on_failure(minari_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ildata.formats.minari import arrow_backend

    ds = ildata.convert(_create(minari_root, "ok/src-v0", "arrow"), tmp_path / "store")
    assert isinstance(ds, ildata.TrajectoryDataset)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    dst = tmp_path / "export" / "half-v0"
    with monkeypatch.context() as patch:
        patch.setattr(arrow_backend, "write", fail)
        with pytest.raises(OSError, match="disk full"):
            minari_dir.write(ds, dst)
    assert list((tmp_path / "export").iterdir()) == []
    minari_dir.write(ds, dst)
    with pytest.raises(DataError, match="already exists"):
        minari_dir.write(ds, dst)
    assert read_source(dst).batch.num_transitions == sum(LENGTHS)
