"""Reader for `imitation`'s npz trajectory files (families N0 and N1, 2019-2023).

- N1 (imitation v0.3): all trajectories concatenated, split by `indices` (N-1 split points).
  Since an `EpisodeBatch` is itself "all episodes concatenated", the arrays are used as they
  are: the split points only become episode lengths, nothing is copied per episode.
- N0 (DAgger demos): one trajectory per file.

The files may be named `.pkl` (2022), so detection is by content. Members are read straight
from the zip: numeric ones with `np.frombuffer`, the object `infos` member by parsing the
`.npy` header here and feeding its pickle payload to the allow-list unpickler. `np.load` would
need `allow_pickle=True` for that member, which would run any code the file names.
"""

from __future__ import annotations

import io
import mmap
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ildata import safe_pickle
from ildata.episode import DataError, storable_dtype
from ildata.formats import SourceRead
from ildata.formats.imitation_common import make_read

_zlib: ModuleType
try:  # ISA-L inflate: same API as zlib, 2-3x faster (see `_member_start`)
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    _zlib = zlib

ZIP_MAGIC = b"PK\x03\x04"
# Local file header: signature, version, flags, method, time, date, crc, sizes, name/extra lengths.
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")


def sniff(path: Path) -> bool:
    """A zip holding `obs.npy`; an unreadable zip is claimed too, so `read` can say what is wrong."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:
            return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "obs.npy" in zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return True


def _member_start(view: memoryview, info: zipfile.ZipInfo) -> int:
    """Offset of one zip member's stored (usually deflated) bytes in the memory-mapped file.

    Members are located and inflated here rather than by `ZipFile.read` because zipfile always
    inflates with the stdlib zlib, measured at 1.1-1.6 s on the 200 MB of a 2M-step file
    against 0.55 s for ISA-L (`isal`), and reads the file into memory first; the whole convert
    has a 2 s budget. The central directory still comes from zipfile (it resolves zip64 sizes
    and offsets).
    """
    if info.header_offset + _LOCAL_HEADER.size > len(view):
        raise DataError(f"member {info.filename}: file ends inside it (truncated npz)")
    header = _LOCAL_HEADER.unpack_from(view, info.header_offset)
    if header[0] != ZIP_MAGIC:
        raise DataError(f"member {info.filename}: bad local zip header (corrupted npz)")
    start = info.header_offset + _LOCAL_HEADER.size + header[-2] + header[-1]  # name, extra
    if start + info.compress_size > len(view):
        raise DataError(f"member {info.filename}: file ends inside it (truncated npz)")
    if info.compress_type not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        raise DataError(f"member {info.filename}: unsupported zip compression method {info.compress_type}")
    return start


def _inflate(view: memoryview, info: zipfile.ZipInfo, start: int) -> bytes:
    """Member bytes, CRC-checked (runs in worker threads: ISA-L and zlib release the GIL)."""
    with view[start : start + info.compress_size] as raw:
        if info.compress_type == zipfile.ZIP_DEFLATED:
            # Raw deflate stream, as zip stores it; output size known, so no buffer regrowth.
            data = _zlib.decompress(raw, -15, max(info.file_size, 1))
        else:  # ZIP_STORED: np.savez (uncompressed)
            data = bytes(raw)
    if len(data) != info.file_size or _zlib.crc32(data) != info.CRC:
        raise DataError(f"member {info.filename}: size or CRC mismatch (corrupted npz)")
    return data


def _parse_npy(name: str, data: bytes) -> np.ndarray:
    """One `.npy` payload, without ever enabling numpy's pickle loading."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise DataError(f"member {name}: unsupported .npy format version {version}")
    offset = f.tell()
    if dtype.itemsize == 0:
        storable_dtype(name[: -len(".npy")], dtype)  # refuses it, naming the member
    if dtype.hasobject:
        array = safe_pickle.loads(memoryview(data)[offset:])
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
            raise DataError(f"member {name}: pickled payload does not match its header shape {shape}")
        return array
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - offset != count * dtype.itemsize:
        raise DataError(f"member {name}: {len(data) - offset} bytes of data for shape {shape} {dtype}")
    # Zero-copy view of the inflated bytes.
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")


