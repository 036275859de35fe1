"""The file-system rules every writer shares: atomic outputs and destinations that cannot hurt a source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ildata.episode import DataError
from ildata.fsutil import atomic_output, inside, require_regular_file


def test_atomic_output_renames_on_success_with_umask_permissions(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "out") as work:
        (work / "a.txt").write_text("a")
        assert not (tmp_path / "out").exists()  # nothing visible until the block succeeds
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
    with atomic_output(tmp_path / "file.bin", folder=False) as work:
        work.write_bytes(b"x")
    assert (tmp_path / "file.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_block_leaves_nothing_and_keeps_the_old_output(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out", overwrite=True) as work:
        (work / "new.txt").write_text("half")
        raise RuntimeError("writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old.txt"]


def test_destinations_that_would_hurt_a_source_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "data" / "src"
    src.mkdir(parents=True)
    (src / "f").write_text("keep")
    with pytest.raises(DataError, match="already exists"), atomic_output(src):
        pass
    with pytest.raises(DataError, match="contains the source"), atomic_output(tmp_path / "data", overwrite=True, sources=(src,)):
        pass
    with pytest.raises(DataError, match="inside the source"), atomic_output(src / "sub", sources=(src,)):
        pass
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="is a file"), atomic_output(tmp_path / "file" / "out"):
        pass
    assert (src / "f").read_text() == "keep" and sorted(p.name for p in src.iterdir()) == ["f"]


def test_inside_refuses_escapes_and_require_regular_file_refuses_pipes(tmp_path: Path) -> None:
    assert inside(tmp_path, "data/x.arrow") == tmp_path / "data" / "x.arrow"
    for name in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(DataError, match="outside the dataset"):
            inside(tmp_path, name)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(DataError, match="outside the dataset"):
        inside(tmp_path, "link/passwd")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(DataError, match="not a regular file"):
        require_regular_file(tmp_path / "pipe")
