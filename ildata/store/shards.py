"""Opening a store's files: meta/info.json (typed), the data shards and the episode table, each
validated before any buffer is touched, so that a damaged file is a DataError, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from ildata.episode import DataError
from ildata.fsutil import os_path, require_regular_file
from ildata.store.episodes import read_episodes
from ildata.store.layout import DATA_FORMATS, EPISODES_FILE, INFO_FILE, INFOS, DatasetInfo, is_store


def read_info(root: Path) -> DatasetInfo:
    """meta/info.json of the store at `root`, parsed and type-checked."""
    if not root.exists():
        raise DataError("no such file or directory", subject=root)
    if not is_store(root):
        raise DataError(f"{root} is not an ildata dataset (no {INFO_FILE}); use `ildata convert` first")
    path = require_regular_file(root / INFO_FILE)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON ({exc})", subject=path) from None
    return DatasetInfo.from_dict(data, subject=path)


def read_shard(path: Path, *, full: bool = False) -> pa.Table:
    """One shard as a single-chunk table: Arrow shards are memory-mapped (no copy), parquet ones
    decoded into memory. Validated before any buffer is touched: fixed-size columns fully (free:
    their layout has no offsets), the infos column structurally (fully with `full`, or when first
    decoded), so that corrupted offsets are a DataError, never a crash."""
    require_regular_file(path)
    try:
        if path.suffix == DATA_FORMATS["parquet"]:
            import pyarrow.parquet as pq

            table = pq.read_table(pa.memory_map(os_path(path))).combine_chunks()
        else:
            table = pa.ipc.open_file(pa.memory_map(os_path(path))).read_all()
        for name, column in zip(table.column_names, table.columns):
            column.validate(full=full or name != INFOS)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"corrupted data ({exc})", subject=path) from None
    return table


def open_files(root: Path, info: DatasetInfo, *, full: bool = False, links_outside: bool = False) -> tuple[pa.Table, pa.Table]:
    """The shards (concatenated, zero-copy) and the episode table, each validated (`read_shard`)."""
    tables = [read_shard(path, full=full) for path in info.data_paths(root, links_outside=links_outside)]
    try:
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    except pa.ArrowException as exc:
        raise DataError(f"shards do not share one schema ({exc})", subject=root) from None
    return table, read_episodes(root / EPISODES_FILE)
