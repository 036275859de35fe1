"""Allow-list unpickler for trajectory pickles written by the `imitation` library.

`pickle.load` runs whatever callables a file names, so loading a stranger's demonstrations with
it is arbitrary code execution. This unpickler resolves only the handful of globals that
imitation's pickles (and numpy's object-array `.npy` payloads) really contain: numpy's array and
dtype reconstructors, wrapped so that they check their arguments, and imitation's trajectory
classes, mapped to inert stand-ins that just record what the file says. Every other global is
refused before anything is imported or called.

It subclasses the C `pickle.Unpickler` (only `find_class` is Python), so memo lookups and
containers stay at C speed for files with millions of objects.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO, ClassVar

import numpy as np
from numpy._core import multiarray as _multiarray

from ildata.episode import DataError


class LegacyTrajectory:
    """Inert stand-in for one of imitation's trajectory classes.

    `args` are the positional arguments the pickle passed to `__new__` (imitation's NamedTuples
    are pickled that way), `state` the dict passed to `__setstate__` (its dataclasses).
    Subclasses only differ by `class_path`, so readers can tell the format families apart.
    """

    __slots__ = ("args", "state")
    class_path: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "LegacyTrajectory":
        self = object.__new__(cls)
        self.args = args
        self.state = dict(kwargs) if kwargs else None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept and ignore constructor arguments (already kept by `__new__`)."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<pickled {self.class_path}>"


def _stand_in(class_path: str) -> type[LegacyTrajectory]:
    name = class_path.rsplit(".", 1)[1]
    return type(name, (LegacyTrajectory,), {"__slots__": (), "class_path": class_path})


# Every trajectory class imitation ever pickled (see LEGACY-FORMATS.md).
TRAJECTORY_CLASSES: dict[str, type[LegacyTrajectory]] = {
    path: _stand_in(path)
    for path in (
        "imitation.util.rollout.Trajectory",  # P1 (3 fields), P2 (4 fields): NamedTuples
        "imitation.util.data.Trajectory",  # P3 dataclasses
        "imitation.util.data.TrajectoryWithRew",
        "imitation.data.types.Trajectory",  # P4, P5 dataclasses
        "imitation.data.types.TrajectoryWithRew",
    )
}


class _NdarrayToken:
    """What the name `numpy.ndarray` resolves to: only `_reconstruct` accepts it.

    Handing out the real class would let a pickle REDUCE or NEWOBJ it into an allocation of any
    size; this token refuses to be called or instantiated.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> "_NdarrayToken":
        raise DataError("malformed pickle: numpy.ndarray called directly")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """`numpy.core.multiarray._reconstruct`, limited to what `ndarray.__reduce__` emits."""
    if subtype is not _NdarrayToken or shape != (0,) or not isinstance(dtype, bytes):
        raise DataError("malformed pickle: unexpected arguments to numpy _reconstruct")
    return _multiarray._reconstruct(np.ndarray, shape, dtype)


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """`numpy.dtype(str, align, copy)`, the only call `dtype.__reduce__` emits."""
    if not isinstance(obj, str) or not isinstance(align, (bool, int)) or not isinstance(copy, (bool, int)):
        raise DataError("malformed pickle: unexpected arguments to numpy.dtype")
    try:
        return np.dtype(obj, bool(align), bool(copy))
    except TypeError as exc:
        raise DataError(f"malformed pickle: bad numpy dtype {obj!r}") from exc


def _scalar(dtype: Any, data: Any = None) -> Any:
    """`numpy.core.multiarray.scalar(dtype, bytes)`: how numpy scalars (e.g. in infos) pickle."""
    if not isinstance(dtype, np.dtype) or (not dtype.hasobject and not isinstance(data, bytes)):
        raise DataError("malformed pickle: unexpected arguments to numpy scalar")
    return _multiarray.scalar(dtype, data) if data is not None else _multiarray.scalar(dtype)


_NUMPY_GLOBALS: dict[str, Any] = {}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy < 2 and >= 2
    _NUMPY_GLOBALS[f"{_module}._reconstruct"] = _reconstruct
    _NUMPY_GLOBALS[f"{_module}.scalar"] = _scalar
_NUMPY_GLOBALS["numpy.ndarray"] = _NdarrayToken
_NUMPY_GLOBALS["numpy.dtype"] = _dtype

ALLOWED_GLOBALS: dict[str, Any] = {**_NUMPY_GLOBALS, **TRAJECTORY_CLASSES}


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only `ALLOWED_GLOBALS` and refuses everything else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[f"{module}.{name}"]
        except KeyError:
            raise DataError(
                f"refusing to unpickle global '{module}.{name}': only numpy arrays and imitation "
                "trajectories are allowed (loading it could run code from the file)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("malformed pickle: persistent ids are not supported")


def load(fp: BinaryIO) -> Any:
    """Unpickle one object from `fp`; any failure becomes a one-line `DataError`."""
    try:
        return SafeUnpickler(fp).load()
    except DataError:
        raise
    except RecursionError:
        raise DataError("malformed pickle: nested too deeply") from None
    except MemoryError:
        raise DataError("malformed pickle: asks for more memory than available") from None
    except EOFError:
        raise DataError("truncated pickle: ended before its STOP opcode") from None
    except Exception as exc:  # UnpicklingError, ValueError, TypeError, ...: all mean a bad file
        raise DataError(f"corrupted pickle: {type(exc).__name__}: {exc}") from None


def loads(data: bytes | bytearray | memoryview) -> Any:
    """`load` from an in-memory buffer."""
    return load(io.BytesIO(data))
