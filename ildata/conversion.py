"""`ildata.convert`: any supported source -> an ildata store (or another format with `to=`)."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ildata.envs import env_spaces
from ildata.episode import DataError
from ildata.formats import SourceRead, read_source

# `--to FORMAT` -> module with `write(ds, dst: Path) -> None` (imported lazily).
WRITERS: dict[str, str] = {
    "ildata": "ildata.store",
    "parquet": "ildata.store",  # an ildata store whose shards are parquet (see docs/format.md)
    "minari": "ildata.formats.minari_dir",
    "d3rlpy": "ildata.formats.d3rlpy_h5",
    "imitation": "ildata.formats.imitation_hf",
}

Stage = Callable[[str], None]


@dataclass
class ExportResult:
    """What `convert(..., to=<other format>)` wrote, and what that format could not keep."""

    path: Path
    notes: list[str]


def _noop(_: str) -> None:
    pass


def resolve_source(src: str | Path) -> Path:
    """`minari:NAMESPACE/NAME-vN` -> its folder; anything else is a path."""
    if isinstance(src, str) and src.startswith("minari:"):
        from ildata.formats.minari_dir import resolve_minari_spec

        return resolve_minari_spec(src)
    return Path(src)


def read(src: str | Path, *, env_id: str | None = None) -> tuple[SourceRead, Path]:
    """Read a source, taking its spaces from `env_id` when the source does not record them."""
    path = resolve_source(src)
    source = read_source(path)
    if env_id is not None:
        if source.env_id is not None and source.env_id != env_id:
            source.notes.append(f"source says env {source.env_id}, overridden by {env_id}")
        source.env_id = env_id
        if source.observation_space is None or source.action_space is None:
            obs_space, act_space = env_spaces(env_id)
            source.observation_space = source.observation_space or _with_data_dtype(obs_space, source.batch.obs)
            source.action_space = source.action_space or act_space
    return source, path


def _with_data_dtype(space: Any, obs: Any) -> Any:
    """The env's Box with the data's dtype: legacy files often hold float64 for float32 envs."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box) and hasattr(obs, "dtype") and obs.dtype != space.dtype:
        return spaces.Box(space.low.astype(obs.dtype), space.high.astype(obs.dtype), dtype=obs.dtype)
    return space


def _absorbing_space(space: Any) -> Any:
    from gymnasium import spaces

    flag = spaces.Box(0, 1, shape=(), dtype="uint8")
    if isinstance(space, spaces.Dict):
        return spaces.Dict({**space.spaces, "absorbing": flag})
    return spaces.Dict({"obs": space, "absorbing": flag})


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    to: str = "ildata",
    env_id: str | None = None,
    fixed_horizon: str | None = None,
    horizon: int | None = None,
    stage: Stage = _noop,
):
    """Convert `src` (detected by content) into `dst`; returns the new TrajectoryDataset
    (or, for `to` other than "ildata", an ExportResult)."""
    from ildata.store import Provenance, load, sha256_path, write_dataset

    if to not in WRITERS:
        raise DataError(f"unknown output format {to!r} (choose from {', '.join(WRITERS)})")
    dst = resolve_source(dst) if to == "minari" else Path(dst)
    if dst.exists() and not overwrite:
        raise DataError("already exists (pass --overwrite to replace it)", subject=dst)
    path = resolve_source(src)
    if path.resolve() == dst.resolve():
        raise DataError("source and destination are the same path")
    stage("reading")
    # The source hash (I/O and hashlib, both release the GIL) runs while the source is parsed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        source_hash = pool.submit(sha256_path, path) if path.exists() else None
        source, path = read(path, env_id=env_id)
        source_sha256 = source_hash.result() if source_hash else None
    batch = source.batch
    obs_space = source.observation_space
    if fixed_horizon is not None:
        from ildata.horizon import make_fixed_horizon

        stage(f"making fixed-horizon ({fixed_horizon})")
        batch = make_fixed_horizon(batch, fixed_horizon, horizon)
        if fixed_horizon == "absorbing" and obs_space is not None:
            obs_space = _absorbing_space(obs_space)
    provenance = Provenance(
        source_path=str(path.resolve()),
        source_format=source.format,
        source_sha256=source_sha256,
        extra={"notes": source.notes} if source.notes else None,
    )
    if to in ("ildata", "parquet"):
        stage("writing")
        out = write_dataset(
            batch,
            dst,
            observation_space=obs_space,
            action_space=source.action_space,
            env_id=source.env_id,
            provenance=provenance,
            overwrite=overwrite,
            data_format="parquet" if to == "parquet" else "arrow",
        )
        return load(out)
    # Other formats: go through a temporary store so every writer reads one well-typed input.
    writer = importlib.import_module(WRITERS[to])
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        stage("writing")
        ds = load(
            write_dataset(
                batch,
                work / "store",
                observation_space=obs_space,
                action_space=source.action_space,
                env_id=source.env_id,
                provenance=provenance,
            )
        )
        stage(f"exporting to {to}")
        out = work / "out"
        # Minari names a dataset by its path under the Minari root, not by the temporary folder.
        options = {"dataset_id": writer.dataset_id_for(dst)} if to == "minari" else {}
        notes = writer.write(ds, out, **options) or []
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        os.replace(out, dst)
        if to == "minari":
            writer.register_namespace(dst, options["dataset_id"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(path=dst, notes=[*source.notes, *notes])
