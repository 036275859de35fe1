"""The ildata trajectory store (format version 1), one module per part of the on-disk layout
(docs/format.md):

    layout.py       file names, meta/info.json as a typed DatasetInfo, Provenance
    episodes.py     meta/episodes.parquet
    fingerprint.py  content hashes (the fingerprint over data/ and the episode table)
    write.py        episodes -> a store (data/ shards, meta/*), atomically
    read.py         load, TrajectoryDataset, Transitions: memory-mapped views
    verify.py       structure checks (every load) and full checks (`ildata verify`)

This package never imports ildata.hub at module level (hub imports the store), nor
pyarrow.parquet on the read path (it would pull pandas into every `ildata.load`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Attributes load their module on first use: `ildata.load` then imports read.py and what it
# needs, not the writer (concurrent.futures, gymnasium helpers) or the hashing code.
_MODULES: dict[str, tuple[str, ...]] = {
    "layout": (
        "DATA_DIR",
        "DATA_FORMATS",
        "EPISODES_FILE",
        "FORMAT_NAME",
        "FORMAT_VERSION",
        "INFO_FILE",
        "SHARD_BYTES",
        "STATS_FILE",
        "DatasetInfo",
        "Feature",
        "Provenance",
        "Totals",
        "content_files",
        "is_store",
    ),
    "fingerprint": ("compute_fingerprint", "mismatched_files", "sha256_file", "sha256_path", "xxh3_file"),
    "read": ("CONCAT_FORMAT", "Part", "StoredColumn", "TrajectoryDataset", "Transitions", "decode_info", "load", "read_info", "to_numpy"),
    "verify": ("verify_store",),
    "write": ("episode_ordinals", "infos_to_json", "save", "split_obs", "to_arrow", "write_chunks", "write_dataset"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

if TYPE_CHECKING:
    from ildata.store.fingerprint import compute_fingerprint, mismatched_files, sha256_file, sha256_path, xxh3_file
    from ildata.store.layout import (
        DATA_DIR,
        DATA_FORMATS,
        EPISODES_FILE,
        FORMAT_NAME,
        FORMAT_VERSION,
        INFO_FILE,
        SHARD_BYTES,
        STATS_FILE,
        DatasetInfo,
        Feature,
        Provenance,
        Totals,
        content_files,
        is_store,
    )
    from ildata.store.read import CONCAT_FORMAT, Part, StoredColumn, TrajectoryDataset, Transitions, decode_info, load, read_info, to_numpy
    from ildata.store.verify import verify_store
    from ildata.store.write import episode_ordinals, infos_to_json, save, split_obs, to_arrow, write_chunks, write_dataset


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"ildata.store.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ildata.store' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
