"""Source-format readers: each one turns a file or folder into an `EpisodeBatch`.

A reader module exposes `sniff(path) -> bool` (by content, never by extension) and
`read(path) -> SourceRead`. `read_source` tries them in order; the first that sniffs wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

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
class SourceRead:
    """What a reader found: the episodes plus whatever the source says about itself."""

    batch: EpisodeBatch
    format: str  # e.g. "imitation-pickle-P4", "imitation-npz-N1", "imitation-hf", "minari-arrow"
    observation_space: Any = None  # gymnasium.Space when the source records it
    action_space: Any = None
    env_id: str | None = None
    notes: list[str] = field(default_factory=list)  # things the user should know (shown by convert)
    # meta/info.json keys the source already knows (an ildata store's `collection`: the expert's and
    # a random policy's returns), carried into the converted store.
    extra_info: dict[str, Any] = field(default_factory=dict)
    provenance_extra: dict[str, Any] = field(default_factory=dict)  # e.g. the parent store's fingerprint


def read_source(path: str | Path) -> SourceRead:
    """Detect the format of `path` by content and read it."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory")
    if not path.is_dir():
        require_regular_file(path)  # a named pipe would block the first read forever
        if path.stat().st_size == 0:
            raise DataError("file is empty")
    for name, module in READERS.items():
        if module.sniff(path):
            try:
                return module.read(path)
            except DataError:
                raise
            except MemoryError:
                raise DataError("not enough memory to read this file") from None
            except RecursionError:
                raise DataError(f"{name} data nested too deeply to read") from None
            except Exception as exc:  # last resort: a corrupted file must give one line, not a traceback
                raise DataError(f"corrupted or unreadable {name} data ({type(exc).__name__}: {exc})") from None
    raise DataError("unknown format (not an ildata store, imitation pickle/npz/HF directory, Minari dataset or d3rlpy h5 file)")
