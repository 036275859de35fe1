"""Reading a Minari dataset, whatever its backend: metadata first, checked against the data.

Reading goes straight to the files with pyarrow / h5py instead of through
`minari.load_dataset(...).iterate_episodes()`: minari decodes one episode at a time into Python
objects (`np.stack` over per-row lists), which is several times slower than reading whole columns.
Space deserialisation is minari's own (`minari.serialization`), so spaces round-trip exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch
from ildata.formats import SourceChunks, SourceRead, chunk_ranges
from ildata.formats.minari import arrow_backend, hdf5_backend
from ildata.formats.minari.metadata import (
    BACKENDS,
    HDF5_FILE,
    METADATA,
    check_equal,
    data_dir,
    declared_int,
    deserialize_space,
    is_image,
    leaves,
    load_json,
)
from ildata.formats.minari.rows import Raw, to_batch
from ildata.fsutil import inside


@dataclass
class _Opened:
    """A Minari dataset's metadata, checked, before any data is read."""

    data: Path
    meta: dict[str, Any]
    meta_path: Path
    fmt: str
    obs_space: Any
    act_space: Any
    jpeg: bool
    n_episodes: int
    total_steps: int | None


def _open(path: Path) -> _Opened:
    data = data_dir(path)
    if data is None:
        raise DataError("not a Minari dataset (no data/metadata.json)")
    meta_path = inside(data, METADATA)
    meta = load_json(meta_path)
    if not isinstance(meta, dict):
        raise DataError("not a JSON object", subject=meta_path)
    fmt = meta.get("data_format")
    if fmt not in BACKENDS:
        raise DataError(f"unknown data_format {fmt!r} (ildata reads {', '.join(BACKENDS)})", subject=meta_path)
    if "observation_space" not in meta or "action_space" not in meta:
        raise DataError("no observation_space/action_space (rebuilding them from env_spec is not supported)", subject=meta_path)
    obs_space = deserialize_space(meta["observation_space"], meta_path)
    act_space = deserialize_space(meta["action_space"], meta_path)
    jpeg = bool(meta.get("jpeg_encoding", True))
    n_episodes = declared_int(meta, "total_episodes", meta_path, minimum=1)
    if n_episodes is None:
        raise DataError("has no total_episodes", subject=meta_path)
    total_steps = declared_int(meta, "total_steps", meta_path)
    return _Opened(data, meta, meta_path, fmt, obs_space, act_space, jpeg, n_episodes, total_steps)


def _batch(source: _Opened, raw: Raw, first: int, notes: list[str]) -> EpisodeBatch:
    """Episodes `first`... as read by a backend -> an EpisodeBatch, the reader's extras applied;
    notes not yet in `notes` are added."""
    try:
        batch, new_notes = to_batch(raw)
    except DataError as exc:
        raise DataError(str(exc), subject=exc.subject or source.data) from None
    _apply_ildata_extras(batch, source.meta.get("ildata"), source.meta_path, first=first, total=source.n_episodes)
    notes.extend(note for note in new_notes if note not in notes)
    return batch


def _finish_notes(source: _Opened, notes: list[str]) -> None:
    if source.jpeg and any(is_image(s) for _, _, s in leaves(source.obs_space)):
        notes.append("images were JPEG-encoded by minari (lossy): imported as decoded")


def _source_meta(source: _Opened, notes: list[str]) -> dict[str, Any]:
    return dict(
        format=f"minari-{source.fmt}",
        observation_space=source.obs_space,
        action_space=source.act_space,
        env_id=_env_id(source.meta, notes),
        notes=notes,
    )


def read(path: Path) -> SourceRead:
    """Read every episode of a Minari dataset, whatever its backend."""
    source = _open(path)
    if source.fmt == "hdf5":
        raw = hdf5_backend.read(source.data, source.n_episodes, source.meta_path, source.obs_space, source.act_space, source.jpeg)
    else:
        raw = arrow_backend.read(
            source.data, source.fmt, source.n_episodes, source.meta_path, source.obs_space, source.act_space, source.jpeg
        )
    if source.total_steps is not None:
        check_equal(source.meta_path, "total_steps", source.total_steps, int(raw.lengths.sum()), "the episodes hold")
    notes: list[str] = []
    batch = _batch(source, raw, 0, notes)
    _finish_notes(source, notes)
    return SourceRead(batch=batch, **_source_meta(source, notes))