def _load_members(path: Path) -> tuple[dict[str, np.ndarray], int]:
    """The `.npy` members by name, and their total size once inflated."""
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            infos = [info for info in zf.infolist() if info.filename.endswith(".npy")]
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
                starts = [_member_start(view, info) for info in infos]
                # obs (the biggest member) inflates on one core while the others do on a second.
                with ThreadPoolExecutor(max_workers=2) as pool:
                    datas = list(pool.map(_inflate, [view] * len(infos), infos, starts))
        members = {info.filename[: -len(".npy")]: _parse_npy(info.filename, data) for info, data in zip(infos, datas)}
        return members, sum(len(data) for data in datas)
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, _zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
        raise DataError(f"corrupted or truncated npz: {exc}") from None


def _require(members: dict[str, np.ndarray], *names: str) -> None:
    missing = [n for n in names if n not in members]
    if missing:
        raise DataError(f"npz has no {', '.join(repr(m) for m in missing)} member (not an imitation trajectory file)")


def _infos(value: np.ndarray | None, steps: int) -> list[Any] | None:
    """`infos` member -> list of per-step dicts (None when absent or a 0-d `array(None)`)."""
    if value is None or (value.ndim == 0 and value.item() is None):
        return None
    if value.ndim != 1 or value.shape[0] != steps:
        raise DataError(f"infos has shape {value.shape}, expected ({steps},)")
    return value.tolist()


def _lengths_from_indices(indices: np.ndarray, steps: int) -> np.ndarray:
    """N-1 split points (cumsum of all lengths but the last) -> N lengths."""
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.number)):
        raise DataError(f"indices has shape {indices.shape} and dtype {indices.dtype}: not split points")
    if indices.size and not np.array_equal(indices, np.round(indices)):
        raise DataError("indices are not whole numbers")
    bounds = np.concatenate([[0], indices.astype(np.int64), [steps]])
    lengths = np.diff(bounds)
    if (lengths < 1).any():
        bad = int(np.flatnonzero(lengths < 1)[0])
        raise DataError(
            f"indices do not match acts: trajectory {bad} would span [{bounds[bad]}, {bounds[bad + 1]}) "
            f"of {steps} actions (indices must increase strictly and stay below len(acts))"
        )
    return lengths


def read(path: Path) -> SourceRead:
    """Read an N0 or N1 npz."""
    members, inflated_bytes = _load_members(path)
    _require(members, "obs", "acts")
    obs, acts = members["obs"], members["acts"]
    for name in ("obs", "acts", "rews"):
        if name in members:
            if members[name].ndim == 0:
                raise DataError(f"{name} is a single value, not an array of steps")
            storable_dtype(name, members[name].dtype)
    steps = int(acts.shape[0])
    if "indices" in members:  # N1
        _require(members, "terminal")
        lengths = _lengths_from_indices(members["indices"], steps)
        terminal = members["terminal"].reshape(-1)
        if terminal.shape[0] != lengths.shape[0]:
            raise DataError(f"terminal has {terminal.shape[0]} entries but indices describe {lengths.shape[0]} trajectories")
        if obs.shape[0] != steps + lengths.shape[0]:
            raise DataError(
                f"obs has {obs.shape[0]} rows but acts and indices imply {steps + lengths.shape[0]} "
                f"({steps} actions + one final observation for each of {lengths.shape[0]} trajectories)"
            )
        family = "N1"
    else:  # N0: one trajectory; `terminal` (0-d) only from 2021
        lengths = np.array([steps])
        terminal = members.get("terminal", np.array(True)).reshape(-1)
        if terminal.shape[0] != 1:
            raise DataError(f"terminal has {terminal.shape[0]} entries for one trajectory")
        family = "N0"
    if terminal.dtype != np.bool_:
        raise DataError(f"terminal has dtype {terminal.dtype}, expected bool")
    return make_read(
        f"imitation-npz-{family}",
        obs=obs,
        acts=acts,
        lengths=lengths,
        terminal=terminal,
        rews=members.get("rews"),
        infos=_infos(members.get("infos"), steps),
        source_bytes=inflated_bytes,
    )
