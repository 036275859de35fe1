"""The ildata trajectory store (format version 1, docs/format.md), one module per job, from the
on-disk layout at the bottom to the dataset API at the top:

    layout.py       file names, meta/info.json as a typed DatasetInfo, Provenance
    episodes.py     meta/episodes.parquet
    fingerprint.py  content hashes (the fingerprint over data/ and the episode table)
    columns.py      per-step data <-> Arrow columns (encoding, zero-copy decoding)
    shards.py       opening info.json, the shards and the episode table, validated
    declared_spaces.py  info.json's spaces against its features (cheap: every load)
    verify.py       structure checks (every load) and full checks (`ildata verify`)
    write.py        episodes -> a store (data/ shards, meta/*), atomically
    append.py       episodes added to an existing store as new shards
    parts.py        several stores read as one: Part, joining their tables, lineage
    selection.py    which episodes `select`, `filter` and `split` take
    transitions.py  Transitions, and the index arithmetic from episodes to stored rows
    dataset.py      TrajectoryDataset: memory-mapped views of episodes and transitions
    loading.py      load (open a store folder) and save (write episodes, then open them)

Each module imports only those listed above it. The store never imports ildata.hub,
ildata.formats or ildata.combine (they build on it; `ildata.load` of an `hf://` reference is
ildata/opener.py), nor pyarrow.parquet on the read path (it would pull pandas into every load).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Attributes load their module on first use: `ildata.load` then imports what reading needs.
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
    "columns": ("StoredColumn", "decode_info", "episode_ordinals", "infos_to_json", "split_obs", "to_arrow", "to_numpy"),
    "shards": ("read_info",),
    "parts": ("CONCAT_FORMAT", "Part"),
    "transitions": ("Transitions",),
    "dataset": ("TrajectoryDataset",),
    "loading": ("load", "save"),
    "verify": ("verify_store",),
    "write": ("write_chunks", "write_dataset"),
    "append": ("append_episodes",),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

if TYPE_CHECKING:
    from ildata.store.append import append_episodes
    from ildata.store.columns import StoredColumn, decode_info, episode_ordinals, infos_to_json, split_obs, to_arrow, to_numpy
    from ildata.store.dataset import TrajectoryDataset
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
    from ildata.store.loading import load, save
    from ildata.store.parts import CONCAT_FORMAT, Part
    from ildata.store.shards import read_info
    from ildata.store.transitions import Transitions
    from ildata.store.verify import verify_store
    from ildata.store.write import write_chunks, write_dataset


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"ildata.store.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ildata.store' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
