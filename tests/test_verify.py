"""Damaged stores are refused with one-line DataErrors (load, `ds.verify()`, `ildata verify`),
never accepted silently and never a crash. Every test damages a real store it wrote itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import DATASETS, make_episodes, run_cli

import ildata
from ildata.episode import DataError
from ildata.store import verify_store


def _store(tmp_path: Path, **kwargs: object) -> Path:
    path = tmp_path / "ds"
    ildata.save(make_episodes(**kwargs), path)  # type: ignore[arg-type]
    return path


def _read_everything(path: Path) -> None:
    ds = ildata.load(path)
    for episode in ds:
        assert episode.obs is not None
    ds.to_batch()


def _info(path: Path) -> dict:
    return json.loads((path / "meta/info.json").read_text())


def _write_info(path: Path, info: dict) -> None:
    (path / "meta/info.json").write_text(json.dumps(info))


def _assert_cli_refuses(path: Path, *, lines: int | None = 1) -> list[str]:
    done = run_cli("verify", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    out = done.stderr.strip().splitlines()
    assert all(line.startswith(f"ildata: error: {path}: ") for line in out), out
    if lines is not None:
        assert len(out) == lines, out
    return out


def test_sound_store_verifies(tmp_path: Path) -> None:
    path = _store(tmp_path, infos=True, seeds=True)
    ds = ildata.load(path, verify=True)
    assert ds.verify() == [] and verify_store(path) == []
    assert ds.select([2, 0]).verify() == []  # a subset verifies its whole store
    done = run_cli("verify", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"{path}: OK: 4 episodes, {ds.num_transitions} transitions in 1 shard(s), fingerprint {ds.fingerprint}"
    ]


def test_dict_observations_and_parquet_shards_verify(tmp_path: Path) -> None:
    ildata.save(make_episodes(dict_obs=True, act_dim=None), tmp_path / "dict")
    ildata.save(make_episodes(), tmp_path / "pq", data_format="parquet")
    assert verify_store(tmp_path / "dict") == []
    assert verify_store(tmp_path / "pq") == []


def _infos_offsets_position(shard: Path) -> tuple[int, int]:
    """Byte position and length of the infos column's offsets buffer inside the shard file."""
    data = pa.py_buffer(shard.read_bytes())
    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    offsets = table.column("infos").chunk(0).buffers()[1]
    return offsets.address - data.address, offsets.size


