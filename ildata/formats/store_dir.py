"""An existing ildata store as a conversion source (re-writing it, e.g. to make it fixed-horizon)."""

from __future__ import annotations

from pathlib import Path

from ildata.formats import SourceRead


def sniff(path: Path) -> bool:
    from ildata.store import is_store

    return path.is_dir() and is_store(path)


def read(path: Path) -> SourceRead:
    from ildata.store import FORMAT_NAME, FORMAT_VERSION, load

    ds = load(path)
    return SourceRead(
        batch=ds.to_batch(),
        format=f"{FORMAT_NAME}-v{FORMAT_VERSION}",
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        env_id=ds.env_id,
        extra_info=dict(ds.meta.extra),
        provenance_extra={"source_fingerprint": ds.fingerprint, "parents": ds.lineage()},
    )
