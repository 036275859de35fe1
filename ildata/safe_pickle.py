"""Allow-list unpickler for trajectory pickles written by the `imitation` library.

`pickle.load` runs whatever callables a file names, so loading a stranger's demonstrations with
it is arbitrary code execution. This unpickler resolves only the handful of globals that
imitation's pickles (and numpy's object-array `.npy` payloads) really contain, in every pickle
protocol from 2 to 5: numpy's array, scalar and dtype reconstructors (plus `_codecs.encode`,
protocol 2's spelling of bytes), each wrapped so that it checks its arguments, and imitation's
trajectory classes, mapped to inert stand-ins that just record what the file says. Every other global is
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
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> LegacyTrajectory:
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

    def __new__(cls, *args: Any, **kwargs: Any) -> _NdarrayToken:
        raise DataError("malformed pickle: numpy.ndarray called directly")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """`numpy.core.multiarray._reconstruct`, limited to what `ndarray.__reduce__` emits."""
    if subtype is not _NdarrayToken or shape != (0,) or not isinstance(dtype, bytes):
        raise DataError("malformed pickle: unexpected arguments to numpy _reconstruct")
    array = _multiarray._reconstruct(np.ndarray, shape, dtype)
    assert isinstance(array, np.ndarray)
    return array


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
    return _multiarray.scalar(dtype, data)


def _latin1_bytes(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode(str, "latin1")`: how protocol 2 spells a bytes object (numpy < 1.16 wrote
    object `.npy` members with protocol 2). Other codecs are refused: some run compressors."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("malformed pickle: unexpected arguments to _codecs.encode")
    return text.encode("latin-1")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """`numpy.core.numeric._frombuffer`: how arrays pickle with protocol 5 (Python 3.14's default)."""
    if (
        not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer))
        or not isinstance(dtype, np.dtype)
        or dtype.hasobject
        or not isinstance(shape, tuple)
        or not all(isinstance(n, int) for n in shape)
        or order not in ("C", "F")
    ):
        raise DataError("malformed pickle: unexpected arguments to numpy _frombuffer")
    return np.frombuffer(memoryview(buf), dtype=dtype).reshape(shape, order=order)


_NUMPY_GLOBALS: dict[str, Any] = {"_codecs.encode": _latin1_bytes}
for _package in ("numpy.core", "numpy._core"):  # numpy < 2 and >= 2
    _NUMPY_GLOBALS[f"{_package}.multiarray._reconstruct"] = _reconstruct
    _NUMPY_GLOBALS[f"{_package}.multiarray.scalar"] = _scalar
    _NUMPY_GLOBALS[f"{_package}.numeric._frombuffer"] = _frombuffer
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
