"""Reader for `imitation`'s npz trajectory files (families N0 and N1, 2019-2023).

- N1 (imitation v0.3): all trajectories concatenated, split by `indices` (N-1 split points).
  Since an `EpisodeBatch` is itself "all episodes concatenated", the arrays are used as they
  are: the split points only become episode lengths, nothing is copied per episode.
- N0 (DAgger demos): one trajectory per file.

The files may be named `.pkl` (2022), so detection is by content. Members are read straight
from the zip: numeric ones with `np.frombuffer`, the object `infos` member by parsing the
`.npy` header here and feeding its pickle payload to the allow-list unpickler. `np.load` would
need `allow_pickle=True` for that member, which would run any code the file names.

`read_chunks` (what `ildata convert` uses) decodes a group of trajectories at a time: `obs`,
`acts` and `rews` are inflated as streams, so memory holds a group's rows, not whole members.
`read` is its one-group case, where each member is inflated in one call.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import struct
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ildata import safe_pickle
from ildata.episode import DataError, EpisodeBatch, storable_dtype
from ildata.formats import SourceChunks, SourceRead, chunk_ranges
from ildata.formats.imitation_common import carries_infos, make_read, termination_note

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


class _NpyStream:
    """One `.npy` member: its header parsed at once, its rows then read in order. All rows at
    once (the whole-file read) are one inflate call into a buffer of the member's size, as
    `zipfile` never does (see `_member_start`); fewer rows are inflated as a stream, so a chunk
    of rows is decoded without the rest of the member in memory. A stream that stopped mid-way
    inflates about a third slower than a whole inflate (measured with ISA-L), hence both. Size
    and CRC are checked once the last byte is read."""

    def __init__(self, view: memoryview, info: zipfile.ZipInfo):
        self.name = info.filename
        self.info = info
        start = _member_start(view, info)
        self.raw = view[start : start + info.compress_size]  # the mapped file: no copy
        self._whole: np.ndarray | None = None
        self.inflater: Any = None  # the stream, from the first partial read on
        self.pos = 0  # compressed bytes fed to it
        self.tail: bytes = b""  # compressed bytes fed but not consumed (bounded by one read)
        self.done = 0  # member bytes it produced
        self.crc = 0
        try:
            self._parse_header()
        except BaseException:
            self.raw.release()  # the mapping can only close once no view of it is left
            raise

    def _parse_header(self) -> None:
        """Shape, order and dtype from the header, inflated apart (a `.npy` header is at most a
        few kB: numpy refuses longer ones)."""
        if self.info.compress_type == zipfile.ZIP_DEFLATED:
            head = _zlib.decompressobj(-15).decompress(self.raw[: 1 << 16], 1 << 16)
        else:
            head = bytes(self.raw[: 1 << 16])
        f = io.BytesIO(head)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, self.fortran, self.dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, self.fortran, self.dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"member {self.name}: unsupported .npy format version {version}")
        self.offset = f.tell()  # where the values start
        self.shape: tuple[int, ...] = tuple(shape)
        if self.dtype.itemsize == 0:
            storable_dtype(self.name[: -len(".npy")], self.dtype)  # refuses it, naming the member
        if not self.dtype.hasobject:
            count = int(np.prod(self.shape, dtype=np.int64))
            if self.info.file_size - self.offset != count * self.dtype.itemsize:
                raise DataError(
                    f"member {self.name}: {self.info.file_size - self.offset} bytes of data for shape {self.shape} {self.dtype}"
                )
        self.rows_left = self.shape[0] if self.shape else 0

    def _inflate_all(self) -> bytes:
        """The whole member in one call, CRC-checked (runs in worker threads: ISA-L and zlib
        release the GIL)."""
        if self.info.compress_type == zipfile.ZIP_DEFLATED:
            # Raw deflate stream, as zip stores it; output size known, so no buffer regrowth.
            data = _zlib.decompress(self.raw, -15, max(self.info.file_size, 1))
        else:  # ZIP_STORED: np.savez (uncompressed); a copy, so no array pins the mapping
            data = bytes(self.raw)
        if len(data) != self.info.file_size or _zlib.crc32(data) != self.info.CRC:
            raise DataError(f"member {self.name}: size or CRC mismatch (corrupted npz)")
        return data

    def _read(self, size: int) -> bytes:
        """The next `size` bytes of the member, from the stream."""
        if size == 0:
            return b""
        if self.inflater is None:
            stored = self.info.compress_type != zipfile.ZIP_DEFLATED
            self.inflater = _Stored() if stored else _zlib.decompressobj(-15)
            if self.offset:
                self._read(self.offset)  # the header again: the CRC covers it
        parts, need = [], size
        while need:
            if self.tail:
                source: bytes | memoryview = self.tail
            else:  # feed at most what the read needs: what inflates beyond it stays in `tail`
                source = self.raw[self.pos : self.pos + max(need, 1 << 16)]
                self.pos += len(source)
            data = self.inflater.decompress(source, need)
            self.tail = self.inflater.unconsumed_tail
            if not data and not source:
                break
            parts.append(data)
            need -= len(data)
        for part in parts:
            self.crc = _zlib.crc32(part, self.crc)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.done += len(data)
        if len(data) != size:
            raise DataError(f"member {self.name}: file ends inside it (truncated npz)")
        if self.done == self.info.file_size and (self.crc != self.info.CRC or self._more()):
            raise DataError(f"member {self.name}: size or CRC mismatch (corrupted npz)")
        return data

    def _more(self) -> bool:
        """Whether the stored stream holds more than the member's recorded size."""
        return bool(self.inflater.decompress(self.tail + bytes(self.raw[self.pos :]), 1))

    def whole(self) -> np.ndarray:
        """Every value at once: for members that are small (one entry per trajectory) or cannot
        be cut into rows (a pickled object array only decodes whole; a Fortran-order array has
        no contiguous rows)."""
        if self._whole is None:
            data = self._inflate_all()
            if self.dtype.hasobject:
                array = safe_pickle.loads(memoryview(data)[self.offset :])  # the allow-list unpickler, never numpy's
                if not isinstance(array, np.ndarray) or array.shape != self.shape:
                    raise DataError(f"member {self.name}: pickled payload does not match its header shape {self.shape}")
                self._whole = array
            else:  # zero-copy view of the inflated bytes
                array = np.frombuffer(data, dtype=self.dtype, offset=self.offset)
                self._whole = array.reshape(self.shape, order="F" if self.fortran else "C")
        return self._whole

    def rows(self, n: int) -> np.ndarray:
        """The next `n` rows (along the first axis)."""
        if n > self.rows_left:
            raise DataError(f"member {self.name}: has {self.shape[0]} rows, fewer than the trajectories need")
        start = self.shape[0] - self.rows_left
        self.rows_left -= n
        if (self.fortran and len(self.shape) > 1) or self.dtype.hasobject or (start == 0 and n == self.shape[0]):
            return self.whole()[start : start + n]
        data = self._read(n * int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize)
        return np.frombuffer(data, dtype=self.dtype).reshape(n, *self.shape[1:])  # zero-copy view of the inflated bytes


