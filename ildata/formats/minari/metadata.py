"""Minari dataset metadata: where datasets live, their ids, `metadata.json` files, spaces, and
the checks that hold metadata to the data (metadata is a claim about the files, never trusted).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import INT64_MAX, DataError
from ildata.fsutil import inside, require_regular_file

if TYPE_CHECKING:  # imported lazily at run time: the data layer never pays for them on import
    import gymnasium as gym

METADATA = "metadata.json"
HDF5_FILE = "main_data.hdf5"
BACKENDS = ("arrow", "parquet", "hdf5")
# The newest dataset layout this writer produces; must be in minari's `supported_dataset_versions`.
MINARI_VERSION = "0.5.4"
ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")  # minari's DATASET_ID_RE, -vN required
# minari's metadata files hold a few spaces and strings: anything bigger is not one.
MAX_METADATA_BYTES = 16 * 2**20


# --------------------------------------------------------------------------- locating datasets


def minari_root() -> Path:
    """Minari's local dataset root: `$MINARI_DATASETS_PATH` or `~/.minari/datasets`."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def resolve_minari_spec(spec: str) -> Path:
    """`minari:NAMESPACE/NAME-vN` (or a bare id) -> the dataset folder under the Minari root.

    Only resolves the path (no existence check) so that writers can use it as a destination.
    """
    dataset_id = spec.removeprefix("minari:")
    if not ID_RE.fullmatch(dataset_id) or ".." in dataset_id.split("/"):
        raise DataError(f"bad Minari dataset id {dataset_id!r} (expected NAMESPACE/NAME-vN)")
    return minari_root() / dataset_id


def require_present(spec: str) -> Path:
    """The folder of `minari:NAMESPACE/NAME-vN`, or a DataError saying where it was looked for
    and how to get it (minari's own download, or `ildata convert` from files)."""
    path = resolve_minari_spec(spec)
    if not path.exists():
        dataset_id = spec.removeprefix("minari:")
        raise DataError(
            f"Minari dataset {dataset_id} is not present under the Minari root {minari_root()} "
            "(MINARI_DATASETS_PATH or ~/.minari/datasets): get it with "
            f"`minari download {dataset_id}`, or make it from files with `ildata convert SRC minari:{dataset_id} --to minari`"
        )
    return path


def dataset_id_for(dst: Path) -> str:
    """The id minari will know `dst` by: its path under the Minari root, else its folder name."""
    dst = Path(dst).absolute()
    try:
        candidate = dst.relative_to(minari_root().absolute()).as_posix()
    except ValueError:
        candidate = dst.name
    if ID_RE.fullmatch(candidate):
        return candidate
    stem = re.sub(r"[^-_\w]", "_", dst.name) or "dataset"
    return stem if re.search(r"-v\d+$", stem) else f"{stem}-v0"


def load_json(path: Path) -> Any:
    """A metadata file's JSON, as one DataError naming the file when it is not a small, regular,
    valid JSON file (a FIFO would block, deep nesting raises RecursionError)."""
    require_regular_file(path)
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        raise DataError(f"cannot read ({exc})", subject=path) from None
    if len(text) > MAX_METADATA_BYTES:
        raise DataError(f"over {MAX_METADATA_BYTES >> 20} MiB: not a Minari metadata file", subject=path)
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError("JSON nested too deeply", subject=path) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DataError(f"not valid JSON ({exc})", subject=path) from None


def data_dir(path: Path) -> Path | None:
    """The `data/` folder of a Minari dataset given either the dataset folder or `data/` itself.

    `data/metadata.json` is Minari's alone, so an unreadable one still claims the folder (the
    reader then says what is wrong with it); a bare `metadata.json` must name a backend.
    """
    for candidate, strict in ((path / "data", False), (path, True)):
        meta = candidate / METADATA
        if not meta.is_file():  # regular files only: never open a FIFO to sniff it
            continue
        try:
            content = load_json(inside(candidate, METADATA))
        except DataError:
            if strict:
                continue
            return candidate
        if isinstance(content, dict) and content.get("data_format") in BACKENDS:
            return candidate
    return None


def sniff(path: Path) -> bool:
    """A folder holding minari's `metadata.json` (with a known `data_format`)."""
    return path.is_dir() and data_dir(path) is not None


# --------------------------------------------------------------------------- checks


def check_equal(subject: Path, what: str, declared: int, actual: int, found: str) -> None:
    """Metadata `what` must equal what the data holds: one line with both values otherwise."""
    if declared != actual:
        raise DataError(f"{what} is {declared} but {found} {actual}", subject=subject)


