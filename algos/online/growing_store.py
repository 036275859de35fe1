"""An ildata store that grows by one shard per append: DAgger's rounds, without rewriting earlier ones.

imitation's DAgger writes every episode as its own dataset and re-flattens all earlier rounds
each round (ONLINE-NOTES: about 700 env steps/s, cost growing with the rounds). Here a round's
episodes become one new Arrow shard under `data/`; only the small meta files are rewritten:

- `meta/episodes.parquet`: the old table plus the new rows (episode index and first row shifted);
- `meta/info.json`: totals, `data_files`, and the fingerprint, computed from the recorded digests
  of the old files plus the new shard's (the new shard alone is hashed);
- `meta/stats.json`: moments, extremes and return statistics merged exactly; quantiles merged as
  count-weighted averages of the parts' quantiles (`quantiles_exact: false`).

The result is a plain store (`ildata verify` and `ildata inspect` accept it). `info.json` is
written last: it is the commit point. `snapshot_meta`/`restore_meta` copy the three meta files
aside and back, so a run can roll the store back to its last finished round after an interrupt.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, EpisodeBatch
from ildata.fsutil import inside
from ildata.stats import rollout_stats
from ildata.store import DATA_DIR, EPISODES_FILE, INFO_FILE, STATS_FILE, DatasetInfo, Provenance, Totals, write_dataset, xxh3_file
from ildata.store.episodes import read_episodes, write_episodes
from ildata.store.layout import EPISODE_INDEX

META_FILES = (EPISODES_FILE, STATS_FILE, INFO_FILE)  # info.json last: the commit point
STAGING = ".staging"


def _fingerprint(hashes: dict[str, str]) -> str:
    """`ildata.store.compute_fingerprint`'s digest, from per-file digests already known."""
    import xxhash

    digest = xxhash.xxh3_128()
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name]}\n".encode())
    return f"xxh3_128:{digest.hexdigest()}"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _merge_feature(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two `ildata.stats.feature_stats` results as one: exact moments, approximate quantiles."""
    na, nb = a["count"], b["count"]
    if "mean" not in a:
        return b
    if "mean" not in b:
        return a
    n = na + nb
    ma, mb = np.asarray(a["mean"]), np.asarray(b["mean"])
    mean = (na * ma + nb * mb) / n
    second = (na * (np.square(a["std"]) + ma**2) + nb * (np.square(b["std"]) + mb**2)) / n
    out: dict[str, Any] = {
        "count": n,
        "mean": mean.tolist(),
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)).tolist(),
        "min": np.minimum(a["min"], b["min"]).tolist(),
        "max": np.maximum(a["max"], b["max"]).tolist(),
    }
    if "quantiles" in a and "quantiles" in b:
        out["quantiles"] = {
            q: ((na * np.asarray(a["quantiles"][q]) + nb * np.asarray(b["quantiles"][q])) / n).tolist() for q in a["quantiles"]
        }
        out["quantiles_exact"] = False
    return out


class GrowingStore:
    """A store at `root` that `append(batch)` extends by one shard; `root` need not exist yet."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def exists(self) -> bool:
        return (self.root / INFO_FILE).is_file()

    def info(self) -> DatasetInfo:
        return DatasetInfo.from_dict(json.loads((self.root / INFO_FILE).read_text()), subject=self.root / INFO_FILE)

    @property
    def num_transitions(self) -> int:
        return self.info().totals.transitions if self.exists else 0

    def append(self, batch: EpisodeBatch, *, observation_space: Any, action_space: Any, env_id: str | None, note: str = "") -> None:
        """Write `batch` as the next shard; the cost depends on the batch, not on the store's size."""
        staging = self.root.parent / f".{self.root.name}{STAGING}"
        if staging.exists():
            shutil.rmtree(staging)
        provenance = Provenance(source_format="dagger", extra={"note": note} if note else None)
        write_dataset(batch, staging, observation_space=observation_space, action_space=action_space, env_id=env_id, provenance=provenance)
        try:
            if not self.exists:
                if self.root.exists():
                    shutil.rmtree(self.root)  # an uncommitted first round
                os.replace(staging, self.root)
                return
            self._merge(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _merge(self, staging: Path) -> None:
        old = self.info()
        new = DatasetInfo.from_dict(json.loads((staging / INFO_FILE).read_text()), subject=staging / INFO_FILE)
        for name in ("features", "observation_space", "action_space", "has_rewards", "has_infos", "observation_keys"):
            if getattr(old, name) != getattr(new, name):
                raise DataError(f"cannot append: {name} differs from the store's", subject=self.root)
        self._drop_uncommitted(old)
        shard = f"{DATA_DIR}/shard-{len(old.data_files):05d}.arrow"
        # The staged shard numbers its episodes from 0: shift its per-step episode_index.
        source = pa.ipc.open_file(pa.memory_map(str(staging / new.data_files[0]))).read_all()
        column = source.schema.get_field_index(EPISODE_INDEX)
        shifted_rows = pa.array(source.column(column).to_numpy() + old.totals.episodes)
        rows = source.set_column(column, EPISODE_INDEX, shifted_rows)
        with pa.OSFile(str(inside(self.root, shard)), "wb") as sink, pa.ipc.new_file(sink, rows.schema) as writer:
            writer.write_table(rows, max_chunksize=rows.num_rows or None)
        # Episode table: the old rows, then the new ones shifted past them.
        old_table = read_episodes(self.root / EPISODES_FILE)
        new_table = read_episodes(staging / EPISODES_FILE)
        shifted = new_table.set_column(0, "episode_index", pa.array(new_table.column("episode_index").to_numpy() + old.totals.episodes))
        index = shifted.schema.get_field_index("first_row")
        shifted = shifted.set_column(index, "first_row", pa.array(shifted.column("first_row").to_numpy() + old.totals.transitions))
        table = pa.concat_tables([old_table, shifted])
        tmp_episodes = self.root / "meta" / ".episodes.parquet.tmp"
        write_episodes(table, tmp_episodes)
        os.replace(tmp_episodes, self.root / EPISODES_FILE)
        # Stats: merged from the two parts' stats.json.
        old_stats = json.loads((self.root / STATS_FILE).read_text())
        new_stats = json.loads((staging / STATS_FILE).read_text())
        returns = table.column("return").to_numpy(zero_copy_only=False) if old.has_rewards else None
        stats = {
            "episodes": rollout_stats(table.column("length").to_numpy(), returns),
            "features": {k: _merge_feature(v, new_stats["features"][k]) for k, v in old_stats["features"].items()},
        }
        _write_text(self.root / STATS_FILE, json.dumps(stats, indent=2))
        # info.json last: the commit point.
        hashes = {k: v for k, v in old.files_xxh3_128.items() if k != EPISODES_FILE}
        hashes[shard] = xxh3_file(self.root / shard)
        hashes[EPISODES_FILE] = xxh3_file(self.root / EPISODES_FILE)
        old.data_files = [*old.data_files, shard]
        old.totals = Totals(*(getattr(old.totals, k) + getattr(new.totals, k) for k in ("episodes", "transitions", "observations")))
        old.files_xxh3_128 = hashes
        old.fingerprint = _fingerprint(hashes)
        _write_text(self.root / INFO_FILE, json.dumps(old.to_dict(), indent=2))

    def _drop_uncommitted(self, info: DatasetInfo) -> None:
        """Remove shards info.json does not list (an append interrupted before its commit)."""
        listed = set(info.data_files)
        folder = self.root / DATA_DIR
        for path in folder.iterdir():
            if f"{DATA_DIR}/{path.name}" not in listed:
                path.unlink()

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
        self._drop_uncommitted(self.info())
