"""ildata: one typed, Arrow-backed trajectory store for every imitation-learning data format.

Attributes are imported lazily so that the CLI starts without loading pyarrow or gymnasium, and
no module of the package needs to import this one (the version lives in ildata/version.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ildata.version import __version__

_EXPORTS = {
    "load": "ildata.opener",
    "save": "ildata.store",
    "TrajectoryDataset": "ildata.store",
    "Transitions": "ildata.store",
    "Provenance": "ildata.store",
    "DatasetInfo": "ildata.store",
    "convert": "ildata.conversion",
    "concat": "ildata.combine",
    "Episode": "ildata.episode",
    "EpisodeBatch": "ildata.episode",
    "DataError": "ildata.episode",
    "VariableHorizonError": "ildata.horizon",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from ildata.combine import concat
    from ildata.conversion import convert
    from ildata.episode import DataError, Episode, EpisodeBatch
    from ildata.horizon import VariableHorizonError
    from ildata.opener import load
    from ildata.store import DatasetInfo, Provenance, TrajectoryDataset, Transitions, save


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ildata' has no attribute {name!r}")