class _Stored:
    """A ZIP_STORED member read through the inflater interface (copies: no array pins the mapping)."""

    unconsumed_tail = b""

    def decompress(self, data: bytes | memoryview, max_length: int) -> bytes:
        out = bytes(data[:max_length])
        self.unconsumed_tail = bytes(data[max_length:])
        return out


def _require(members: dict[str, _NpyStream], *names: str) -> None:
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


class _Npz:
    """An opened npz: every member's header parsed (`__init__`); then `check` reads the
    per-trajectory members (`indices`, `terminal`) and `infos`, all checked against each other
    before any step is used; then groups of trajectories are decoded in order: `submit` starts
    inflating a group's rows (in two worker threads: ISA-L and zlib release the GIL), `build`
    makes them a `SourceRead`."""

    def __init__(self, path: Path):
        with _npz_errors():
            with zipfile.ZipFile(path) as zf:
                infos = [info for info in zf.infolist() if info.filename.endswith(".npy")]
            with open(path, "rb") as fh:
                self.mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.view = memoryview(self.mapped)
        self.members: dict[str, _NpyStream] = {}
        self.pool = ThreadPoolExecutor(max_workers=2)
        try:
            with _npz_errors():
                for info in infos:
                    self.members[info.filename[: -len(".npy")]] = _NpyStream(self.view, info)
        except BaseException:
            self.close()
            raise
        self.source_bytes = sum(info.file_size for info in infos)  # what the members inflate to

    def check(self) -> None:
        """Read and check what describes the trajectories (DataError when inconsistent)."""
        try:
            with _npz_errors():
                self._check()
        except BaseException:
            self.close()
            raise

    def _check(self) -> None:
        members = self.members
        _require(members, "obs", "acts")
        for name in ("obs", "acts", "rews"):
            if name in members:
                if not members[name].shape:
                    raise DataError(f"{name} is a single value, not an array of steps")
                storable_dtype(name, members[name].dtype)
        self.steps = steps = members["acts"].shape[0]
        if "rews" in members and members["rews"].shape[0] != steps:  # as the whole batch would say
            raise DataError(f"{members['rews'].shape[0]} rewards for {steps} actions")
        # Read whole: one entry per trajectory (what the chunks are cut by) or, for infos, a
        # pickle, which only decodes whole.
        if "indices" in members:  # N1
            _require(members, "terminal")
            self.lengths = _lengths_from_indices(members["indices"].whole(), steps)
            terminal = members["terminal"].whole().reshape(-1)
            if terminal.shape[0] != self.lengths.shape[0]:
                raise DataError(f"terminal has {terminal.shape[0]} entries but indices describe {self.lengths.shape[0]} trajectories")
            if members["obs"].shape[0] != steps + self.lengths.shape[0]:
                raise DataError(
                    f"obs has {members['obs'].shape[0]} rows but acts and indices imply {steps + self.lengths.shape[0]} "
                    f"({steps} actions + one final observation for each of {self.lengths.shape[0]} trajectories)"
                )
            self.family = "N1"
        else:  # N0: one trajectory; `terminal` (0-d) only from 2021
            self.lengths = np.array([steps])
            terminal = members["terminal"].whole().reshape(-1) if "terminal" in members else np.array([True])
            if terminal.shape[0] != 1:
                raise DataError(f"terminal has {terminal.shape[0]} entries for one trajectory")
            if members["obs"].shape[0] != steps + 1:  # as the whole batch would say
                raise DataError(
                    f"observations/actions length mismatch: {members['obs'].shape[0]} observations for {steps} actions "
                    f"in 1 episodes (expected {steps + 1})"
                )
            self.family = "N0"
        if terminal.dtype != np.bool_:
            raise DataError(f"terminal has dtype {terminal.dtype}, expected bool")
        self.terminal = terminal
        self.infos = _infos(members["infos"].whole() if "infos" in members else None, steps)
        # Whether infos are kept is decided over the whole file, so every chunk has the same columns.
        self.keep_infos = self.infos is not None and carries_infos(self.infos)

    def submit(self, rows: dict[str, int]) -> dict[str, Future[np.ndarray]]:
        """Start reading the next `rows[name]` rows of each step member present: obs (the
        biggest) on one worker while the others go on the second. A member is a stream: the
        next group is submitted only once this one's results are taken."""
        return {name: self.pool.submit(self.members[name].rows, n) for name, n in rows.items() if name in self.members}

    def group_rows(self, start: int, stop: int) -> dict[str, int]:
        """Rows of each step member that trajectories `start` .. `stop` - 1 span."""
        steps = int(self.lengths[start:stop].sum())
        return {"obs": steps + stop - start, "acts": steps, "rews": steps}

    def build(self, start: int, stop: int, reading: dict[str, Future[np.ndarray]]) -> SourceRead:
        """Trajectories `start` .. `stop` - 1, once their rows (`submit`) are read."""
        with _npz_errors():
            arrays = {name: future.result() for name, future in reading.items()}
        lengths = self.lengths[start:stop]
        first_step = int(self.lengths[:start].sum())
        infos = None if self.infos is None else self.infos[first_step : first_step + int(lengths.sum())]
        return make_read(
            f"imitation-npz-{self.family}",
            obs=arrays["obs"],
            acts=arrays["acts"],
            lengths=lengths,
            terminal=self.terminal[start:stop],
            rews=arrays.get("rews"),
            infos=infos,
            source_bytes=self.source_bytes,
            keep_infos=self.keep_infos,
        )

    def close(self) -> None:
        if hasattr(self, "pool"):
            self.pool.shutdown()
        for member in self.members.values():
            member.raw.release()
        self.view.release()
        try:
            self.mapped.close()
        except BufferError:  # a view still referenced by an exception's traceback: closed when collected
            pass


