"""Checking a store against itself: what `load` always checks (structure: cheap, metadata and the
episode table only) and what `ildata verify` / `load(verify=True)` adds (content: the fingerprint
over every byte, and the per-step columns against the episode table and the spaces).

Each check yields one line per problem, naming the file it is in, so `ildata verify` can list
them all while `load` raises the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ildata.episode import DataError
from ildata.store.columns import to_numpy
from ildata.store.declared_spaces import declared_space_problems
from ildata.store.episodes import schema_problems
from ildata.store.layout import (
    DATA_DIR,
    EPISODE_INDEX,
    EPISODES_FILE,
    FLAG_COLUMNS,
    INFO_FILE,
    INFOS,
    DatasetInfo,
    Feature,
)
from ildata.store.shards import open_files, read_info

DATA = f"{DATA_DIR}/"


def arrow_type(feature: Feature) -> pa.DataType:
    """The column type a feature of info.json is stored as (docs/format.md)."""
    if feature.dtype == "json":
        return pa.large_string()
    arrow: pa.DataType = pa.from_numpy_dtype(np.dtype(feature.dtype))
    for size in reversed(feature.shape):
        arrow = pa.list_(arrow, size)
    return arrow


def expected_columns(info: DatasetInfo) -> Iterator[tuple[str, pa.DataType | str]]:
    """(column, Arrow type) of every column the shards must have; a str instead of a type is the
    problem that prevents knowing it."""
    features = [(c, c) for c in info.obs_columns("obs").values()]
    features += [(f"next_{c}", c) for c in info.obs_columns("obs").values()]
    features.append(("acts", "acts"))
    if info.has_rewards:
        features.append(("rews", "rews"))
    if info.has_infos:
        features.append((INFOS, INFOS))
    for column, name in features:
        if name not in info.features:
            yield column, f"{INFO_FILE}: no feature {name!r} (dtype and shape) for column {column!r}"
            continue
        try:
            yield column, arrow_type(info.features[name])
        except TypeError:
            yield column, f"{INFO_FILE}: feature {name!r} has an unknown dtype {info.features[name].dtype!r}"
    yield EPISODE_INDEX, pa.int64()
    for flag in FLAG_COLUMNS:
        yield flag, pa.bool_()


def structure_problems(info: DatasetInfo, table: pa.Table, episodes: pa.Table) -> Iterator[str]:
    """Cheap checks `load` always makes: nothing here reads per-step data."""
    totals = info.totals
    if table.num_rows != totals.transitions:
        yield f"{DATA}: {table.num_rows} rows in the shards but {INFO_FILE} says {totals.transitions} transitions"
    expected = dict(expected_columns(info))
    for column, kind in expected.items():
        if isinstance(kind, str):
            yield kind
        elif column not in table.column_names:
            yield f"{DATA}: column {column!r} is missing"
        elif table.schema.field(column).type != kind:
            yield f"{DATA}: column {column!r} is {table.schema.field(column).type}, {INFO_FILE} says {kind}"
        elif column != INFOS and table.column(column).null_count:
            yield f"{DATA}: column {column!r} has {table.column(column).null_count} nulls"
    for column in table.column_names:
        if column not in expected:
            yield f"{DATA}: unexpected column {column!r} (not in {INFO_FILE})"
    yield from declared_space_problems(info)
    if totals.observations != totals.transitions + totals.episodes:
        yield f"{INFO_FILE}: totals say {totals.observations} observations, expected transitions + episodes = {totals.transitions + totals.episodes}"

    bad_schema = schema_problems(episodes)
    if bad_schema:
        yield from (f"{EPISODES_FILE}: {p}" for p in bad_schema)
        return
    if episodes.num_rows != totals.episodes:
        yield f"{EPISODES_FILE}: {episodes.num_rows} episodes but {INFO_FILE} says {totals.episodes}"
    index = to_numpy(episodes.column("episode_index"))
    if not np.array_equal(index, np.arange(len(index))):
        row = int(np.flatnonzero(index != np.arange(len(index)))[0])
        yield f"{EPISODES_FILE}: episode_index of row {row} is {index[row]}, expected {row}"
    lengths = to_numpy(episodes.column("length"))
    if (lengths < 1).any():
        row = int(np.flatnonzero(lengths < 1)[0])
        yield f"{EPISODES_FILE}: episode {row} has length {lengths[row]} (every episode has at least one step)"
    first = to_numpy(episodes.column("first_row"))
    expected_first = np.cumsum(lengths) - lengths
    if not np.array_equal(first, expected_first):
        row = int(np.flatnonzero(first != expected_first)[0])
        yield f"{EPISODES_FILE}: first_row of episode {row} is {first[row]}, but the lengths before it sum to {expected_first[row]}"
    if int(lengths.sum()) != totals.transitions:
        yield f"{EPISODES_FILE}: lengths sum to {int(lengths.sum())} but {INFO_FILE} says {totals.transitions} transitions"


def content_problems(root: Path, info: DatasetInfo, table: pa.Table, episodes: pa.Table) -> Iterator[str]:
    """Full checks (`ildata verify`): every byte hashed, every per-step column read. Assumes the
    structure passed `structure_problems` and the columns were fully validated (`read_shard`)."""
    from ildata.store.fingerprint import mismatched_files

    try:
        differ = mismatched_files(root, info.fingerprint, info.files_xxh3_128)
    except DataError as exc:
        yield f"{_relative(exc.subject, root)}: {exc}"
        return
    if differ is not None:
        which = f" ({', '.join(differ)} differ from its files_xxh3_128)" if differ else ""
        yield f"{INFO_FILE}: the files do not match the fingerprint{which}"

    lengths = to_numpy(episodes.column("length"))
    ends = np.cumsum(lengths)
    flags = {flag: to_numpy(episodes.column(flag)) for flag in FLAG_COLUMNS}
    sums = np.zeros(len(lengths))
    first_bad: dict[str, str] = {}  # check -> its first problem, in row order
    # Shard by shard (each a record batch of the mapped files): never the whole table in memory.
    offset = 0
    for shard in table.to_batches():
        n = shard.num_rows
        ordinals = np.searchsorted(ends, np.arange(offset, offset + n), side="right")
        index = to_numpy(shard.column(EPISODE_INDEX))
        if "index" not in first_bad and not np.array_equal(index, ordinals):
            row = int(np.flatnonzero(index != ordinals)[0])
            first_bad["index"] = (
                f"{DATA}: episode_index of row {offset + row} is {index[row]}, but the episode table puts it in episode {ordinals[row]}"
            )
        is_last = np.zeros(n, dtype=bool)
        lasts = ends[(ends > offset) & (ends <= offset + n)] - 1 - offset
        is_last[lasts] = True
        for flag in FLAG_COLUMNS:
            per_step = to_numpy(shard.column(flag))
            expected = is_last & flags[flag][np.minimum(ordinals, len(lengths) - 1)]
            if flag not in first_bad and not np.array_equal(per_step, expected):
                row = int(np.flatnonzero(per_step != expected)[0])
                first_bad[flag] = (
                    f"{DATA}: {flag} is {bool(per_step[row])} on row {offset + row}, the episode table says {bool(expected[row])}"
                )
        if info.has_rewards:
            rews = to_numpy(shard.column("rews")).astype(np.float64)
            sums += np.bincount(ordinals, weights=rews, minlength=len(lengths))[: len(lengths)]
        for problem in _space_problems(info, shard, offset):
            first_bad.setdefault(f"space {problem.split(' row ')[0]}", problem)
        offset += n
    yield from (first_bad[k] for k in ("index", *FLAG_COLUMNS) if k in first_bad)
    returns = episodes.column("return")
    if info.has_rewards:
        recorded = to_numpy(returns).astype(np.float64)
        wrong = ~np.isclose(recorded, sums, rtol=1e-6, atol=1e-6)  # NaN (a null return) is wrong too
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            yield f"{EPISODES_FILE}: return of episode {row} is {recorded[row]}, its rewards sum to {sums[row]} ({int(wrong.sum())} episodes differ)"
    elif returns.null_count != len(returns):
        yield f"{EPISODES_FILE}: returns recorded but {INFO_FILE} says the dataset has no rewards"
    yield from (problem for key, problem in first_bad.items() if key.startswith("space "))


def _space_problems(info: DatasetInfo, table: pa.Table | pa.RecordBatch, offset: int = 0) -> Iterator[str]:
    """The stored observations and actions (of one shard, whose first row is `offset`) belong
    to the spaces in info.json."""
    from ildata.spaces import check_matches, space_from_dict

    for what, data, columns in (
        ("observation_space", info.observation_space, info.obs_columns("obs")),
        ("action_space", info.action_space, {"": "acts"}),
    ):
        try:
            space = space_from_dict(data)
        except (DataError, KeyError, TypeError, ValueError) as exc:
            yield f"{INFO_FILE}: {what} cannot be read ({type(exc).__name__}: {exc})"
            continue
        for key, column in columns.items():
            sub = _subspace(space, key)
            if sub is None:
                yield f"{INFO_FILE}: {what} has no subspace {key!r} for column {column!r}"
                continue
            for name in (column, f"next_{column}") if column != "acts" else (column,):
                values = to_numpy(table.column(name))
                try:
                    check_matches(sub, values, name)
                except DataError as exc:
                    yield f"{DATA}: {exc} ({what} in {INFO_FILE})"
                    continue
                outside = _outside(sub, values)
                if outside is not None:
                    yield f"{DATA}: {name} row {offset + outside} lies outside the {what} in {INFO_FILE}"


def _subspace(space: Any, key: str) -> Any:
    """The subspace of a flattened observation key ("a.b", Tuple keys "0", "1", ...)."""
    from gymnasium import spaces

    for part in key.split(".") if key else []:
        if isinstance(space, spaces.Dict) and part in space.spaces:
            space = space.spaces[part]
        elif isinstance(space, spaces.Tuple) and part.isdigit() and int(part) < len(space.spaces):
            space = space.spaces[int(part)]
        else:
            return None
    return space


def _outside(space: Any, values: np.ndarray) -> int | None:
    """First row with a value outside a Box's bounds or a Discrete/MultiDiscrete's range."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        bad = (values < space.low) | (values > space.high)
    elif isinstance(space, spaces.Discrete):
        bad = (values < space.start) | (values >= space.start + space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        bad = (values < space.start) | (values >= space.start + space.nvec)
    elif isinstance(space, spaces.MultiBinary):
        bad = (values != 0) & (values != 1)
    else:
        return None
    rows = bad.reshape(len(values), -1).any(axis=1) if len(values) else np.zeros(0, bool)
    return int(np.flatnonzero(rows)[0]) if rows.any() else None


def _relative(subject: object, root: Path) -> str:
    """A problem's file, relative to the store when it lies in it."""
    if isinstance(subject, Path) and subject.is_relative_to(root):
        return str(subject.relative_to(root))
    return str(subject) if subject is not None else str(root)


def verify_store(path: str | Path) -> list[str]:
    """Every problem of the store at `path`, one line each (file: problem); [] when it is sound.

    Unreadable files or a broken structure stop the checks there (what follows would only repeat
    them); otherwise the fingerprint and all content checks run.
    """
    root = Path(path)
    try:
        info = read_info(root)
        table, episodes = open_files(root, info, full=True)
    except DataError as exc:
        return [f"{_relative(exc.subject, root)}: {exc}" if exc.subject is not None else str(exc)]
    problems = list(structure_problems(info, table, episodes))
    if problems:
        return problems
    return list(content_problems(root, info, table, episodes))
