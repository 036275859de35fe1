"""An ildata store that grows by one shard per append: DAgger's rounds, without rewriting earlier ones.

imitation's DAgger writes every episode as its own dataset and re-flattens all earlier rounds
each round (about 700 env steps/s, a cost growing with the rounds). Here the first round is
written as a store (`ildata.store.write_dataset`) and each later round's episodes are appended
to it (`ildata.store.append_episodes`: new shards, only the small meta files rewritten).

The result is a plain store (`ildata verify` and `ildata inspect` accept it). `info.json` is
written last: it is the commit point. `snapshot_meta`/`restore_meta` copy the three meta files
aside and back, so a run can roll the store back to its last finished round after an interrupt.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ildata.episode import EpisodeBatch
from ildata.store import EPISODES_FILE, INFO_FILE, STATS_FILE, DatasetInfo, Provenance, append_episodes, read_info, write_dataset
from ildata.store.append import drop_unlisted_shards

META_FILES = (EPISODES_FILE, STATS_FILE, INFO_FILE)  # info.json last: the commit point


class GrowingStore:
    """A store at `root` that `append(batch)` extends by one shard; `root` need not exist yet."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def exists(self) -> bool:
        return (self.root / INFO_FILE).is_file()

    def info(self) -> DatasetInfo:
        return read_info(self.root)

    @property
    def num_transitions(self) -> int:
        return self.info().totals.transitions if self.exists else 0

    def append(self, batch: EpisodeBatch, *, observation_space: Any, action_space: Any, env_id: str | None, note: str = "") -> None:
        """Write `batch` as the next shard; the cost depends on the batch, not on the store's size."""
        if self.exists:
            append_episodes(self.root, batch, observation_space=observation_space, action_space=action_space)
            return
        provenance = Provenance(source_format="dagger", extra={"note": note} if note else None)
        # overwrite: a folder without info.json is an uncommitted first round
        write_dataset(
            batch,
            self.root,
            observation_space=observation_space,
            action_space=action_space,
            env_id=env_id,
            provenance=provenance,
            overwrite=True,
        )

    # ------------------------------------------------------------------ checkpoints

    def snapshot_meta(self, dst: Path) -> None:
        """Copy the meta files (small: no shard) to `dst`, to roll back to this state later."""
        (dst / "meta").mkdir(parents=True, exist_ok=True)
        for name in META_FILES:
            shutil.copyfile(self.root / name, dst / name)

    def restore_meta(self, src: Path | None) -> None:
        """Roll the store back to a `snapshot_meta` (None: to no store at all)."""
        if src is None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for name in META_FILES:
            tmp = self.root / f"{name}.restore"
            shutil.copyfile(src / name, tmp)
            os.replace(tmp, self.root / name)
        drop_unlisted_shards(self.root, self.info())
