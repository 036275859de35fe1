"""File-system rules every reader and writer follows: atomic outputs, paths that stay inside
their dataset, and only regular files opened as data.

One place, so that every command refuses the same things with the same words.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ildata.episode import DataError

ALREADY_EXISTS = "already exists (pass --overwrite / overwrite=True to replace it)"


def check_destination(dst: Path, *, overwrite: bool, sources: tuple[Path, ...] = ()) -> None:
    """Refuse a destination that would lose data: an existing one (unless `overwrite`), one whose
    parent is not a folder, or one that contains or lies inside a source (a replace would delete or
    write into the source)."""
    if dst.is_symlink() or dst.exists():
        if not overwrite:
            raise DataError(ALREADY_EXISTS, subject=dst)
    parent = dst.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise DataError(f"cannot write under {parent}: it is a file, not a folder", subject=dst)
    try:
        resolved_dst = dst.resolve()
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot resolve the destination path ({exc})", subject=dst) from None
    for source in sources:
        try:
            resolved_src = source.resolve()
        except (OSError, RuntimeError):
            continue  # the source's own reader reports it
        if resolved_src == resolved_dst or resolved_dst in resolved_src.parents:
            raise DataError(f"the destination contains the source {source}: replacing it would delete the source", subject=dst)
        if resolved_src in resolved_dst.parents:
            raise DataError(f"the destination lies inside the source {source}: it would write into the source", subject=dst)


def replace_path(tmp: Path, dst: Path) -> None:
    """Rename `tmp` onto `dst`; an existing `dst` is moved aside first and removed afterwards."""
    if dst.is_symlink() or dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(tmp, dst)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(tmp, dst)


@contextmanager
def atomic_output(dst: str | Path, *, overwrite: bool = False, sources: tuple[Path, ...] = (), folder: bool = True) -> Iterator[Path]:
    """Write into a temporary sibling of `dst` and rename it onto `dst` when the block succeeds.

    Yields the temporary folder (or file path, `folder=False`) to write into. On any error or
    interrupt the temporary output is removed and `dst` is untouched: nothing half-written is left.
    """
    dst = Path(dst)
    check_destination(dst, overwrite=overwrite, sources=sources)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", dir=dst.parent)
        os.close(fd)
        tmp = Path(name)
    # mkdtemp/mkstemp create private (0700/0600) paths; a dataset gets the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (0o777 if folder else 0o666) & ~umask)
    try:
        yield tmp
        replace_path(tmp, dst)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def inside(root: Path, name: str | os.PathLike[str]) -> Path:
    """`root / name`, refusing names that leave `root` (absolute paths, `..`, symlinks out)."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise DataError(f"refers to {str(name)!r}, outside the dataset folder", subject=root)
    path = root / relative
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            raise DataError(f"refers to {str(name)!r}, which resolves outside the dataset folder", subject=root)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise DataError(f"cannot resolve {str(name)!r} ({exc})", subject=root) from None
    return path


def os_path(path: str | os.PathLike[str]) -> bytes:
    """`path` as the bytes the OS names it by, for pyarrow: it encodes a str path as UTF-8, which
    fails on a Linux file name that is not UTF-8 (Python holds such bytes as surrogate escapes),
    while bytes reach the OS unchanged."""
    return os.fsencode(path)


def require_regular_file(path: Path) -> Path:
    """Refuse anything but a regular file (a named pipe or device would block or never end)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError("no such file", subject=path) from None
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot read ({exc})", subject=path) from None
    if not stat.S_ISREG(mode):
        raise DataError("not a regular file (named pipe, device or socket): refused", subject=path)
    return path
