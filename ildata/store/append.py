"""Adding episodes to an existing store without rewriting it: the new episodes become new shards
under `data/` (cut and written by the same shard writer as `write_dataset`), and only the small
meta files are rewritten:

- `meta/episodes.parquet`: the old rows plus the new ones (episode index and first row continued);
- `meta/stats.json`: moments, extremes and episode statistics exact; quantiles merged as
  count-weighted averages of the old and new quantiles (`quantiles_exact: false`);
- `meta/info.json`: totals, `data_files`, and the fingerprint, from the recorded digests of the
  old files plus those of the new ones (only new files are hashed). Written last: it is the
  commit point, and shards it does not list are removed by the next append
  (`drop_unlisted_shards`).

The result is a plain store that `load(verify=True)` and `ildata verify` accept. Its shards are
cut where the appends were, so its fingerprint differs from that of a store written in one go
from the same episodes (whose shards are cut by size alone).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, EpisodeBatch
from ildata.spaces import check_matches, space_from_dict, space_to_dict
from ildata.stats import FeatureStats, rollout_stats
from ildata.store.columns import to_numpy
from ildata.store.episodes import episode_table, read_episodes, write_episodes
from ildata.store.fingerprint import fingerprint_of, xxh3_file
from ildata.store.layout import DATA_DIR, EPISODES_FILE, INFO_FILE, INFOS, STATS_FILE, DatasetInfo, Totals
from ildata.store.shards import read_info
from ildata.store.write import ShardPacker, chunk_table

if TYPE_CHECKING:
    from gymnasium import Space


def append_episodes(
    root: str | Path, batch: EpisodeBatch, *, observation_space: Space | None = None, action_space: Space | None = None
) -> DatasetInfo:
    """Add `batch` to the store at `root` (as one or more new shards); returns the new info.json.

    The episodes must have the store's features; spaces, when given, must be the store's (by
    default the store's own are used to check the actions). The cost depends on the batch, not
    on the store's size."""
    root = Path(root)
    info = read_info(root)
    batch.validate()
    for what, given, declared in (
        ("observation_space", observation_space, info.observation_space),
        ("action_space", action_space, info.action_space),
    ):
        if given is not None and space_to_dict(given) != declared:
            raise DataError(f"cannot append: the {what} differs from the store's", subject=root)
    check_matches(action_space if action_space is not None else space_from_dict(info.action_space), batch.acts, "actions")
    table, features, keys = chunk_table(batch, info.totals.episodes)
    if features != info.features or (None if keys == [""] else keys) != info.observation_keys:
        raise DataError(f"cannot append: the episodes' features ({features}) differ from the store's ({info.features})", subject=root)
    drop_unlisted_shards(root, info)

    accumulators = {name: FeatureStats(batch.num_transitions, f.shape) for name, f in features.items() if name != INFOS}

    def add_stats(shard: pa.Table) -> None:
        for name, accumulator in accumulators.items():
            accumulator.add(to_numpy(shard.column(name)))

    packer = ShardPacker(root / DATA_DIR, info.data_format, add_stats, first_shard=len(info.data_files))
    packer.add(table, batch.lengths)
    packer.flush()

    new_rows = episode_table(batch, first_episode=info.totals.episodes, first_row=info.totals.transitions)
    episodes = pa.concat_tables([read_episodes(root / EPISODES_FILE), new_rows]).combine_chunks()
    _replace_file(root / EPISODES_FILE, lambda tmp: write_episodes(episodes, tmp))

    old_stats = json.loads((root / STATS_FILE).read_text())
    returns = to_numpy(episodes.column("return")) if info.has_rewards else None
    stats = {
        "episodes": rollout_stats(to_numpy(episodes.column("length")), returns),
        "features": {name: merge_feature_stats(old_stats["features"][name], acc.result()) for name, acc in accumulators.items()},
    }
    _replace_file(root / STATS_FILE, lambda tmp: tmp.write_text(json.dumps(stats, indent=2)))

    hashes = {name: digest for name, digest in info.files_xxh3_128.items() if name != EPISODES_FILE}
    hashes.update({name: xxh3_file(root / name) for name in [*packer.names, EPISODES_FILE]})
    info.data_files = [*info.data_files, *packer.names]
    info.totals = Totals(
        info.totals.episodes + batch.num_episodes,
        info.totals.transitions + batch.num_transitions,
        info.totals.observations + batch.num_transitions + batch.num_episodes,
    )
    info.files_xxh3_128 = hashes
    info.fingerprint = fingerprint_of(hashes)
    _replace_file(root / INFO_FILE, lambda tmp: tmp.write_text(json.dumps(info.to_dict(), indent=2)))
    return info


def drop_unlisted_shards(root: Path, info: DatasetInfo) -> None:
    """Remove files under data/ that info.json does not list: the shards of an append interrupted
    before its commit (or rolled back by restoring older meta files)."""
    listed = set(info.data_files)
    for path in (root / DATA_DIR).iterdir():
        if f"{DATA_DIR}/{path.name}" not in listed:
            path.unlink()


def merge_feature_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two `ildata.stats.FeatureStats` results as one: exact counts, moments and extremes;
    quantiles as count-weighted averages (then marked `quantiles_exact: false`)."""
    if "mean" not in a:
        return b
    if "mean" not in b:
        return a
    na, nb = a["count"], b["count"]
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


def _replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file beside `path` with `write(tmp)`, then rename it over `path` (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
