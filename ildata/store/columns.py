"""How per-step data is stored in Arrow columns, and read back as numpy.

Encoding (numpy -> Arrow) is used by the writer, decoding (Arrow -> zero-copy numpy views) by the
reader and the checks: both directions live here so that neither depends on the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError

# pyarrow's own Array.to_numpy imports pandas (+0.3 s in a fresh process) even for plain numbers,
# so columns become numpy arrays straight from their buffers: zero-copy, read-only views.
_NUMPY_TYPES: dict[pa.DataType, np.dtype] = {
    pa.from_numpy_dtype(np.dtype(code)): np.dtype(code) for code in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
}


# --------------------------------------------------------------------------- numpy -> Arrow


def to_arrow(array: np.ndarray) -> pa.Array:
    """(N, *shape) numpy -> (nested) fixed-size-list Arrow array, zero-copy for contiguous data."""
    flat = np.ascontiguousarray(array).reshape(-1)
    arrow: pa.Array = pa.array(flat)
    for size in reversed(array.shape[1:]):
        arrow = pa.FixedSizeListArray.from_arrays(arrow, int(size))
    return arrow


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def infos_to_json(infos: Sequence[Any]) -> pa.Array:
    """Per-step infos -> JSON text (strings that already are text, e.g. jsonpickle, stay as-is)."""

    def encode(info: Any) -> str | None:
        if info is None:
            return None
        if isinstance(info, str):
            return info
        return json.dumps(info, default=_json_default)

    return pa.array([encode(i) for i in infos], type=pa.large_string())


def episode_ordinals(lengths: np.ndarray) -> np.ndarray:
    """Episode number of every transition row."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def split_obs(obs: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum(T+1), ...) observations -> (obs, next_obs), each (sum(T), ...)."""
    obs_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    if len(lengths) * 64 > len(obs):
        # Many short episodes: one boolean-mask gather per output.
        is_final = np.zeros(obs.shape[0], dtype=bool)
        is_final[obs_start + lengths] = True
        is_first = np.zeros(obs.shape[0], dtype=bool)
        is_first[obs_start] = True
        return obs[~is_final], obs[~is_first]
    # Long episodes: one memcpy per episode is ~3x faster than a boolean gather (a loop over
    # episodes, never over steps).
    out_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    head = np.empty((int(lengths.sum()),) + obs.shape[1:], dtype=obs.dtype)
    tail = np.empty_like(head)
    for src, dst, n in zip(obs_start.tolist(), out_start.tolist(), lengths.tolist()):
        head[dst : dst + n] = obs[src : src + n]
        tail[dst : dst + n] = obs[src + 1 : src + n + 1]
    return head, tail


def join_obs(obs: np.ndarray, next_obs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Inverse of `split_obs`: per-transition (obs, next_obs) -> (sum(T+1), ...) observations."""
    ends = np.cumsum(lengths) - 1
    out = np.empty((obs.shape[0] + len(lengths),) + obs.shape[1:], dtype=obs.dtype)
    out[np.arange(obs.shape[0]) + episode_ordinals(lengths)] = obs
    out[ends + np.arange(len(lengths)) + 1] = next_obs[ends]
    return out


# --------------------------------------------------------------------------- Arrow -> numpy


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """A bit-packed Arrow buffer (booleans, validity) as a numpy bool array (a copy, 1/8 the size)."""
    packed = np.frombuffer(buffer, dtype=np.uint8, count=(offset + length + 7) // 8)
    return np.unpackbits(packed, bitorder="little", count=offset + length)[offset:].view(np.bool_)


def _flat_numpy(array: pa.Array) -> np.ndarray:
    """A primitive or boolean Arrow array as numpy; nulls become NaN (in float64 for integers)."""
    length, offset = len(array), array.offset
    buffers = array.buffers()
    if pa.types.is_boolean(array.type):
        values = _bits(buffers[1], offset, length) if length else np.zeros(0, np.bool_)
    elif array.type in _NUMPY_TYPES:
        dtype = _NUMPY_TYPES[array.type]
        values = np.frombuffer(buffers[1], dtype=dtype, count=offset + length)[offset:] if length else np.zeros(0, dtype)
        values.flags.writeable = False  # a view of the (read-only) mapped file
    else:
        raise DataError(f"column of type {array.type} cannot be read as a numpy array")
    if array.null_count:
        valid = _bits(buffers[0], offset, length)
        values = np.where(valid, values, np.nan)
    return values


def single_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one array: its only chunk as it is (pyarrow's `combine_chunks` copies even
    then), else the chunks concatenated."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Inverse of `to_arrow`; zero-copy (a read-only view) for a single-chunk numeric column
    without nulls, whatever its nesting of fixed-size lists."""
    array = single_chunk(array)
    shape: list[int] = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        size = array.type.list_size
        # `.values` ignores the parent's slice offset, so slice it here (`flatten()` would do the
        # same but imports pyarrow.compute, ~30 ms cold); columns are checked to hold no nulls.
        array = array.values.slice(array.offset * size, len(array) * size)
    return _flat_numpy(array).reshape(shape)


def decode_info(text: str | None) -> Any:
    """Inverse of `infos_to_json` for one step."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # kept verbatim (e.g. a jsonpickle payload that was not plain JSON)
    except RecursionError:
        raise DataError("an info's JSON is nested too deeply to decode") from None


class StoredColumn:
    """A stored column that spans several Arrow chunks (shards, or the parts of `concat`), indexed
    like a numpy array without concatenating it: a slice inside one chunk is a view, anything
    else gathers only the rows asked for (one fancy index per chunk touched)."""

    def __init__(self, chunks: Sequence[np.ndarray]):
        self.chunks = list(chunks)
        sizes = np.array([len(c) for c in self.chunks], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.shape: tuple[int, ...] = (int(self.starts[-1]),) + tuple(self.chunks[0].shape[1:])
        self.dtype = self.chunks[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step != 1:
                return self[np.arange(start, stop, step)]
            if stop <= start:
                return self.chunks[0][0:0]
            first = int(np.searchsorted(self.starts, start, side="right")) - 1
            last = int(np.searchsorted(self.starts, stop, side="left")) - 1
            pieces = [self.chunks[c][max(start - self.starts[c], 0) : stop - self.starts[c]] for c in range(first, last + 1)]
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            rows = np.flatnonzero(rows)
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row index out of range for {self.shape[0]} rows")
        chunk = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty(rows.shape + self.shape[1:], dtype=self.dtype)
        for c in np.unique(chunk).tolist():
            mask = chunk == c
            out[mask] = self.chunks[c][rows[mask] - self.starts[c]]
        return out


Column = np.ndarray | StoredColumn


def numpy_column(table: pa.Table, name: str) -> Column:
    """A whole column of a (memory-mapped) table as numpy: one array for a single chunk, a
    StoredColumn over several chunks (shards, or the parts of a concat)."""
    chunks = table.column(name).chunks
    arrays = [to_numpy(chunk) for chunk in chunks if len(chunk)]
    return arrays[0] if len(arrays) == 1 else StoredColumn(arrays or [to_numpy(chunks[0])])
