"""An existing ildata store as a conversion source (re-writing it, e.g. to make it fixed-horizon)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import EpisodeBatch
from ildata.formats import SourceChunks, SourceRead, chunk_ranges

if TYPE_CHECKING:
    from ildata.store import TrajectoryDataset


def sniff(path: Path) -> bool:
    from ildata.store import is_store

    return path.is_dir() and is_store(path)


def _meta(ds: TrajectoryDataset) -> dict[str, Any]:
    from ildata.store import FORMAT_NAME, FORMAT_VERSION

    return dict(
        format=f"{FORMAT_NAME}-v{FORMAT_VERSION}",
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        env_id=ds.env_id,
        extra_info=dict(ds.meta.extra),
        provenance_extra={"source_fingerprint": ds.fingerprint, "parents": ds.lineage()},
    )


def read(path: Path) -> SourceRead:
    from ildata.store import load

    ds = load(path)
    return SourceRead(batch=ds.to_batch(), **_meta(ds))


def read_chunks(path: Path) -> SourceChunks:
    """The store's episodes in groups of about `CHUNK_BYTES`, each copied out of the mapped
    shards only when asked for."""
    from ildata.store import load

    ds = load(path)
    step_bytes = 0
    for name, feature in ds.meta.features.items():
        if feature.dtype != "json":  # infos: not counted
            size = np.dtype(feature.dtype).itemsize * int(np.prod(feature.shape, dtype=np.int64))
            step_bytes += size * (2 if name.startswith("obs") else 1)  # obs and next_obs

    def chunks() -> Iterator[EpisodeBatch]:
        for start, stop in chunk_ranges(ds.episode_column("length"), step_bytes):
            yield ds[start:stop].to_batch()

    return SourceChunks(chunks=chunks(), total_transitions=ds.num_transitions, **_meta(ds))
