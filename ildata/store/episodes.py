"""meta/episodes.parquet: one row per episode.

Read through pyarrow's `_parquet` reader rather than `pyarrow.parquet`, whose import pulls
`pyarrow.dataset` and with it pandas (+0.3 s, +60 MB in a fresh process): opening a store must
cost little more than `import pyarrow`. Written with `pyarrow.parquet` (writing is not latency
sensitive), so the file is a plain parquet file for every other tool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ildata.episode import DataError, EpisodeBatch
from ildata.fsutil import os_path, require_regular_file

SCHEMA = pa.schema(
    [
        pa.field("episode_index", pa.int64(), nullable=False),
        pa.field("length", pa.int64(), nullable=False),
        pa.field("return", pa.float64()),  # null without rewards
        pa.field("terminated", pa.bool_(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("termination_known", pa.bool_(), nullable=False),
        pa.field("first_row", pa.int64(), nullable=False),
        pa.field("seed", pa.int64()),  # null when unknown
    ]
)
NULLABLE = frozenset(f.name for f in SCHEMA if f.nullable)


def episode_table(batch: EpisodeBatch, *, first_episode: int = 0, first_row: int = 0) -> pa.Table:
    """The episode rows of `batch`, numbered from `first_episode`, its rows from `first_row`
    (a chunk of a store written piece by piece)."""
    lengths = batch.lengths
    n = len(lengths)
    returns = batch.returns()
    seeds = batch.seeds
    return pa.table(
        {
            "episode_index": pa.array(np.arange(first_episode, first_episode + n, dtype=np.int64)),
            "length": pa.array(lengths.astype(np.int64)),
            "return": pa.array(returns, type=pa.float64()) if returns is not None else pa.nulls(n, pa.float64()),
            "terminated": pa.array(batch.terminated),
            "truncated": pa.array(batch.truncated),
            "termination_known": pa.array(batch.termination_known),
            "first_row": pa.array(batch.first_rows.astype(np.int64) + first_row),
            "seed": pa.array(seeds, mask=seeds < 0, type=pa.int64()) if seeds is not None else pa.nulls(n, pa.int64()),
        }
    )


def write_episodes(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    with pa.OSFile(os_path(path), "wb") as sink:
        pq.write_table(table, sink)


def read_episodes(path: Path) -> pa.Table:
    """The episode table, fully validated (it is small; a damaged one must not crash a reader)."""
    require_regular_file(path)
    try:
        try:
            from pyarrow._parquet import ParquetReader
        except ImportError:  # pragma: no cover - a pyarrow without the private reader
            import pyarrow.parquet as pq

            table = pq.read_table(pa.memory_map(os_path(path)))
        else:
            reader = ParquetReader()
            reader.open(pa.memory_map(os_path(path)))
            table = reader.read_all()
        table.validate(full=True)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"corrupted episode table ({exc})", subject=path) from None
    return table


def schema_problems(table: pa.Table) -> list[str]:
    """Columns missing or of the wrong type, nulls where none may be."""
    problems = []
    for expected in SCHEMA:
        if expected.name not in table.column_names:
            problems.append(f"column {expected.name!r} is missing")
            continue
        column = table.column(expected.name)
        if column.type != expected.type:
            problems.append(f"column {expected.name!r} is {column.type}, expected {expected.type}")
        elif expected.name not in NULLABLE and column.null_count:
            problems.append(f"column {expected.name!r} has {column.null_count} nulls")
    return problems
