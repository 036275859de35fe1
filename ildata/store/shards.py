"""Opening a store's files: meta/info.json (typed), the data shards and the episode table, each
validated before any buffer is touched, so that a damaged file is a DataError, never a crash."""

from __future__ import annotations

import errno
import json
import os
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


class ShardMemoryError(DataError):
    """A shard this process has no room to map (or decode): a resource limit (`ulimit -v`), not
    damage, so the store may still open in a process with more room."""


def _out_of_memory(exc: BaseException) -> bool:
    """Whether a failure to open a shard is a lack of memory. Arrow reports a refused mmap as an
    OSError without errno, only its text ("Memory mapping file failed: Cannot allocate memory")."""
    return isinstance(exc, MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM or os.strerror(errno.ENOMEM) in str(exc)


def read_shard(path: Path, *, full: bool = False) -> pa.Table:
    """One shard as a single-chunk table: Arrow shards are memory-mapped (no copy), parquet ones
    decoded into memory. Validated before any buffer is touched: fixed-size columns fully (free:
    their layout has no offsets), the infos column structurally (fully with `full`, or when first
    decoded), so that corrupted offsets are a DataError, never a crash. No room to map or decode it
    is a ShardMemoryError, which says so instead of calling the shard corrupted."""
    require_regular_file(path)
    parquet = path.suffix == DATA_FORMATS["parquet"]
    try:
        if parquet:
            import pyarrow.parquet as pq

            table = pq.read_table(pa.memory_map(os_path(path))).combine_chunks()
        else:
            table = pa.ipc.open_file(pa.memory_map(os_path(path))).read_all()
        for name, column in zip(table.column_names, table.columns):
            column.validate(full=full or name != INFOS)
    except (OSError, MemoryError, pa.ArrowException) as exc:
        if _out_of_memory(exc):
            raise ShardMemoryError(f"not enough memory to {'read' if parquet else 'map'} the shard ({exc})", subject=path) from None
        raise DataError(f"corrupted data ({exc})", subject=path) from None
    return table


def check_shards_one_at_a_time(root: Path) -> None:
    """What `load` checks of a store's shards, with one shard mapped at a time, for a writer
    checking a store bigger than this process may map at once (`open_files` maps them all): each
    shard is readable and valid (`read_shard`), all share one schema, and together they hold the
    rows that info.json and the episode table count. Their columns' types and the declared spaces
    are the ones the writer derived from these same shards."""
    info = read_info(root)
    schema: pa.Schema | None = None
    rows = 0
    for path in info.data_paths(root):
        shard = read_shard(path)
        if schema is None:
            schema = shard.schema
        elif not shard.schema.equals(schema):
            differ = sorted({f"{field.name}: {field.type}" for field in shard.schema} ^ {f"{field.name}: {field.type}" for field in schema})
            raise DataError(f"its columns differ from the first shard's ({', '.join(differ)})", subject=path)
        rows += shard.num_rows
        del shard  # unmapped before the next shard is mapped
    lengths = read_episodes(root / EPISODES_FILE).column("length").to_numpy()  # one number per episode: small
    counted = {"the shards": rows, INFO_FILE: info.totals.transitions, EPISODES_FILE: int(lengths.sum())}
    if len(set(counted.values())) > 1:
        raise DataError(f"the transitions counted disagree ({', '.join(f'{where}: {n}' for where, n in counted.items())})", subject=root)


def open_files(root: Path, info: DatasetInfo, *, full: bool = False, links_outside: bool = False) -> tuple[pa.Table, pa.Table]:
    """The shards (concatenated, zero-copy) and the episode table, each validated (`read_shard`)."""
    tables = [read_shard(path, full=full) for path in info.data_paths(root, links_outside=links_outside)]
    try:
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    except pa.ArrowException as exc:
        raise DataError(f"shards do not share one schema ({exc})", subject=root) from None
    return table, read_episodes(root / EPISODES_FILE)