def test_corrupted_string_offsets_are_an_error_not_a_crash(tmp_path: Path) -> None:
    path = _store(tmp_path, infos=True)
    shard = path / "data/shard-00000.arrow"
    start, size = _infos_offsets_position(shard)
    raw = bytearray(shard.read_bytes())
    # Offsets of rows 3..: far past the end of the character data (int64 offsets).
    raw[start + 3 * 8 : start + size] = np.full((size - 3 * 8) // 8, 1 << 40, dtype=np.int64).tobytes()
    shard.write_bytes(bytes(raw))
    # Reading every episode's infos in a fresh process: a segfault would show as a signal.
    code = (
        "import sys, ildata\nfrom ildata.episode import DataError\n"
        f"try:\n    ds = ildata.load({str(path)!r}); [ds[i] for i in range(len(ds))]\n"
        "except DataError as exc:\n    print('DataError', exc); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "corrupted" in done.stdout
    with pytest.raises(DataError, match="corrupted"):
        _read_everything(path)
    with pytest.raises(DataError, match="corrupted"):
        ildata.load(path, verify=True)
    _assert_cli_refuses(path)


def test_truncated_shard(tmp_path: Path) -> None:
    path = _store(tmp_path)
    shard = path / "data/shard-00000.arrow"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupted data") as info:
        ildata.load(path)
    assert info.value.subject == shard
    (line,) = _assert_cli_refuses(path)
    assert "data/shard-00000.arrow: corrupted data" in line


def test_edited_episode_lengths(tmp_path: Path) -> None:
    path = _store(tmp_path)
    table = pq.read_table(path / "meta/episodes.parquet")
    lengths = table.column("length").to_numpy().copy()
    lengths[1] += 1
    pq.write_table(table.set_column(1, "length", pa.array(lengths)), path / "meta/episodes.parquet")
    with pytest.raises(DataError, match="first_row of episode 2"):
        ildata.load(path)
    problems = verify_store(path)
    assert any("first_row of episode 2" in p for p in problems)
    _assert_cli_refuses(path, lines=None)


def test_episode_table_consistent_with_itself_but_not_the_data(tmp_path: Path) -> None:
    """Lengths swapped and first_row recomputed: the structure holds, the content does not."""
    path = _store(tmp_path, lengths=(4, 6, 3, 5))
    table = pq.read_table(path / "meta/episodes.parquet")
    lengths = np.array([6, 4, 3, 5])
    table = table.set_column(1, "length", pa.array(lengths)).set_column(6, "first_row", pa.array(np.cumsum(lengths) - lengths))
    pq.write_table(table, path / "meta/episodes.parquet")
    ildata.load(path)  # cheap checks pass: this needs the data
    with pytest.raises(DataError):
        ildata.load(path, verify=True)
    problems = ildata.load(path).verify()
    assert any("fingerprint" in p and "meta/episodes.parquet" in p for p in problems)
    assert any("episode_index of row 4" in p for p in problems)
    assert any("terminated" in p for p in problems)
    assert any("return of episode 0" in p for p in problems)
    with pytest.raises(DataError, match="fingerprint"):
        ildata.load(path).verify(raise_errors=True)
    lines = _assert_cli_refuses(path, lines=len(problems))
    assert len(lines) >= 4


def test_changed_totals(tmp_path: Path) -> None:
    path = _store(tmp_path)
    info = _info(path)
    info["totals"]["transitions"] += 1
    _write_info(path, info)
    with pytest.raises(DataError, match="rows in the shards but meta/info.json says"):
        ildata.load(path)
    _assert_cli_refuses(path, lines=None)


def test_info_json_damage(tmp_path: Path) -> None:
    path = _store(tmp_path)
    info = _info(path)
    for bad, match, lines in (
        ({**info, "totals": {"episodes": "4"}}, "totals", 1),
        ({**info, "features": {**info["features"], "obs": {"dtype": "float64", "shape": [3]}}}, "column 'obs' is", 2),  # obs, next_obs
        ({**info, "has_rewards": "yes"}, "has_rewards", 1),
        ({**info, "format_version": 99}, "unsupported format", 1),
    ):
        _write_info(path, bad)
        with pytest.raises(DataError, match=match):
            ildata.load(path)
        _assert_cli_refuses(path, lines=lines)
    (path / "meta/info.json").write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON"):
        ildata.load(path)
    _assert_cli_refuses(path)


@pytest.mark.parametrize("entry", ["../x.arrow", "/etc/passwd", "data/../../x.arrow"])
def test_data_files_outside_the_store(tmp_path: Path, entry: str) -> None:
    path = _store(tmp_path)
    (tmp_path / "x.arrow").write_bytes((path / "data/shard-00000.arrow").read_bytes())
    info = _info(path)
    info["data_files"] = [entry]
    _write_info(path, info)
    with pytest.raises(DataError, match="outside the dataset folder"):
        ildata.load(path)
    (line,) = _assert_cli_refuses(path)
    assert "meta/info.json: data_files entry" in line


def test_symlinked_shard_leading_out_is_refused(tmp_path: Path) -> None:
    path = _store(tmp_path)
    shard = path / "data/shard-00000.arrow"
    os.replace(shard, tmp_path / "elsewhere.arrow")
    shard.symlink_to(tmp_path / "elsewhere.arrow")
    with pytest.raises(DataError, match="resolves outside"):
        ildata.load(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_in_place_of_a_shard(tmp_path: Path) -> None:
    path = _store(tmp_path)
    shard = path / "data/shard-00000.arrow"
    shard.unlink()
    os.mkfifo(shard)
    with pytest.raises(DataError, match="not a regular file"):
        ildata.load(path)
    (line,) = _assert_cli_refuses(path)
    assert "not a regular file" in line


def test_changed_reward_is_found_by_the_full_check_only(tmp_path: Path) -> None:
    path = _store(tmp_path)
    ds = ildata.load(path)
    shard = path / "data/shard-00000.arrow"
    data = pa.py_buffer(shard.read_bytes())
    rews = pa.ipc.open_file(pa.BufferReader(data)).read_all().column("rews").chunk(0).buffers()[1]
    raw = bytearray(data.to_pybytes())
    position = rews.address - data.address
    raw[position : position + 4] = np.float32(1234.5).tobytes()
    del ds
    shard.write_bytes(bytes(raw))
    ildata.load(path)  # same structure
    problems = verify_store(path)
    assert len(problems) == 2, problems
    assert "data/shard-00000.arrow differ" in problems[0]
    assert "return of episode 0" in problems[1]
    with pytest.raises(DataError, match="fingerprint"):
        ildata.load(path, verify=True)
    _assert_cli_refuses(path, lines=2)


def test_out_of_space_actions(tmp_path: Path) -> None:
    """Data a hand-edited space no longer admits."""
    path = _store(tmp_path, act_dim=None, n_actions=3)
    info = _info(path)
    info["action_space"]["n"] = 1
    _write_info(path, info)
    problems = verify_store(path)
    assert problems and all("acts row" in p and "action_space" in p for p in problems)


def test_reading_a_store_imports_no_pandas_hub_or_parquet_module(tmp_path: Path) -> None:
    """What keeps a cold `ildata.load` fast (benchmarks/cold_start.py), and no store <-> hub cycle."""
    path = _store(tmp_path, infos=True)
    code = (
        "import sys, ildata\n"
        f"ds = ildata.load({str(path)!r}); ds.transitions(); ds[0]; ds.returns\n"
        "print(','.join(m for m in ('pandas', 'pyarrow.parquet', 'pyarrow.dataset', 'pyarrow.compute', 'ildata.hub', 'gymnasium') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


SHIPPED = sorted(p.parent.parent for p in DATASETS.glob("*/meta/info.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_datasets_verify(path: Path) -> None:
    """What the repo ships is valid under the current code (`ildata push` verifies before sending)."""
    assert verify_store(path) == []
    assert path.joinpath("COMMAND").is_file(), "every shipped dataset says how it was made"
