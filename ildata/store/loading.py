"""The store's two entry points: `load` opens a store folder, `save` writes episodes as a new
store and opens it. (`ildata.load` also takes `hf://` references: ildata/opener.py.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ildata.episode import DataError, Episode, EpisodeBatch
from ildata.store.dataset import TrajectoryDataset
from ildata.store.layout import Provenance

if TYPE_CHECKING:
    from gymnasium import Space


def load(path: str | Path, *, verify: bool = False, links_outside: bool = False) -> TrajectoryDataset:
    """Open a store (memory-mapped; nothing is read into memory until used).

    Always checks the structure (row counts, columns and their types against info.json, the
    declared spaces against the columns, episode table offsets and totals): a damaged store is a
    DataError, not wrong data. `verify=True` also re-hashes the files against the fingerprint and
    checks the content (`ildata verify`). `links_outside`: shards may be symlinks to elsewhere (a
    huggingface_hub cache snapshot).
    """
    if isinstance(path, str) and path.startswith("hf://"):
        raise DataError(f"{path} is a Hub reference: open it with ildata.load (ildata.store.load opens store folders)")
    return TrajectoryDataset.open(Path(path), verify=verify, links_outside=links_outside)


def save(
    episodes: Sequence[Episode] | EpisodeBatch,
    dst: str | Path,
    *,
    observation_space: Space | None = None,
    action_space: Space | None = None,
    env_id: str | None = None,
    overwrite: bool = False,
    provenance: Provenance | None = None,
    extra_info: Mapping[str, Any] | None = None,
    data_format: str = "arrow",
) -> TrajectoryDataset:
    """Write episodes as a new store and open it."""
    from ildata.store.write import write_dataset  # the writer only when writing: `load` stays light

    batch = episodes if isinstance(episodes, EpisodeBatch) else EpisodeBatch.from_episodes(list(episodes))
    path = write_dataset(
        batch,
        dst,
        observation_space=observation_space,
        action_space=action_space,
        env_id=env_id,
        provenance=provenance or Provenance(source_format="python"),
        overwrite=overwrite,
        extra_info=extra_info,
        data_format=data_format,
    )
    return load(path)
