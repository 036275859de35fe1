"""`ildata.convert`: any supported source -> an ildata store (or another format with `to=`)."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from ildata.envs import env_spaces
from ildata.episode import DataError, EpisodeBatch, Obs
from ildata.formats import WRITERS, SourceChunks, SourceMeta, SourceRead, read_source, read_source_chunks
from ildata.fsutil import atomic_output, check_destination

# `--to FORMAT` for ildata stores; every other format is a writer of `ildata.formats.WRITERS`.
STORE_FORMATS: dict[str, str] = {
    "ildata": "arrow",
    "parquet": "parquet",  # an ildata store whose shards are parquet (see docs/format.md)
}


if TYPE_CHECKING:
    from gymnasium import Space

    from ildata.store import TrajectoryDataset

Stage = Callable[[str], None]


@dataclass
class ExportResult:
    """What `convert(..., to=<other format>)` wrote, and what that format could not keep."""

    path: Path
    notes: list[str]


def _noop(_: str) -> None:
    pass


def resolve_source(src: str | Path, *, must_exist: bool = True) -> Path:
    """`minari:NAMESPACE/NAME-vN` -> its folder (one that must exist, unless it is a
    destination, `must_exist=False`); anything else is a path."""
    if isinstance(src, str) and src.startswith("minari:"):
        from ildata.formats.minari.metadata import require_present, resolve_minari_spec

        return require_present(src) if must_exist else resolve_minari_spec(src)
    return Path(src)


def read(src: str | Path, *, env_id: str | None = None) -> tuple[SourceRead, Path]:
    """Read a source, taking its spaces from `env_id` when the source does not record them.

    With `env_id`, the env's spaces must fit the data (a DataError names both otherwise)."""
    path = resolve_source(src)
    source = read_source(path)
    if env_id is not None:
        _apply_env(source, source.batch, env_id, first=True)
    return source, path


def read_chunks(src: str | Path, *, env_id: str | None = None) -> tuple[SourceChunks, Path]:
    """`read`, piece by piece where the source's reader can (`read_source_chunks`): each chunk
    is checked against `env_id`'s spaces as it is read."""
    path = resolve_source(src)
    source = read_source_chunks(path)
    if env_id is None:
        return source, path
    chunks = source.chunks
    first = next(chunks, None)  # the spaces may come from the data (its dtype): peek at it
    if first is not None:
        _apply_env(source, first, env_id, first=True)
    pending = [first] if first is not None else []

    def checked() -> Iterator[EpisodeBatch]:
        if pending:
            yield pending.pop()  # not held once handed over
        for chunk in chunks:
            _apply_env(source, chunk, env_id, first=False)
            yield chunk

    source.chunks = checked()
    return source, path


def _apply_env(source: SourceMeta, batch: EpisodeBatch, env_id: str, *, first: bool) -> None:
    """Check `batch` against `env_id`'s spaces; for the first batch, record the env and take
    the spaces the source lacks from it."""
    if first:
        if source.env_id is not None and source.env_id != env_id:
            source.notes.append(f"source says env {source.env_id}, overridden by {env_id}")
        source.env_id = env_id
    obs_space, act_space = check_env_fits(env_id, batch.obs, batch.acts, recorded=(source.observation_space, source.action_space))
    if first and (source.observation_space is None or source.action_space is None):
        source.observation_space = source.observation_space or _with_data_dtype(obs_space, batch.obs)
        source.action_space = source.action_space or act_space


def check_env_fits(
    env_id: str, obs: Obs, acts: np.ndarray, *, recorded: tuple[Space | None, Space | None] = (None, None)
) -> tuple[Space, Space]:
    """The spaces of `env_id`, or a DataError naming the env's space and the data's (`recorded`,
    else inferred) when the per-step observations or actions cannot belong to them (a wrong `--env`)."""
    from ildata.spaces import infer_action_space, infer_obs_space

    obs_space, act_space = env_spaces(env_id)
    checks: tuple[tuple[str, Space, Any, Space | None, Callable[[Any], Space]], ...] = (
        ("observation", obs_space, obs, recorded[0], infer_obs_space),
        ("action", act_space, acts, recorded[1], infer_action_space),
    )
    for what, space, data, own, infer in checks:
        try:
            _check_fits(space, data, what)
        except DataError as exc:
            data_space = own if own is not None else infer(data)
            raise DataError(f"env {env_id} has {what} space {space} but the data's is {data_space} ({exc})") from None
    return obs_space, act_space


