"""Writing a TrajectoryDataset as a Minari dataset, in any of minari's backends.

Writing produces minari's on-disk layout with pyarrow (or h5py) alone, since
`minari.create_dataset_from_buffers` rescans the files written so far for every episode it adds,
so its time grows with the square of the number of episodes.
Images are stored raw (`jpeg_encoding: false`) by default, so the copy is lossless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, flatten_obs
from ildata.formats.minari import arrow_backend, hdf5_backend
from ildata.formats.minari.metadata import (
    BACKENDS,
    ID_RE,
    METADATA,
    MINARI_VERSION,
    check_action_space,
    dataset_id_for,
    leaves,
    minari_root,
)
from ildata.formats.minari.rows import Columns, Out, take_nested
from ildata.fsutil import atomic_output

if TYPE_CHECKING:
    from ildata.store import TrajectoryDataset


def write(
    ds: TrajectoryDataset,
    dst: Path,
    *,
    dataset_id: str | None = None,
    data_format: str = "arrow",
    jpeg_encoding: bool = False,
) -> list[str]:
    """Write a TrajectoryDataset as a Minari dataset folder `dst` (holding `data/`), atomically;
    returns notes about anything minari cannot represent.

    `dataset_id` defaults to `dst`'s path under the Minari root (else its folder name + "-v0").
    Images are stored raw unless `jpeg_encoding=True` (minari's lossy default).
    """
    dst = Path(dst)
    if data_format not in BACKENDS:
        raise DataError(f"unknown Minari backend {data_format!r} (choose from {', '.join(BACKENDS)})")
    dataset_id = dataset_id or dataset_id_for(dst)
    if not ID_RE.fullmatch(dataset_id):
        raise DataError(f"bad Minari dataset id {dataset_id!r} (expected [NAMESPACE/]NAME-vN)")
    batch: EpisodeBatch = ds.to_batch()
    obs_space, act_space = ds.observation_space, ds.action_space
    check_action_space(act_space)
    flat_obs = flatten_obs(batch.obs)
    if sorted(flat_obs) != sorted(".".join(p) for p, _, _ in leaves(obs_space)):
        raise DataError(f"observation keys {sorted(flat_obs)} do not match the observation space {obs_space}")
    out, extra, notes = _rows(batch)

    with atomic_output(dst) as tmp:
        data = tmp / "data"
        data.mkdir()
        if data_format == "hdf5":
            hdf5_backend.write(data, out, obs_space, jpeg_encoding)
        else:
            arrow_backend.write(data, data_format, out, obs_space, act_space, jpeg_encoding)
        metadata = _dataset_metadata(ds, dataset_id, data_format, jpeg_encoding, out)
        if extra:
            metadata["ildata"] = extra
        size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
        metadata["dataset_size"] = round(size / 1e6, 1)
        (data / METADATA).write_text(json.dumps(metadata))
    register_namespace(dst, dataset_id)
    return notes


def _rows(batch: EpisodeBatch) -> tuple[Out, dict[str, Any], list[str]]:
    """The batch in minari's row layout, what ildata records for reading it back, and notes."""
    notes: list[str] = []
    extra: dict[str, Any] = {}
    lengths = batch.lengths
    steps = int(lengths.sum())
    last = np.cumsum(lengths) - 1
    terms = np.zeros(steps, dtype=bool)
    truncs = np.zeros(steps, dtype=bool)
    terms[last] = batch.terminated
    truncs[last] = batch.truncated
    rews = batch.rews
    if rews is None:
        rews = np.zeros(steps, dtype=np.float64)
        extra["rewards"] = False
        notes.append("the dataset has no rewards; minari requires them, so zeros were written")
    if not batch.termination_known.all():
        extra["termination_unknown_episodes"] = np.flatnonzero(~batch.termination_known).tolist()
        notes.append("some episodes do not know termination from time-limit truncation: written as terminations")
    infos = _infos_columns(batch.infos, notes) if batch.infos is not None else None
    if infos is not None:
        # minari's DataCollector keeps T+1 infos per episode, the first from reset(), which ildata
        # does not keep: the first step's info stands in for it (reading drops that row again).
        position = np.arange(steps + len(lengths)) - np.repeat(np.cumsum(lengths + 1) - lengths - 1, lengths + 1)
        step_start = np.repeat(np.cumsum(lengths) - lengths, lengths + 1)
        infos = take_nested(infos, step_start + np.maximum(position - 1, 0))
    return Out(flatten_obs(batch.obs), batch.acts, rews, terms, truncs, infos, lengths, batch.seeds), extra, notes


def register_namespace(dst: Path, dataset_id: str) -> None:
    """Give a new namespace under the Minari root the marker file `minari.create_dataset_*`
    writes (`list_local_namespaces` looks for it); datasets elsewhere have no namespace."""
    namespace, _, _ = dataset_id.rpartition("/")
    root = minari_root()
    if not namespace or dst.absolute() != (root / dataset_id).absolute():
        return
    from minari.namespace import create_namespace, list_local_namespaces

    if namespace not in list_local_namespaces():
        create_namespace(namespace)


def _dataset_metadata(ds: TrajectoryDataset, dataset_id: str, data_format: str, jpeg: bool, out: Out) -> dict[str, Any]:
    from minari.serialization import serialize_space

    metadata: dict[str, Any] = {
        "dataset_id": dataset_id,
        "total_episodes": int(len(out.lengths)),
        "total_steps": int(out.lengths.sum()),
        "data_format": data_format,
        "jpeg_encoding": jpeg,
        "observation_space": serialize_space(ds.observation_space),
        "action_space": serialize_space(ds.action_space),
        "minari_version": MINARI_VERSION,
    }
    env_id = getattr(ds, "env_id", None)
    if env_id:
        import gymnasium as gym

        try:  # recover_environment() needs the spec; only registered envs have one
            metadata["env_spec"] = gym.spec(env_id).to_json()
        except (gym.error.Error, TypeError, ValueError):
            pass
    return metadata


def _infos_columns(infos: Sequence[Any], notes: list[str]) -> Columns | None:
    """Per-step info dicts -> nested numpy columns, when every step has the same keys and each
    key holds same-shaped values (what minari can store); else None with a note."""

    def columns(rows: Sequence[Any]) -> Columns | None:
        if not rows or not all(isinstance(r, Mapping) for r in rows):
            return None
        keys = list(rows[0])
        if not keys or any(list(r) != keys for r in rows):
            return None
        out: Columns = {}
        for key in keys:
            values = [r[key] for r in rows]
            if isinstance(values[0], Mapping):
                sub = columns(values)
                if sub is None:
                    return None
                out[key] = sub
                continue
            try:
                array = np.asarray(values)
            except ValueError:
                return None
            if array.dtype == object:
                return None
            out[key] = array
        return out

    result = columns(list(infos))
    if result is None:
        notes.append("infos are not uniform dicts of same-shaped values: not written (minari cannot store them)")
    return result