def declared_int(meta: Mapping[str, Any], key: str, subject: Path, *, minimum: int = 0) -> int | None:
    """An integer metadata field (None when absent), refused when of another type or outside
    [minimum, int64 max] (every count and id lands in an int64 array)."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= INT64_MAX:
        raise DataError(f"{key} is {value!r}, not an integer >= {minimum}", subject=subject)
    return value


def episode_numbers(names: Iterable[str], prefix: str = "") -> np.ndarray:
    """The episode ids among `names` (folder names `<id>`, hdf5 groups `episode_<id>`)."""
    pattern = re.compile(re.escape(prefix) + r"(0|[1-9][0-9]{0,17})")  # fits an int64
    return np.array([int(m[1]) for name in names if (m := pattern.fullmatch(name))], dtype=np.int64)


def check_episode_ids(subject: Path, declared: int, found: np.ndarray, what: str) -> None:
    """The episodes on disk (`found`: ids listed from the folder or file) must be exactly
    0 .. `declared` - 1; checked before any loop runs over the declared count, so a metadata
    count of 10**7 fails at once. `what` names one episode, e.g. "episode folder {}"."""
    ids = np.unique(found)
    if len(ids) == declared and (declared == 0 or ids[-1] == declared - 1):
        return
    gaps = np.flatnonzero(ids != np.arange(len(ids)))
    missing = int(gaps[0]) if len(gaps) else len(ids)
    detail = f"{what.format(missing)} is missing" if missing < declared else f"{what.format(int(ids[-1]))} is extra"
    raise DataError(f"total_episodes is {declared} but the data holds {len(ids)} episodes ({detail})", subject=subject)


def check_episode_metadata(
    subject: Callable[[int], Path], ids: np.ndarray, steps: np.ndarray, lengths: np.ndarray, *, first: int = 0
) -> None:
    """Each episode's own metadata (`id`, `total_steps`; -1 where absent) against its position
    and its data, all episodes (from episode `first` on) at once; `subject(i)` names where
    episode i's metadata lives."""
    bad = np.flatnonzero((ids >= 0) & (ids != np.arange(first, first + len(lengths))))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"id is {int(ids[i])} but this is episode {first + i}", subject=subject(first + i))
    bad = np.flatnonzero((steps >= 0) & (steps != lengths))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"total_steps is {int(steps[i])} but episode {first + i}'s data holds {int(lengths[i])} steps", subject=subject(first + i)
        )


# --------------------------------------------------------------------------- spaces


def deserialize_space(text: Any, subject: Path) -> gym.Space:
    from minari.serialization import deserialize_space as minari_deserialize

    try:
        return minari_deserialize(text)
    except (NotImplementedError, KeyError, ValueError, TypeError, AssertionError, AttributeError, IndexError) as exc:
        raise DataError(f"cannot read space ({type(exc).__name__}: {exc})", subject=subject) from None
    except RecursionError:
        raise DataError("space nested too deeply", subject=subject) from None


def leaves(
    space: gym.Space, path: tuple[str, ...] = (), h5_path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], gym.Space]]:
    """(path, hdf5 path, leaf space) for every array of a (nested) Dict/Tuple space.

    Tuple items are named "0", "1"... (ildata's and minari's arrow convention); minari's hdf5
    backend names them `_index_0`, `_index_1`...
    """
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            if "." in key:
                raise DataError(f"Dict space key {key!r} contains '.', which ildata reserves")
            yield from leaves(sub, path + (key,), h5_path + (key,))
    elif isinstance(space, gym.spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from leaves(sub, path + (str(i),), h5_path + (f"_index_{i}",))
    elif isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        yield path, h5_path, space
    else:
        raise DataError(f"unsupported space {space} (ildata stores Box, Discrete, MultiDiscrete, MultiBinary, Dict and Tuple)")


def check_action_space(space: gym.Space) -> None:
    if next(iter(leaves(space)))[0] != ():
        raise DataError(f"action space {space} is not a single array (Dict/Tuple actions are not supported)")


def leaf_shape(space: gym.Space) -> tuple[int, ...]:
    return tuple(space.shape) if space.shape is not None else ()


def is_image(space: gym.Space) -> bool:
    """minari's own test for spaces it JPEG-encodes."""
    from minari.dataset.minari_storage import is_image_space

    return bool(is_image_space(space))


def check_leaf(values: np.ndarray, space: gym.Space, name: str, subject: Path) -> np.ndarray:
    """`values` (one row per step) must hold `space`'s shape and a dtype the space contains
    (gymnasium's rule: Box takes dtypes that cast safely to its own, the discrete spaces take
    integers); returns them with rows of exactly `space.shape`."""
    import gymnasium as gym

    shape = leaf_shape(space)
    if values.shape[1:] != shape:
        if values.ndim >= 1 and int(np.prod(values.shape[1:])) == int(np.prod(shape)) and values.shape[1:] in ((), (1,)):
            values = values.reshape(len(values), *shape)  # a scalar space stored as one value per row
        else:
            raise DataError(f"{name} has rows of shape {values.shape[1:]} but the space declares {shape}", subject=subject)
    if isinstance(space, gym.spaces.Box):
        ok = np.can_cast(values.dtype, np.dtype(space.dtype))
    else:
        ok = values.dtype.kind in "iub"
    if not ok:
        raise DataError(f"{name} has dtype {values.dtype} but the space declares {space.dtype}", subject=subject)
    return values
