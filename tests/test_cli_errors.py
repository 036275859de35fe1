"""The CLI error rule, on files made here: an expected failure is one line on stderr and exit 2,
an unexpected one is one line naming the exception and exit 1 (`--debug` shows the traceback),
and convert never deletes, writes into or half-writes anything it should not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import LEGACY, REPO, make_episodes, run_cli

import ildata
import ildata.cli
import ildata.conversion

NPZ = LEGACY / "n1-cartpole-v1-final.npz"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (or `root` itself) by relative path, with its bytes."""
    if root.is_file():
        return {"": root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit 2 and exactly one non-empty line on stderr, starting `ildata: error:` (no traceback)."""
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith("\n") and done.stderr.count("\n") == 1, repr(done.stderr)
    line = done.stderr.rstrip("\n")
    assert line.startswith("ildata: error: "), line
    for part in parts:
        assert part in line, line
    return line


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A small store at tmp_path/parent/src (a folder source inside a folder)."""
    return ildata.save(make_episodes(), tmp_path / "parent" / "src").path


# ------------------------------------------------------------------ internal errors and --debug


def _boom(*args: object, **kwargs: object) -> None:
    raise ZeroDivisionError("boom")


def test_internal_error_is_one_line_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ildata.conversion, "convert", _boom)
    assert ildata.cli.main(["convert", str(NPZ), str(tmp_path / "out")]) == ildata.cli.EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err == "ildata: internal error: ZeroDivisionError: boom (rerun with --debug for the traceback)\n"
    with pytest.raises(ZeroDivisionError, match="boom"):
        ildata.cli.main(["--debug", "convert", str(NPZ), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def _run_with_broken_report(*args: str) -> subprocess.CompletedProcess[str]:
    """`ildata ARGS` in a fresh interpreter whose inspect report raises an unexpected error."""
    code = (
        "import sys, ildata.report, ildata.cli\n"
        "def broken(*a, **k): raise RuntimeError('report exploded')\n"
        "ildata.report.read_input = broken\n"
        "sys.exit(ildata.cli.main(sys.argv[1:]))\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_internal_error_exact_stderr_and_debug_traceback_in_subprocess():
    done = _run_with_broken_report("inspect", str(NPZ))
    assert done.returncode == 1
    assert done.stderr == "ildata: internal error: RuntimeError: report exploded (rerun with --debug for the traceback)\n"
    debug = _run_with_broken_report("--debug", "inspect", str(NPZ))
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().endswith("RuntimeError: report exploded")
    assert "internal error" not in debug.stderr


def test_data_error_with_debug_shows_the_traceback(tmp_path):
    done = run_cli("--debug", "convert", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" in done.stderr and "DataError" in done.stderr


def test_commands_come_from_the_registry():
    assert ildata.cli.REGISTRY.module_entries
    assert {"convert", "inspect"} <= set(ildata.cli.REGISTRY.names())
    parser = ildata.cli.build_parser()
    assert parser.parse_args(["inspect", "x"]).func is ildata.cli.REGISTRY.get("inspect").run


# ------------------------------------------------------------------ convert destination guards


def test_overwrite_of_a_folder_containing_the_source_is_refused(store):
    parent = store.parent
    before = snapshot(parent)
    done = run_cli("convert", str(store), str(parent), "--overwrite")
    assert_one_line_error(done, "contains the source")
    assert snapshot(parent) == before  # the source, byte for byte, and nothing added


def test_overwrite_of_a_folder_containing_a_source_file_is_refused(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    src = folder / "demos.npz"
    shutil.copyfile(NPZ, src)
    done = run_cli("convert", str(src), str(folder), "--overwrite")
    assert_one_line_error(done, "contains the source")
    assert src.read_bytes() == NPZ.read_bytes() and sorted(p.name for p in folder.iterdir()) == ["demos.npz"]


def test_overwrite_of_the_source_itself_is_refused(store):
    before = snapshot(store)
    for to in ("ildata", "d3rlpy"):
        assert_one_line_error(run_cli("convert", str(store), str(store), "--overwrite", "--to", to), "contains the source")
    assert snapshot(store) == before


def test_destination_inside_the_source_is_refused(store):
    before = snapshot(store)
    done = run_cli("convert", str(store), str(store / "meta" / "copy"))
    assert_one_line_error(done, "inside the source")
    assert snapshot(store) == before and not (store / "meta" / "copy").exists()


def test_destination_whose_parent_is_a_file(tmp_path):
    (tmp_path / "plain").write_text("not a folder")
    done = run_cli("convert", str(NPZ), str(tmp_path / "plain" / "deeper" / "out"))
    assert_one_line_error(done, "it is a file, not a folder")
    assert (tmp_path / "plain").read_text() == "not a folder"


def test_symlink_loop_as_source(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    done = run_cli("convert", str(tmp_path / "a"), str(tmp_path / "out"))
    assert_one_line_error(done, "ymlink loop")
    assert not (tmp_path / "out").exists()


def test_broken_symlink_as_source(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "link")
    assert_one_line_error(run_cli("convert", str(tmp_path / "link"), str(tmp_path / "out")), "broken symbolic link")


# ------------------------------------------------------------------ names that are not UTF-8

BAD = os.fsdecode(b"bad-\xff\xfe")  # surrogate-escaped, as Python hands such names over


def test_non_utf8_file_inside_a_source_folder(store, tmp_path):
    (store / "data" / f"{BAD}.txt").write_bytes(b"stray")
    before = snapshot(store)
    done = run_cli("convert", str(store), str(tmp_path / "out"))
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    if done.returncode == 2:  # refused: one line, the odd name escaped
        assert_one_line_error(done, "not valid UTF-8", "\\udcff")
        assert not (tmp_path / "out").exists()
    else:
        assert done.returncode == 0, done.stderr
        assert len(ildata.load(tmp_path / "out")) == len(ildata.load(store))
    assert snapshot(store) == before
    shown = run_cli("inspect", str(store), "--json")  # a stray file does not stop inspect
    assert shown.returncode == 0, shown.stderr


def test_non_utf8_destination_name(tmp_path):
    done = run_cli("convert", str(NPZ), str(tmp_path / BAD))
    assert done.returncode == 0, done.stderr  # written: Linux names are bytes (tests/test_non_utf8_paths.py)
    assert [p.name for p in tmp_path.iterdir()] == [BAD]  # no temporary left behind


def test_non_utf8_source_names_are_printed_escaped(tmp_path):
    folder = tmp_path / BAD
    folder.mkdir()
    src = folder / "demos.npz"
    shutil.copyfile(NPZ, src)
    assert_one_line_error(run_cli("convert", str(folder / "missing.npz"), str(tmp_path / "out")), "bad-\\xff\\xfe")
    done = run_cli("convert", str(src), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    shown = run_cli("inspect", str(src))
    assert shown.returncode == 0, shown.stderr
    assert "bad-\\xff\\xfe" in shown.stdout
    as_json = run_cli("inspect", str(src), "--json")
    assert json.loads(as_json.stdout)["path"] == str(src)


def test_printable_escapes_undecodable_bytes_and_line_breaks():
    assert ildata.cli.printable(f"{BAD}/x\ny") == "bad-\\xff\\xfe/x\\ny"
    assert ildata.cli.printable("\ud800 lone") == "\\ud800 lone"
    assert ildata.cli.printable("plain ünïcode") == "plain ünïcode"


# ------------------------------------------------------------------ inspect on damaged stores


def _shard(store: Path) -> Path:
    (shard,) = (store / "data").iterdir()
    return shard


def _truncate_shard(store: Path) -> None:
    shard = _shard(store)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])


def _edit_totals(store: Path) -> None:
    info_file = store / "meta" / "info.json"
    info = json.loads(info_file.read_text())
    info["totals"]["transitions"] += 7
    info_file.write_text(json.dumps(info))


def _break_info_json(store: Path) -> None:
    (store / "meta" / "info.json").write_text('{"format": "ildata", ')


def _drop_data_files(store: Path) -> None:
    info_file = store / "meta" / "info.json"
    info = json.loads(info_file.read_text())
    del info["data_files"]
    info_file.write_text(json.dumps(info))


def _garble_stats(store: Path) -> None:
    (store / "meta" / "stats.json").write_text("[1, 2")


def _remove_episode_table(store: Path) -> None:
    (store / "meta" / "episodes.parquet").unlink()


@pytest.mark.parametrize(
    "damage",
    [_truncate_shard, _edit_totals, _break_info_json, _drop_data_files, _garble_stats, _remove_episode_table],
)
def test_inspect_on_a_damaged_store_is_one_line(store, damage):
    damage(store)
    before = snapshot(store)
    for extra in ((), ("--json",)):
        done = run_cli("inspect", str(store), *extra)
        assert_one_line_error(done)
        assert done.stdout == ""
    assert snapshot(store) == before


def test_inspect_env_whose_spaces_do_not_fit_the_store(store):
    env_obs = "Box([-4.8"  # CartPole-v1's observation space starts so; the data has 3 values per step
    line = assert_one_line_error(run_cli("inspect", str(store), "--env", "CartPole-v1"), "CartPole-v1", env_obs)
    data_space = str(ildata.load(store).observation_space)
    assert data_space in line and "(3,)" in line and "(4,)" in line


def test_inspect_env_whose_spaces_do_not_fit_a_legacy_file():
    line = assert_one_line_error(run_cli("inspect", str(NPZ), "--env", "Pendulum-v1"), "Pendulum-v1")
    assert "observation space" in line and "(3,)" in line and "(4,)" in line


def test_convert_env_whose_spaces_do_not_fit(tmp_path):
    assert_one_line_error(run_cli("convert", str(NPZ), str(tmp_path / "out"), "--env", "Pendulum-v1"), "Pendulum-v1")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ exactly one line, off a terminal


def test_every_convert_error_is_exactly_one_line(tmp_path, store):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00not a dataset" * 10)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    existing = tmp_path / "existing"
    existing.mkdir()
    cases = [
        ("convert", str(tmp_path / "missing.pkl"), str(tmp_path / "o1")),
        ("convert", str(garbage), str(tmp_path / "o2")),
        ("convert", str(empty), str(tmp_path / "o3")),
        ("convert", str(store), str(existing)),
        ("convert", str(NPZ), str(tmp_path / "o4"), "--fixed-horizon", "truncate", "--horizon", "100000"),
        ("convert", str(NPZ), str(tmp_path / "o5"), "--env", "NoSuchEnv-v0"),
    ]
    for args in cases:
        assert_one_line_error(run_cli(*args))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.pkl", "existing", "garbage.bin", "parent"]
