"""The d3rlpy dump's layout: the names of its datasets, `sniff`, and guarded access to its
HDF5 members (links and external storage refused, h5py's errors as one DataError line)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ildata.episode import DataError
from ildata.formats.hdf5_links import refuse_external_storage, refuse_links

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
DATASET_VERSION = "2.1"  # d3rlpy.dataset.io.DATASET_VERSION
COLUMNS = ("observations", "actions", "rewards", "terminated")
ILDATA = "ildata"  # group of extra datasets d3rlpy does not read


def sniff(path: Path) -> bool:
    """An HDF5 file holding d3rlpy's `columns`, `num_episodes` and `version` datasets."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        if f.read(8) != HDF5_SIGNATURE:
            return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:  # links are looked at, never followed
            return all(h5.get(k, getlink=True) is not None for k in ("columns", "num_episodes", "version"))
    except OSError:
        return False


@contextlib.contextmanager
def hdf5_errors() -> Iterator[None]:
    """h5py's OSError on truncated or corrupted data -> one DataError line."""
    try:
        yield
    except OSError as exc:
        raise DataError(f"not a readable HDF5 file ({exc})") from None


def open_dump_file(path: Path) -> Any:
    """The dump opened with h5py, its links refused before anything else is read from it."""
    import h5py

    with hdf5_errors():
        h5 = h5py.File(path, "r")
    try:
        refuse_links(h5, path)
    except BaseException:
        h5.close()
        raise
    return h5


def h5_member(group: Any, name: str) -> Any:
    """`group[name]`, None when absent; a dataset whose values live in other files is refused
    (links were refused when the file was opened: see ildata.formats.hdf5_links)."""
    import h5py

    if group.get(name, getlink=True) is None:
        return None
    member = group[name]
    if isinstance(member, h5py.Dataset):
        refuse_external_storage(member.id, name, Path(group.file.filename))
    return member


def h5_dataset(group: Any, name: str, *, required: bool = True) -> Any:
    """Dataset `name` (see `_member`); None when absent and not `required`."""
    import h5py

    member = h5_member(group, name)
    if member is None:
        if required:
            raise DataError(f"d3rlpy dump has no {name}")
        return None
    if not isinstance(member, h5py.Dataset):
        raise DataError(f"{name} is an HDF5 {type(member).__name__}, not a dataset")
    return member


def h5_data(group: Any, name: str, *, required: bool = True, rows: slice = slice(None)) -> Any:
    """The value of dataset `name` (its `rows` only, for a 1-D or larger one); None when absent
    and not `required`."""
    dataset = h5_dataset(group, name, required=required)
    if dataset is None:
        return None
    return dataset[()] if rows == slice(None) or not dataset.shape else dataset[rows]


def row_count(dataset: Any) -> int:
    return int(dataset.shape[0]) if dataset.shape else 1


def h5_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def observation_names(h5: Any, i: int) -> list[str]:
    """Episode i's observation datasets: `observations_i`, or d3rlpy's tuple `observations_i_j`."""
    if h5.get(f"observations_{i}", getlink=True) is not None:
        return [f"observations_{i}"]
    names: list[str] = []
    while h5.get(f"observations_{i}_{len(names)}", getlink=True) is not None:
        names.append(f"observations_{i}_{len(names)}")
    if not names:
        raise DataError(f"episode {i} has no observations")
    return names
