"""What an HDF5 source may hold: only objects stored in the file itself.

External links, soft links (which can dangle or loop), external-storage datasets and virtual
datasets would make a reader open other files; a source is read, and nothing outside it, so the
d3rlpy and Minari hdf5 readers both refuse them through these two checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ildata.episode import DataError

if TYPE_CHECKING:
    import h5py


def refuse_links(h5: h5py.File, subject: Path) -> None:
    """Every link in the file must be a hard link. One low-level pass; no object is opened."""
    from h5py import h5l

    kinds = {h5l.TYPE_SOFT: "soft link", h5l.TYPE_EXTERNAL: "external link"}
    # A non-None return stops the walk and is returned (an exception raised there would be garbled).
    found = h5.id.links.visit(lambda name, info: None if info.type == h5l.TYPE_HARD else (name, info.type), info=True)
    if found is not None:
        name, kind = found
        raise DataError(
            f"{name.decode(errors='replace')} is an HDF5 {kinds.get(kind, 'user-defined link')}, which ildata does not follow: refused",
            subject=subject,
        )


def refuse_external_storage(dataset: h5py.h5d.DatasetID, name: str, subject: Path) -> None:
    """Refuse a dataset whose values live in other files (external storage, virtual dataset)."""
    from h5py import h5d

    plist = dataset.get_create_plist()
    if plist.get_layout() == h5d.VIRTUAL or plist.get_external_count():
        kind = "virtual" if plist.get_layout() == h5d.VIRTUAL else "external-storage"
        raise DataError(f"{name} is stored in other files (an HDF5 {kind} dataset; external or virtual data is refused)", subject=subject)
