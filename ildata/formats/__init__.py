"""Source-format readers: each one turns a file or folder into an `EpisodeBatch`.

A reader module exposes `sniff(path) -> bool` (by content, never by extension) and
`read(path) -> SourceRead`. `read_source` tries them in order; the first that sniffs wins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ildata.episode import DataError, EpisodeBatch

# Module names under ildata.formats, tried in this order. Imported lazily so that
# `ildata --help` never pays for h5py/minari imports.
READERS: tuple[str, ...] = (
    "store_dir",
    "imitation_hf",
    "minari_dir",
    "d3rlpy_h5",
    "imitation_npz",
    "imitation_pickle",
)


@dataclass
class SourceRead:
    """What a reader found: the episodes plus whatever the source says about itself."""

    batch: EpisodeBatch
    format: str  # e.g. "imitation-pickle-P4", "imitation-npz-N1", "imitation-hf", "minari-arrow"
    observation_space: Any = None  # gymnasium.Space when the source records it
    action_space: Any = None
    env_id: str | None = None
    notes: list[str] = field(default_factory=list)  # things the user should know (shown by convert)


def read_source(path: str | Path) -> SourceRead:
    """Detect the format of `path` by content and read it."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError("file is empty")
    for name in READERS:
        try:
            module = importlib.import_module(f"ildata.formats.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ildata.formats.{name}":
                continue  # reader not part of this build
            raise
        if module.sniff(path):
            try:
                return module.read(path)
            except DataError:
                raise
            except MemoryError:
                raise DataError("not enough memory to read this file") from None
            except Exception as exc:  # a corrupted file must give one line, not a traceback
                raise DataError(f"corrupted or unreadable {name} data ({type(exc).__name__}: {exc})") from None
    raise DataError("unknown format (not an ildata store, imitation pickle/npz/HF directory, Minari dataset or d3rlpy h5 file)")
