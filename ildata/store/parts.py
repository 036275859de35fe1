"""Several stores read as one dataset: which stores (Part), how their tables join without a
copy, and where each episode of the whole comes from (lineage).

This is the store's own machinery (a pickled multi-store dataset re-opens through it);
`ildata.concat` (ildata/combine.py) decides above it whether parts are compatible and what
metadata their combination has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from ildata.episode import DataError
from ildata.store.columns import to_numpy

# provenance `source_format` of a store written from several (`ildata.concat`, `ildata merge`)
CONCAT_FORMAT = "ildata-concat"


@dataclass(frozen=True)
class Part:
    """One store a dataset reads from: its folder, fingerprint, provenance, and how many episode
    rows of the combined episode table are its (in order)."""

    path: Path
    fingerprint: str
    provenance: dict[str, Any]
    episodes: int
    links_outside: bool = False  # as `load` was told (a Hub cache snapshot)


class Joined(NamedTuple):
    """The tables of several datasets as one: transition rows, episode table (offsets shifted),
    the episodes taken (indices into that table) and the stores read."""

    table: pa.Table
    episodes: pa.Table
    ids: np.ndarray
    parts: list[Part]


class Piece(NamedTuple):
    """What `join` needs of one dataset: its mapped tables, the episodes it takes, its stores."""

    table: pa.Table
    episodes: pa.Table
    ids: np.ndarray
    parts: Sequence[Part]


def join(pieces: Sequence[Piece], columns: Sequence[str]) -> Joined:
    """`pieces` one after the other, keeping `columns`: zero-copy (the mapped tables become the
    chunks of one table); episode rows renumbered and their first rows shifted past earlier pieces."""
    tables: list[pa.Table] = []
    first_rows: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    parts: list[Part] = []
    row_offset = episode_offset = 0
    for piece in pieces:
        tables.append(piece.table.select(list(columns)))
        first_rows.append(to_numpy(piece.episodes.column("first_row")) + row_offset)
        ids.append(piece.ids + episode_offset)
        parts.extend(piece.parts)
        row_offset += piece.table.num_rows
        episode_offset += piece.episodes.num_rows
    try:
        table = pa.concat_tables(tables)
        episodes = pa.concat_tables([piece.episodes for piece in pieces])
    except pa.ArrowException as exc:
        raise DataError(f"cannot concatenate: the parts' columns differ ({exc})") from None
    episodes = episodes.set_column(episodes.schema.get_field_index("first_row"), "first_row", pa.array(np.concatenate(first_rows)))
    episodes = episodes.set_column(episodes.schema.get_field_index("episode_index"), "episode_index", pa.array(np.arange(episode_offset)))
    return Joined(table, episodes, np.concatenate(ids), parts)


def episode_ranges(ids: np.ndarray) -> list[list[int]]:
    """Episode indices as [start, stop) runs (compact provenance for a subset)."""
    if len(ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = ids[np.concatenate([[0], breaks])]
    stops = ids[np.concatenate([breaks - 1, [len(ids) - 1]])] + 1
    return np.stack([starts, stops], axis=1).tolist()


def lineage(parts: Sequence[Part], ids: np.ndarray) -> list[dict[str, Any]]:
    """Where the episodes `ids` (of the parts' combined episode table) come from: per store, its
    path, fingerprint, provenance and the episodes taken ([start, stop) runs; null for all)."""
    out = []
    offset = 0
    for part in parts:
        mine = ids[(ids >= offset) & (ids < offset + part.episodes)] - offset
        whole = len(mine) == part.episodes and np.array_equal(mine, np.arange(part.episodes))
        out.append(
            {
                "path": str(part.path.absolute()),
                "fingerprint": part.fingerprint,
                "episodes": None if whole else episode_ranges(mine),
                "provenance": part.provenance,
            }
        )
        offset += part.episodes
    return out
