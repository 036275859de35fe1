"""Source-format readers: each one turns a file or folder into an `EpisodeBatch`.

A reader module exposes `sniff(path) -> bool` (by content, never by extension) and
`read(path) -> SourceRead`. `read_source` tries them in order; the first that sniffs wins.
A reader of a source that can be read piece by piece may also expose
`read_chunks(path) -> SourceChunks` (its episodes as consecutive batches, read lazily), which
`read_source_chunks` prefers: `ildata convert` then writes with bounded memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch
from ildata.fsutil import require_regular_file
from ildata.registry import Registry

# Reader modules, tried in this order. Imported lazily (`ildata --help` never pays for h5py or
# minari); a module absent from this build is skipped.
READERS: Registry[ModuleType] = Registry(
    "reader",
    tuple(
        f"ildata.formats.{name}" for name in ("store_dir", "imitation_hf", "minari_dir", "d3rlpy_h5", "imitation_npz", "imitation_pickle")
    ),
    module_entries=True,
)


def _writer(module: str) -> Callable[..., Any]:
    """A writer function, imported only when called (its module pulls h5py/minari/datasets)."""

    def write(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return importlib.import_module(module).write(*args, **kwargs)

    write.__doc__ = f"`{module}.write`"
    return write


# `--to FORMAT` for formats other than ildata stores: `write(ds, dst, ...)`, one per format.
WRITERS: Registry[Callable[..., Any]] = Registry("output format", ())
for _name, _module in (
    ("minari", "ildata.formats.minari_dir"),
    ("d3rlpy", "ildata.formats.d3rlpy_h5"),
    ("imitation", "ildata.formats.imitation_hf"),
):
    WRITERS.register(_name)(_writer(_module))


@dataclass
class SourceMeta:
    """What a source says about itself, besides its episodes."""

    format: str  # e.g. "imitation-pickle-P4", "imitation-npz-N1", "imitation-hf", "minari-arrow"
    observation_space: Any = None  # gymnasium.Space when the source records it
    action_space: Any = None
    env_id: str | None = None
    notes: list[str] = field(default_factory=list)  # things the user should know (shown by convert)
    # meta/info.json keys the source already knows (an ildata store's `collection`: the expert's and
    # a random policy's returns), carried into the converted store.
    extra_info: dict[str, Any] = field(default_factory=dict)
    provenance_extra: dict[str, Any] = field(default_factory=dict)  # e.g. the parent store's fingerprint


@dataclass
class SourceRead(SourceMeta):
    """What a reader found: the episodes plus whatever the source says about itself."""

    batch: EpisodeBatch = field(kw_only=True)


@dataclass
class SourceChunks(SourceMeta):
    """A source read piece by piece: its episodes as consecutive batches, read only as the
    iterator is advanced (`notes` are complete once it is exhausted)."""

    chunks: Iterator[EpisodeBatch] = field(kw_only=True)
    total_transitions: int | None = field(default=None, kw_only=True)  # when known in advance

    @classmethod
    def of(cls, source: SourceMeta, batch: EpisodeBatch) -> SourceChunks:
        """`source`'s metadata with `batch` as the one chunk."""
        meta = {name: getattr(source, name) for name in SourceMeta.__dataclass_fields__}
        return cls(**meta, chunks=iter([batch]), total_transitions=batch.num_transitions)


# What a chunk of a source read piece by piece holds at most (roughly; one episode may exceed it).
CHUNK_BYTES = 64 << 20


def chunk_ranges(lengths: np.ndarray, bytes_per_step: float) -> list[tuple[int, int]]:
    """Consecutive episode ranges [start, stop) of about CHUNK_BYTES each (at least one episode)."""
    ends = np.cumsum(np.asarray(lengths, dtype=np.float64) * max(bytes_per_step, 1.0))
    ranges: list[tuple[int, int]] = []
    start, base = 0, 0.0
    while start < len(ends):
        stop = max(start + 1, int(np.searchsorted(ends, base + CHUNK_BYTES, side="right")))  # read at call time: tests lower it
        ranges.append((start, stop))
        start, base = stop, float(ends[stop - 1])
    return ranges


def _sniffed(path: Path) -> tuple[str, ModuleType]:
    """The reader module for `path` (DataError for a missing, empty or unknown source)."""
    if not path.exists():
        raise DataError("no such file or directory")
    if not path.is_dir():
        require_regular_file(path)  # a named pipe would block the first read forever
        if path.stat().st_size == 0:
            raise DataError("file is empty")
    for name, module in READERS.items():
        if module.sniff(path):
            return name, module
    raise DataError("unknown format (not an ildata store, imitation pickle/npz/HF directory, Minari dataset or d3rlpy h5 file)")


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Anything a reader raises becomes one DataError line (a corrupted file must give one line,
    not a traceback)."""
    try:
        yield
    except DataError:
        raise
    except MemoryError:
        raise DataError("not enough memory to read this file") from None
    except RecursionError:
        raise DataError(f"{name} data nested too deeply to read") from None
    except Exception as exc:  # last resort
        raise DataError(f"corrupted or unreadable {name} data ({type(exc).__name__}: {exc})") from None


def read_source(path: str | Path) -> SourceRead:
    """Detect the format of `path` by content and read it."""
    name, module = _sniffed(Path(path))
    with _reading(name):
        result: SourceRead = module.read(Path(path))
    return result


def _guarded(name: str, chunks: Iterable[EpisodeBatch]) -> Iterator[EpisodeBatch]:
    iterator = iter(chunks)
    while True:
        with _reading(name):
            chunk = next(iterator, None)
        if chunk is None:
            return
        yield chunk


def read_source_chunks(path: str | Path) -> SourceChunks:
    """Detect the format of `path` and read it piece by piece where its reader can (else as one
    chunk). Errors while the chunks are read are DataErrors too."""
    name, module = _sniffed(Path(path))
    with _reading(name):
        if hasattr(module, "read_chunks"):
            source: SourceChunks = module.read_chunks(Path(path))
            source.chunks = _guarded(name, source.chunks)
            return source
        whole: SourceRead = module.read(Path(path))
    return SourceChunks.of(whole, whole.batch)
