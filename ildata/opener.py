"""`ildata.load`: what a user names, opened: a store folder (ildata.store) or an
`hf://owner/name@rev` reference (downloaded by ildata.hub first). It sits above both, so
that the store never depends on the Hub."""

from __future__ import annotations

from pathlib import Path

from ildata.store.dataset import TrajectoryDataset
from ildata.store.loading import load as load_store

HUB_SCHEME = "hf://"


def load(path: str | Path, *, verify: bool = False, links_outside: bool = False) -> TrajectoryDataset:
    """Open a store folder (`ildata.store.load`: memory-mapped, structure checked; `verify=True`
    re-hashes and checks every byte) or a Hub dataset `hf://owner/name[@rev]` (downloaded into
    huggingface_hub's cache, verified, then opened)."""
    if isinstance(path, str) and path.startswith(HUB_SCHEME):
        from ildata.hub import load_hf  # only for hf://: a plain load never imports the Hub client

        return load_hf(path)
    return load_store(path, verify=verify, links_outside=links_outside)
