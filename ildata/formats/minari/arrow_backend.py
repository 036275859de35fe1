"""Minari's arrow and parquet backends (minari's `ArrowStorage` / `ParquetStorage`): one folder
per episode, `data/<id>/part-N.{arrow,parquet}` plus `data/<id>/metadata.json`.

Both are pyarrow tables with the same columns; only the file reader/writer differs. Every file
is validated fully before its buffers are touched: a corrupted one is a DataError, not a crash.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import DataError
from ildata.formats.minari.metadata import (
    METADATA,
    check_action_space,
    check_episode_ids,
    check_episode_metadata,
    check_leaf,
    declared_int,
    episode_numbers,
    is_image,
    leaf_shape,
    leaves,
    load_json,
)
from ildata.formats.minari.rows import Columns, Out, Raw, decode_jpegs, encode_jpeg
from ildata.fsutil import inside, os_path, require_regular_file

if TYPE_CHECKING:
    import gymnasium as gym
    import pyarrow as pa


def _natural(name: str) -> list[Any]:
    """Sort key putting part-2 before part-10 (minari names an episode's files part-0, part-1...)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"([0-9]+)", name)]


# --------------------------------------------------------------------------- reading


def _checked(data: Path, relative: str, entry: os.DirEntry[str], *, folder: bool) -> Path:
    """`data/relative` for an entry listed under a checked folder of `data`. A plain entry there
    lies inside `data` by construction, so only symlinks pay for resolution (`inside`), and only
    entries that are not plain files pay for the regular-file check."""
    path = inside(data, relative) if entry.is_symlink() else data / relative
    if not folder and not entry.is_file(follow_symlinks=False):
        require_regular_file(path)
    return path


def _episode_files(data: Path, fmt: str, n_episodes: int, meta_path: Path) -> tuple[list[list[Path]], list[Path | None]]:
    """Each episode's part files in row order, and its metadata.json (None when absent). The
    episode folders are listed once and checked against `total_episodes` before anything loops
    over that count."""
    with os.scandir(data) as entries:
        listing = {e.name: e for e in entries if e.is_dir()}
    numbers = episode_numbers(listing)
    check_episode_ids(meta_path, n_episodes, numbers, "episode folder {}")
    folders = {int(number): listing[str(number)] for number in numbers}
    files, metas = [], []
    for i in range(n_episodes):
        folder = _checked(data, str(i), folders[i], folder=True)
        with os.scandir(folder) as entries:
            listed = {e.name: e for e in entries if e.name == METADATA or e.name.endswith(f".{fmt}")}
        parts = sorted((name for name in listed if name != METADATA), key=_natural)
        if not parts:
            raise DataError(f"episode folder has no .{fmt} file", subject=folder)
        files.append([_checked(data, f"{i}/{name}", listed[name], folder=False) for name in parts])
        metas.append(_checked(data, f"{i}/{METADATA}", listed[METADATA], folder=False) if METADATA in listed else None)
    return files, metas


def _read_table(part: Path, fmt: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if fmt == "arrow":
            with pa.memory_map(os_path(part)) as source:
                table = pa.ipc.open_file(source).read_all()
        else:
            table = pq.read_table(pa.memory_map(os_path(part)), use_threads=False)
        # Offsets and lengths are only trusted once checked: a bad offset would read out of bounds.
        table.validate(full=True)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"corrupted {fmt} file ({exc})".replace("\n", " "), subject=part) from None
    return table


def _episode_metadata(paths: list[Path | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, total_steps, seeds) from each episode's metadata.json, -1 where absent."""
    values = np.full((3, len(paths)), -1, dtype=np.int64)
    for i, path in enumerate(paths):
        if path is None:
            continue
        meta = load_json(path)
        if not isinstance(meta, dict):
            raise DataError("episode metadata is not a JSON object", subject=path)
        for row, key in enumerate(("id", "total_steps", "seed")):
            value = declared_int(meta, key, path)
            if value is not None:
                values[row, i] = value
    return values[0], values[1], values[2]


def read(data: Path, fmt: str, n_episodes: int, meta_path: Path, obs_space: gym.Space, act_space: gym.Space, jpeg: bool) -> Raw:
    files, metas = _episode_files(data, fmt, n_episodes, meta_path)
    return read_episodes(data, fmt, files, metas, 0, obs_space, act_space, jpeg)


def episode_files(data: Path, fmt: str, n_episodes: int, meta_path: Path) -> tuple[list[list[Path]], list[Path | None], np.ndarray]:
    """Each episode's part files and metadata.json (as `read` lists them), and its bytes on disk
    (what a source read in chunks is cut by)."""
    files, metas = _episode_files(data, fmt, n_episodes, meta_path)
    return files, metas, np.array([sum(part.stat().st_size for part in parts) for parts in files], dtype=np.int64)


def read_episodes(
    data: Path,
    fmt: str,
    files: list[list[Path]],
    metas: list[Path | None],
    first: int,
    obs_space: gym.Space,
    act_space: gym.Space,
    jpeg: bool,
) -> Raw:
    """The episodes numbered from `first` whose part files and metadata are `files`, `metas`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n_episodes = len(files)
    flat = [part for parts in files for part in parts]
    # Files decode in parallel: pyarrow releases the GIL (parquet decoding dominates).
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        tables = list(pool.map(_read_table, flat, [fmt] * len(flat)))
    # Rows per episode (an episode may be split into several part files).
    owner = np.repeat(np.arange(n_episodes), [len(parts) for parts in files])
    rows = np.bincount(owner, weights=[t.num_rows for t in tables], minlength=n_episodes).astype(np.int64)
    ids, steps, seeds = _episode_metadata(metas)
    check_episode_metadata(lambda i: data / str(i) / METADATA, ids, steps, rows - 1, first=first)
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise DataError(f"episodes have different columns or types: {exc}", subject=data) from None
    for column in ("observations", "actions", "rewards", "terminations", "truncations"):
        if column not in table.column_names:
            raise DataError(f"has no {column!r} column", subject=flat[0])

    observations = table.column("observations").combine_chunks()
    obs = {
        ".".join(p): _leaf(_field(observations, p, flat[0]), s, jpeg, ".".join(("observations", *p)), flat[0])
        for p, _, s in leaves(obs_space)
    }
    check_action_space(act_space)
    acts = _leaf(table.column("actions").combine_chunks(), act_space, jpeg, "actions", flat[0])
    infos = _infos(table.column("infos").combine_chunks()) if "infos" in table.column_names else None
    return Raw(
        obs=obs,
        acts=acts,
        rews=table.column("rewards").to_numpy(),
        terms=pc.fill_null(table.column("terminations"), False).to_numpy().astype(bool),
        truncs=pc.fill_null(table.column("truncations"), False).to_numpy().astype(bool),
        infos=infos,
        info_lengths=rows if infos is not None else None,
        lengths=rows - 1,
        padded=True,
        seeds=seeds if (seeds >= 0).any() else None,
    )


def _field(array: pa.Array, path: tuple[str, ...], subject: Path) -> pa.Array:
    import pyarrow.compute as pc

    for name in path:
        if not hasattr(array.type, "get_field_index") or array.type.get_field_index(name) < 0:
            raise DataError(f"observation column has no field {'.'.join(path)!r}", subject=subject)
        array = pc.struct_field(array, name)
    return array


def _leaf(array: pa.Array, space: gym.Space, jpeg: bool, name: str, subject: Path) -> np.ndarray:
    """One leaf column -> numpy rows of `space.shape`, with the dtype stored in the file (checked
    against the space)."""
    import pyarrow as pa

    shape = leaf_shape(space)
    if jpeg and is_image(space) and pa.types.is_binary(array.type):
        return decode_jpegs(array.to_pylist(), shape)
    if array.null_count:
        raise DataError(f"{name} has missing values", subject=subject)
    if pa.types.is_fixed_size_list(array.type):
        size = int(np.prod(shape)) if shape else 1
        if array.type.list_size != size:
            raise DataError(f"{name} holds {array.type.list_size} values per row but the space declares {size} {shape}", subject=subject)
        values = array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), *shape)
    elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        values = array.to_numpy(zero_copy_only=False)
    else:
        raise DataError(f"{name} has Arrow type {array.type}, which cannot hold the space {space}", subject=subject)
    return check_leaf(values, space, name, subject)


def _infos(array: pa.Array) -> Columns:
    """minari's arrow infos struct -> nested dict of numpy columns (nested structs included,
    which minari's own `_decode_info` turns into arrays of Python dicts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: Columns = {}
    for field in array.type:
        child = pc.struct_field(array, field.name)
        if pa.types.is_struct(field.type):
            out[field.name] = _infos(child)
        elif pa.types.is_fixed_size_list(field.type):
            values = child.flatten().to_numpy(zero_copy_only=False)
            shape_text = (field.metadata or {}).get(b"shape")
            try:
                shape = tuple(int(d) for d in shape_text.split(b",") if d) if shape_text is not None else (field.type.list_size,)
                out[field.name] = values.reshape(len(child), *shape)
            except ValueError:
                raise DataError(f"info {field.name!r}: shape {shape_text!r} does not fit {field.type.list_size} values per row") from None
        else:
            out[field.name] = child.to_numpy(zero_copy_only=False)
    return out


# --------------------------------------------------------------------------- writing


def _encode(values: np.ndarray, space: gym.Space, jpeg: bool) -> pa.Array:
    """One leaf -> minari's Arrow type: Box/MultiDiscrete/MultiBinary as a flat fixed_size_list,
    Discrete as a scalar column, JPEG bytes for images when asked."""
    import gymnasium as gym
    import pyarrow as pa

    if jpeg and is_image(space):
        return pa.array([encode_jpeg(f) for f in values], type=pa.binary())
    if isinstance(space, gym.spaces.Discrete):
        return pa.array(np.ascontiguousarray(values).reshape(len(values)))
    flat = np.ascontiguousarray(values).reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _obs(space: gym.Space, flat_obs: Mapping[str, np.ndarray], jpeg: bool, path: tuple[str, ...] = ()) -> pa.Array:
    import gymnasium as gym
    import pyarrow as pa

    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        names = list(space.spaces) if isinstance(space, gym.spaces.Dict) else [str(i) for i in range(len(space.spaces))]
        subspaces = list(space.spaces.values()) if isinstance(space, gym.spaces.Dict) else list(space.spaces)
        arrays = [_obs(sub, flat_obs, jpeg, path + (name,)) for name, sub in zip(names, subspaces)]
        return pa.StructArray.from_arrays(arrays, names=names)
    return _encode(flat_obs[".".join(path)], space, jpeg)


def _info_struct(columns: Mapping[str, Any]) -> pa.Array:
    """minari's `_encode_info` layout: nested struct, arrays of rank > 1 as fixed_size_list with
    a `shape` field metadata."""
    import pyarrow as pa

    arrays, fields = [], []
    for key, values in columns.items():
        if isinstance(values, Mapping):
            array = _info_struct(values)
            field = pa.field(key, array.type)
        elif values.ndim > 1:
            flat = np.ascontiguousarray(values).reshape(len(values), -1)
            array = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
            field = pa.field(key, array.type, metadata={"shape": ",".join(str(n) for n in values.shape[1:])})
        else:
            array = pa.array(values)
            field = pa.field(key, array.type)
        arrays.append(array)
        fields.append(field)
    return pa.StructArray.from_arrays(arrays, fields=fields)


def write(data: Path, fmt: str, out: Out, obs_space: gym.Space, act_space: gym.Space, jpeg: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "observations": _obs(obs_space, out.obs, jpeg),
        "actions": _encode(out.padded(out.acts), act_space, jpeg),
        "rewards": pa.array(out.padded(out.rews)),
        "terminations": pa.array(out.padded(out.terms)),
        "truncations": pa.array(out.padded(out.truncs)),
    }
    if out.infos is not None:
        columns["infos"] = _info_struct(out.infos)
    table = pa.table(columns)
    # One folder and file per episode is minari's layout; the slices are zero-copy views.
    for i, (start, length) in enumerate(zip(out.obs_starts, out.lengths)):
        folder = data / str(i)
        folder.mkdir()
        part = table.slice(int(start), int(length) + 1)
        if fmt == "parquet":
            with pa.OSFile(os_path(folder / "part-0.parquet"), "wb") as sink:
                pq.write_table(part, sink)
        else:
            with pa.OSFile(os_path(folder / "part-0.arrow"), "wb") as sink:
                with pa.ipc.new_file(sink, part.schema) as writer:
                    writer.write_table(part)
        (folder / METADATA).write_text(json.dumps(out.episode_metadata(i)))