def _check_fits(space: Space, data: Obs, what: str) -> None:
    from gymnasium import spaces

    from ildata.spaces import check_matches

    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        subspaces = dict(space.spaces.items()) if isinstance(space, spaces.Dict) else {str(i): s for i, s in enumerate(space.spaces)}
        if not isinstance(data, Mapping) or set(data) != set(subspaces):
            keys = sorted(data) if isinstance(data, Mapping) else "none"
            raise DataError(f"{what} keys {sorted(subspaces)} differ from the data's ({keys})")
        for key, subspace in subspaces.items():
            _check_fits(subspace, data[key], f"{what} {key}")
    elif isinstance(data, Mapping):
        raise DataError(f"the data's {what}s have keys {sorted(data)}, the space has none")
    else:
        check_matches(space, data, what + "s")


def _with_data_dtype(space: Any, obs: Any) -> Any:
    """The env's Box with the data's dtype: legacy files often hold float64 for float32 envs."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box) and hasattr(obs, "dtype") and obs.dtype != space.dtype:
        return spaces.Box(space.low.astype(obs.dtype), space.high.astype(obs.dtype), dtype=obs.dtype)
    return space


def _absorbing_space(space: Any) -> Any:
    from gymnasium import spaces

    flag = spaces.Box(0, 1, shape=(), dtype=np.uint8)
    if isinstance(space, spaces.Dict):
        return spaces.Dict({**space.spaces, "absorbing": flag})
    return spaces.Dict({"obs": space, "absorbing": flag})


@overload
def convert(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = ...,
    to: Literal["ildata", "parquet"] = ...,
    env_id: str | None = ...,
    fixed_horizon: str | None = ...,
    horizon: int | None = ...,
    stage: Stage = ...,
    shard_bytes: int | None = ...,
    open_store: Literal[True] = ...,
) -> TrajectoryDataset: ...


@overload
def convert(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = ...,
    to: str,
    env_id: str | None = ...,
    fixed_horizon: str | None = ...,
    horizon: int | None = ...,
    stage: Stage = ...,
    shard_bytes: int | None = ...,
    open_store: Literal[True] = ...,
) -> TrajectoryDataset | ExportResult: ...


@overload
def convert(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = ...,
    to: str = ...,
    env_id: str | None = ...,
    fixed_horizon: str | None = ...,
    horizon: int | None = ...,
    stage: Stage = ...,
    shard_bytes: int | None = ...,
    open_store: Literal[False],
) -> Path | ExportResult: ...


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
    shard_bytes: int | None = None,
    open_store: bool = True,
) -> TrajectoryDataset | Path | ExportResult:
    """Convert `src` (detected by content) into `dst`; returns the new TrajectoryDataset
    (or, for `to` other than "ildata", an ExportResult; with `open_store=False`, the store's
    folder, unopened: all `ildata convert` needs to report it).

    `dst` may neither contain nor lie inside the source: replacing it would delete the source,
    and writing into it would modify the source. A source whose reader reads it piece by piece
    (ildata stores, imitation HF directories) is converted with memory bounded by about twice
    `shard_bytes` (default 4 GiB, less under a memory limit: ildata/memory_limits.py) plus one
    chunk; see docs/large-datasets.md. The written store gets `load`'s checks; one larger than
    this process may map at once (an address-space limit, `ulimit -v`) is checked one shard at a
    time and kept, and opening it here is a ShardMemoryError that says so."""
    from ildata.memory_limits import shard_bytes_within_limits
    from ildata.store import Provenance, load, sha256_path, write_chunks

    if to not in STORE_FORMATS and to not in WRITERS:
        raise DataError(f"unknown output format {to!r} (choose from {', '.join([*STORE_FORMATS, *WRITERS.names()])})")
    if horizon is not None and fixed_horizon is None:
        raise DataError("horizon needs fixed_horizon ('absorbing' or 'truncate'): alone it would be ignored")
    if horizon is not None and horizon < 1:
        raise DataError(f"horizon must be a positive number of steps, got {horizon}")
    dst = resolve_source(dst, must_exist=False) if to == "minari" else Path(dst)
    path = resolve_source(src)
    _check_source_path(path)
    check_destination(dst, overwrite=overwrite, sources=(path,))
    stage("reading")
    # The source hash (I/O and hashlib, both release the GIL) runs while the source is read and
    # the store written; it is needed only for the provenance, written last.
    with ThreadPoolExecutor(max_workers=1) as pool:
        source_hash = pool.submit(sha256_path, path) if path.exists() else None
        if fixed_horizon is None:
            source, path = read_chunks(path, env_id=env_id)
        else:
            whole, path = read(path, env_id=env_id)
            source = SourceChunks.of(whole, _fixed_horizon(whole, fixed_horizon, horizon, stage))
        obs_space = source.observation_space

        def provenance() -> Provenance:
            return Provenance(
                source_path=str(path.resolve()),
                source_format=source.format,
                source_sha256=source_hash.result() if source_hash else None,
                extra={**source.provenance_extra, **({"notes": source.notes} if source.notes else {})} or None,
            )

        options: dict[str, Any] = dict(
            observation_space=obs_space,
            action_space=source.action_space,
            env_id=source.env_id,
            provenance=provenance,
            extra_info=source.extra_info,
            total_transitions=source.total_transitions,
            shard_bytes=shard_bytes or shard_bytes_within_limits(),  # a memory-limited process gets smaller shards
        )
        if to in STORE_FORMATS:
            stage("writing")
            out = write_chunks(source.chunks, dst, overwrite=overwrite, data_format=STORE_FORMATS[to], **options)
            _check_written(out)
            return _opened(out) if open_store else out
        # Other formats: go through a temporary store so every writer reads one well-typed input.
        write = WRITERS.get(to)
        # Minari names a dataset by its path under the Minari root, not by the temporary folder.
        minari = importlib.import_module("ildata.formats.minari_dir") if to == "minari" else None
        extra = {"dataset_id": minari.dataset_id_for(dst)} if minari is not None else {}
        with atomic_output(dst, overwrite=overwrite, sources=(path,)) as out:
            with tempfile.TemporaryDirectory(prefix=f".{dst.name}.work-", dir=dst.parent) as work:
                stage("writing")
                ds = load(write_chunks(source.chunks, Path(work) / "store", **options))
                stage(f"exporting to {to}")
                out.rmdir()  # each writer creates its output (a folder, or d3rlpy's single file) itself
                notes = write(ds, out, **extra) or []
    if minari is not None:
        minari.register_namespace(dst, extra["dataset_id"])
    return ExportResult(path=dst, notes=[*source.notes, *notes])


def _opened(root: Path) -> TrajectoryDataset:
    """The store convert wrote and checked, opened; no room to map it is said to be that."""
    from ildata.store import load
    from ildata.store.shards import ShardMemoryError

    try:
        return load(root)
    except ShardMemoryError as exc:
        message = f"converted and checked one shard at a time, but this process has no room to map all its shards to open it ({exc.subject}: {exc})"
        raise ShardMemoryError(message, subject=root) from None


def _check_written(root: Path) -> None:
    """`load`'s checks of the store just written (then dropped, unmapping it). Where this process
    has no room to map every shard at once (an address-space limit below the store's size), the
    shards are checked one at a time instead: the complete store is kept, for a process with room
    to open it. Any failure removes the store: a convert that fails leaves nothing behind."""
    from ildata.store import load
    from ildata.store.shards import ShardMemoryError, check_shards_one_at_a_time

    try:
        try:
            load(root)
            return
        except ShardMemoryError:
            pass  # checked below, once the shards mapped so far are released with this exception
        check_shards_one_at_a_time(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _fixed_horizon(source: SourceRead, fixed_horizon: str, horizon: int | None, stage: Stage) -> EpisodeBatch:
    """The source's episodes made fixed-horizon (needs them all: the horizon is the longest or
    shortest episode); its observation space and notes are updated to match."""
    from ildata.horizon import make_fixed_horizon

    stage(f"making fixed-horizon ({fixed_horizon})")
    before = len(source.batch.lengths)
    batch = make_fixed_horizon(source.batch, fixed_horizon, horizon)
    if fixed_horizon == "absorbing" and source.observation_space is not None:
        source.observation_space = _absorbing_space(source.observation_space)
    dropped = before - len(batch.lengths)
    if dropped:  # the reader's notes count the source's episodes, not the ones kept
        source.notes = [f"before --fixed-horizon truncate: {note}" for note in source.notes]
        source.notes.append(
            f"--fixed-horizon truncate kept {len(batch.lengths)} of {before} episodes, dropping "
            f"{dropped} shorter than {int(batch.lengths[0])} steps"
        )
    return batch


def _check_source_path(path: Path) -> None:
    """A source that cannot even be resolved (a symlink loop) gives one line, not a traceback."""
    try:
        path.resolve(strict=path.is_symlink())
    except FileNotFoundError:
        raise DataError("broken symbolic link (its target does not exist)") from None
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot resolve the source path ({exc.strerror if isinstance(exc, OSError) else exc})") from None
