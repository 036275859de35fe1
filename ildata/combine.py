"""`ildata.concat`: several datasets read as one, without copying their data.

The parts' memory-mapped tables become the chunks of one table (`pa.concat_tables` is
zero-copy) and their episode tables one table with shifted row offsets; a subset of a part
stays that subset. `ildata merge` (ildata/cli/commands/merge.py) saves the result as a new store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ildata.episode import DataError
from ildata.store.dataset import TrajectoryDataset
from ildata.store.layout import INFOS, Provenance, Totals
from ildata.store.parts import CONCAT_FORMAT, Piece, join, lineage


def _name(ds: TrajectoryDataset, i: int) -> str:
    where = str(ds.path) if len(ds.parts) == 1 else f"concat of {len(ds.parts)} stores"
    return f"part {i + 1} ({where})"


def check_compatible(datasets: Sequence[TrajectoryDataset]) -> None:
    """Refuse parts that cannot be read as one dataset: different spaces, features or rewards
    (one DataError naming the first part that differs from the first one)."""
    first = datasets[0]
    for i, ds in enumerate(datasets[1:], start=1):
        differs = None
        if not (first.meta.spaces_inferred or ds.meta.spaces_inferred):
            if ds.meta.observation_space != first.meta.observation_space:
                differs = f"observation space {ds.observation_space} differs from part 1's {first.observation_space}"
            elif ds.meta.action_space != first.meta.action_space:
                differs = f"action space {ds.action_space} differs from part 1's {first.action_space}"
        mine = {k: f for k, f in ds.meta.features.items() if k != INFOS}
        theirs = {k: f for k, f in first.meta.features.items() if k != INFOS}
        if differs is None and ds.meta.has_rewards != first.meta.has_rewards:
            differs = "has rewards" if ds.meta.has_rewards else "has no rewards"
            differs += f" and {_name(first, 0)} " + ("does not" if ds.meta.has_rewards else "does")
        elif differs is None and mine != theirs:
            describe = lambda fs: ", ".join(f"{k} {f.dtype}{list(f.shape)}" for k, f in fs.items())  # noqa: E731
            differs = f"features ({describe(mine)}) differ from part 1's ({describe(theirs)})"
        if differs is not None:
            raise DataError(f"cannot concatenate {_name(ds, i)}: its {differs}")


def merge_collections(collections: Sequence[dict[str, Any] | None], episodes: Sequence[int]) -> dict[str, Any] | None:
    """The collection info of combined parts: kept when all agree; for collections of one env
    that differ (other seeds, other experts), the expert and random reference returns pooled
    over the parts' reference episodes; None when a part has none or the envs differ."""
    if not collections or any(c is None for c in collections):
        return None
    known = [c for c in collections if c is not None]
    if all(c == known[0] for c in known):
        return known[0]
    if len({c.get("env_id") for c in known}) != 1:
        return None
    merged: dict[str, Any] = {"env_id": known[0].get("env_id"), "parts": known}
    for ref, count in (("expert", "episodes"), ("random", "random_episodes")):
        raw = [c.get(f"{ref}_mean_return") for c in known]
        if any(not isinstance(v, (int, float)) for v in raw):
            continue
        values = np.array(raw, dtype=np.float64)
        weights = np.array([c[count] if isinstance(c.get(count), int) else n for c, n in zip(known, episodes)], dtype=np.float64)
        merged[f"{ref}_mean_return"] = float(np.average(values, weights=weights)) if weights.sum() > 0 else float(values.mean())
        merged[count] = int(sum(weights))
    return merged


def concat(datasets: Sequence[TrajectoryDataset]) -> TrajectoryDataset:
    """The episodes of every dataset in order, as one TrajectoryDataset over the parts' mapped
    files (no data is copied; a part may itself be a subset or a concat).

    The parts must share spaces, features and whether they have rewards (a DataError names the
    first that differs); infos are kept only when every part has them. The result's env id is
    the parts' when they agree (else None), its collection info `merge_collections`, its
    provenance lists every part (path, fingerprint, episodes taken, the part's own provenance),
    and `save` writes all of it into the new store."""
    datasets = list(datasets)
    if not datasets:
        raise DataError("concat needs at least one dataset")
    check_compatible(datasets)
    first = datasets[0]
    has_infos = all(ds.meta.has_infos for ds in datasets)
    common = [c for c in first._table.column_names if (c != INFOS or has_infos) and all(c in ds._table.column_names for ds in datasets)]
    table, episodes, subset, parts = join([Piece(ds._table, ds._episodes_all, ds.episode_ids, ds.parts) for ds in datasets], common)
    row_offset, episode_offset = table.num_rows, episodes.num_rows
    env_ids = {ds.env_id for ds in datasets}
    extras = [ds.meta.extra for ds in datasets]
    extra = {k: v for k, v in extras[0].items() if k != "collection" and all(e.get(k) == v for e in extras)}
    collection = merge_collections([ds.collection for ds in datasets], [len(ds) for ds in datasets])
    if collection is not None:
        extra["collection"] = collection
    meta = dataclasses.replace(
        first.meta,
        env_id=env_ids.pop() if len(env_ids) == 1 else None,
        spaces_inferred=any(ds.meta.spaces_inferred for ds in datasets),
        features={k: f for k, f in first.meta.features.items() if k != INFOS or has_infos},
        totals=Totals(episode_offset, row_offset, row_offset + episode_offset),
        has_infos=has_infos,
        data_files=[f if len(ds.parts) > 1 else str(ds.path / f) for ds in datasets for f in ds.meta.data_files],
        extra=extra,
    )
    whole = None if np.array_equal(subset, np.arange(episode_offset)) else subset
    sources = lineage(parts, subset)
    digest = hashlib.sha256(json.dumps([[p["fingerprint"], p["episodes"]] for p in sources]).encode()).hexdigest()[:32]
    meta = dataclasses.replace(
        meta, provenance=Provenance(source_format=CONCAT_FORMAT, extra={"parts": sources}), fingerprint=f"concat:{digest}"
    )
    return TrajectoryDataset(first.path, meta, table, episodes, whole, parts=parts)