def read_chunks(path: Path) -> SourceChunks:
    """A Minari dataset piece by piece, groups of episodes of about CHUNK_BYTES: on disk for the
    arrow and parquet backends (a folder per episode), decoded (steps times the spaces' bytes
    per step) for hdf5 (a group per episode in one file, held open while the chunks are read)."""
    source = _open(path)
    notes: list[str] = []
    meta = _source_meta(source, notes)  # notes: filled as the chunks are read
    if source.fmt == "hdf5":
        h5 = hdf5_backend.open_file(source.data, source.n_episodes, source.meta_path)
        try:
            step_bytes = sum(_leaf_bytes(s) for _, _, s in leaves(source.obs_space)) + _leaf_bytes(source.act_space)
            ranges = chunk_ranges(hdf5_backend.episode_steps(h5, source.n_episodes), step_bytes)
        except BaseException:
            h5.close()
            raise

        def read_range(start: int, stop: int) -> Raw:
            return hdf5_backend.read_episodes(h5, start, stop, source.obs_space, source.act_space, source.jpeg)

        subject = source.data / HDF5_FILE
    else:
        h5 = None
        files, metas, sizes = arrow_backend.episode_files(source.data, source.fmt, source.n_episodes, source.meta_path)
        ranges = chunk_ranges(sizes, 1.0)

        def read_range(start: int, stop: int) -> Raw:
            return arrow_backend.read_episodes(
                source.data, source.fmt, files[start:stop], metas[start:stop], start, source.obs_space, source.act_space, source.jpeg
            )

        subject = source.data

    def chunks() -> Iterator[EpisodeBatch]:
        try:
            steps, has_infos = 0, None
            for start, stop in ranges:
                raw = read_range(start, stop)
                if has_infos is None:
                    has_infos = raw.infos is not None
                elif has_infos != (raw.infos is not None):  # as a whole read would say
                    raise DataError("some episodes have infos and others do not", subject=subject)
                steps += int(raw.lengths.sum())
                yield _batch(source, raw, start, notes)
        finally:
            if h5 is not None:
                h5.close()
        if source.total_steps is not None:
            check_equal(source.meta_path, "total_steps", source.total_steps, steps, "the episodes hold")
        _finish_notes(source, notes)

    return SourceChunks(chunks=chunks(), total_transitions=source.total_steps, **meta)


def _leaf_bytes(space: Any) -> int:
    """Bytes of one step of a leaf space (at least one)."""
    shape = getattr(space, "shape", None) or ()
    dtype = getattr(space, "dtype", None)
    return max(1, int(np.prod(shape, dtype=np.int64)) * (np.dtype(dtype).itemsize if dtype is not None else 8))


def _env_id(meta: dict[str, Any], notes: list[str]) -> str | None:
    spec = meta.get("env_spec")
    if not isinstance(spec, str):
        return None
    try:
        env_id = json.loads(spec).get("id")
    except (ValueError, RecursionError, AttributeError):
        notes.append("env_spec in metadata.json is not a JSON object: env id unknown")
        return None
    return env_id if isinstance(env_id, str) else None


def _apply_ildata_extras(batch: EpisodeBatch, extra: Any, meta_path: Path, *, first: int = 0, total: int | None = None) -> None:
    """Undo what `write` had to invent for minari (zero rewards, terminations it could not
    tell from time-limit truncations), as recorded under the `ildata` metadata key. `batch`
    holds episodes `first`... of `total`."""
    if not isinstance(extra, dict):
        return
    if extra.get("rewards") is False:
        batch.rews = None
    unknown = extra.get("termination_unknown_episodes") or []
    if unknown:
        try:
            index = np.asarray(unknown, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise DataError("ildata.termination_unknown_episodes is not a list of episode numbers", subject=meta_path) from None
        if index.ndim != 1 or index.min() < 0 or index.max() >= (batch.num_episodes if total is None else total):
            raise DataError("ildata.termination_unknown_episodes out of range", subject=meta_path)
        mine = index[(index >= first) & (index < first + batch.num_episodes)] - first
        batch.termination_known[mine] = False