@contextlib.contextmanager
def _npz_errors() -> Iterator[None]:
    """What zipfile, the inflater and numpy's header parser raise on a bad file -> one DataError."""
    try:
        yield
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, _zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
        raise DataError(f"corrupted or truncated npz: {exc}") from None


def read(path: Path) -> SourceRead:
    """Read an N0 or N1 npz: the one-chunk case of `read_chunks`. Every row of obs, acts and
    rews is inflated (one call and one buffer per member) while `check` reads the rest."""
    npz = _Npz(path)
    try:
        reading = npz.submit(
            {name: member.shape[0] for name, member in npz.members.items() if name in ("obs", "acts", "rews") and member.shape}
        )
        npz.check()  # the step members' rows are then those of all trajectories
        return npz.build(0, len(npz.lengths), reading)
    finally:
        npz.close()


def read_chunks(path: Path) -> SourceChunks:
    """The trajectories in groups of about CHUNK_BYTES inflated, each member inflated as a
    stream (`_NpyStream`). The next group inflates while the current one is written, so memory
    holds two groups' steps, plus the per-trajectory members and the infos (a pickle, decoded
    whole)."""
    npz = _Npz(path)
    npz.check()
    members = [npz.members[name] for name in ("obs", "acts", "rews") if name in npz.members]
    step_bytes = sum(m.dtype.itemsize * int(np.prod(m.shape[1:], dtype=np.int64)) for m in members)
    ranges = chunk_ranges(npz.lengths, step_bytes)
    notes: list[str] = []

    def chunks() -> Iterator[EpisodeBatch]:
        try:
            unknown = 0
            reading = npz.submit(npz.group_rows(*ranges[0]))
            for i, (start, stop) in enumerate(ranges):
                current = reading
                with _npz_errors():
                    for future in current.values():
                        future.result()  # this group's streams are done: the next may start
                if i + 1 < len(ranges):
                    reading = npz.submit(npz.group_rows(*ranges[i + 1]))
                batch = npz.build(start, stop, current).batch
                del current
                unknown += int((~batch.termination_known).sum())
                yield batch
        finally:
            npz.close()
        note = termination_note(unknown, len(npz.lengths))
        if note:
            notes.append(note)

    return SourceChunks(format=f"imitation-npz-{npz.family}", notes=notes, chunks=chunks(), total_transitions=npz.steps)
