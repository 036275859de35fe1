"""Reading a Minari dataset, whatever its backend: metadata first, checked against the data.

Reading goes straight to the files with pyarrow / h5py instead of through
`minari.load_dataset(...).iterate_episodes()`: minari decodes one episode at a time into Python
objects (`np.stack` over per-row lists), which is several times slower than reading whole columns.
Space deserialisation is minari's own (`minari.serialization`), so spaces round-trip exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch
from ildata.formats import SourceRead
from ildata.formats.minari import arrow_backend, hdf5_backend
from ildata.formats.minari.metadata import (
    BACKENDS,
    METADATA,
    check_equal,
    data_dir,
    declared_int,
    deserialize_space,
    is_image,
    leaves,
    load_json,
)
from ildata.formats.minari.rows import to_batch
from ildata.fsutil import inside


def read(path: Path) -> SourceRead:
    """Read every episode of a Minari dataset, whatever its backend."""
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
    if fmt == "hdf5":
        raw = hdf5_backend.read(data, n_episodes, meta_path, obs_space, act_space, jpeg)
    else:
        raw = arrow_backend.read(data, fmt, n_episodes, meta_path, obs_space, act_space, jpeg)
    total_steps = declared_int(meta, "total_steps", meta_path)
    if total_steps is not None:
        check_equal(meta_path, "total_steps", total_steps, int(raw.lengths.sum()), "the episodes hold")
    try:
        batch, notes = to_batch(raw)
    except DataError as exc:
        raise DataError(str(exc), subject=exc.subject or data) from None
    _apply_ildata_extras(batch, meta.get("ildata"), meta_path)
    if jpeg and any(is_image(s) for _, _, s in leaves(obs_space)):
        notes.append("images were JPEG-encoded by minari (lossy): imported as decoded")
    return SourceRead(
        batch=batch,
        format=f"minari-{fmt}",
        observation_space=obs_space,
        action_space=act_space,
        env_id=_env_id(meta, notes),
        notes=notes,
    )


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


def _apply_ildata_extras(batch: EpisodeBatch, extra: Any, meta_path: Path) -> None:
    """Undo what `write` had to invent for minari (zero rewards, terminations it could not
    tell from time-limit truncations), as recorded under the `ildata` metadata key."""
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
        if index.ndim != 1 or index.min() < 0 or index.max() >= batch.num_episodes:
            raise DataError("ildata.termination_unknown_episodes out of range", subject=meta_path)
        batch.termination_known[index] = False
