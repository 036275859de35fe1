"""Minari datasets (all three storage backends: arrow, parquet, hdf5): read and write.

Reading goes straight to the files with pyarrow / h5py instead of through
`minari.load_dataset(...).iterate_episodes()`: minari decodes one episode at a time into Python
objects (`np.stack` over per-row lists), which is several times slower than reading whole columns.
Space (de)serialisation is minari's own (`minari.serialization`), so spaces round-trip exactly.

Writing produces minari's on-disk layout with pyarrow (or h5py) alone, since
`minari.create_dataset_from_buffers` rescans every file per episode (quadratic, see FIELD-NOTES):
`<dst>/data/metadata.json` plus `<dst>/data/<episode_id>/{part-0.arrow,metadata.json}`.
Images are stored raw (`jpeg_encoding: false`), so the copy is lossless.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, flatten_obs, obs_len, unflatten_obs
from ildata.formats import SourceRead

if TYPE_CHECKING:  # imported lazily at run time: the data layer never pays for them on import
    import gymnasium as gym
    import h5py
    import pyarrow as pa

METADATA = "metadata.json"
HDF5_FILE = "main_data.hdf5"
BACKENDS = ("arrow", "parquet", "hdf5")
# The newest dataset layout this writer produces; must be in minari's `supported_dataset_versions`.
MINARI_VERSION = "0.5.4"
_ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")  # minari's DATASET_ID_RE, -vN required


# --------------------------------------------------------------------------- locating datasets


def minari_root() -> Path:
    """Minari's local dataset root: `$MINARI_DATASETS_PATH` or `~/.minari/datasets`."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def resolve_minari_spec(spec: str) -> Path:
    """`minari:NAMESPACE/NAME-vN` (or a bare id) -> the dataset folder under the Minari root.

    Only resolves the path (no existence check) so that writers can use it as a destination.
    """
    dataset_id = spec.removeprefix("minari:")
    if not _ID_RE.fullmatch(dataset_id) or ".." in dataset_id.split("/"):
        raise DataError(f"bad Minari dataset id {dataset_id!r} (expected NAMESPACE/NAME-vN)")
    return minari_root() / dataset_id


def dataset_id_for(dst: Path) -> str:
    """The id minari will know `dst` by: its path under the Minari root, else its folder name."""
    dst = Path(dst).absolute()
    try:
        candidate = dst.relative_to(minari_root().absolute()).as_posix()
    except ValueError:
        candidate = dst.name
    if _ID_RE.fullmatch(candidate):
        return candidate
    stem = re.sub(r"[^-_\w]", "_", dst.name) or "dataset"
    return stem if re.search(r"-v\d+$", stem) else f"{stem}-v0"


def _data_dir(path: Path) -> Path | None:
    """The `data/` folder of a Minari dataset given either the dataset folder or `data/` itself."""
    for candidate in (path / "data", path):
        meta = candidate / METADATA
        if meta.is_file():
            try:
                content = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(content, dict) and content.get("data_format") in BACKENDS:
                return candidate
    return None


def sniff(path: Path) -> bool:
    """A folder holding minari's `metadata.json` (with a known `data_format`)."""
    return path.is_dir() and _data_dir(path) is not None


# --------------------------------------------------------------------------- spaces


def _deserialize_space(text: Any) -> gym.Space:
    from minari.serialization import deserialize_space

    try:
        return deserialize_space(text)
    except (NotImplementedError, KeyError, ValueError, TypeError, AssertionError) as exc:
        raise DataError(f"cannot read space from metadata.json: {exc}") from exc


def _leaves(
    space: gym.Space, path: tuple[str, ...] = (), h5_path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], gym.Space]]:
    """(path, hdf5 path, leaf space) for every array of a (nested) Dict/Tuple space.

    Tuple items are named "0", "1"... (ildata's and minari's arrow convention); minari's hdf5
    backend names them `_index_0`, `_index_1`...
    """
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            if "." in key:
                raise DataError(f"Dict space key {key!r} contains '.', which ildata reserves")
            yield from _leaves(sub, path + (key,), h5_path + (key,))
    elif isinstance(space, gym.spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from _leaves(sub, path + (str(i),), h5_path + (f"_index_{i}",))
    elif isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        yield path, h5_path, space
    else:
        raise DataError(f"unsupported space {space} (ildata stores Box, Discrete, MultiDiscrete, MultiBinary, Dict and Tuple)")


def _check_action_space(space: gym.Space) -> None:
    if next(iter(_leaves(space)))[0] != ():
        raise DataError(f"action space {space} is not a single array (Dict/Tuple actions are not supported)")


def _leaf_shape(space: gym.Space) -> tuple[int, ...]:
    return tuple(space.shape) if space.shape is not None else ()


def _is_image(space: gym.Space) -> bool:
    """minari's own test for spaces it JPEG-encodes."""
    from minari.dataset.minari_storage import is_image_space

    return bool(is_image_space(space))


def _decode_jpegs(frames: Sequence[bytes] | Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """JPEG frames -> uint8 array. One PIL call per frame: JPEG has no batch decoder."""
    import io

    from PIL import Image

    out = np.empty((len(frames), *shape), dtype=np.uint8)
    for i, frame in enumerate(frames):
        raw = frame.tobytes() if isinstance(frame, np.ndarray) else frame
        out[i] = np.asarray(Image.open(io.BytesIO(raw))).reshape(shape)
    return out


# --------------------------------------------------------------------------- reading


@dataclass
class _Raw:
    """Whole-dataset columns before cutting into steps: `rows` holds T_i + 1 rows per episode."""

    obs: dict[str, np.ndarray]  # flat leaf key -> rows
    acts: np.ndarray  # T_i (+ 1 padding, arrow/parquet) rows per episode
    rews: np.ndarray
    terms: np.ndarray
    truncs: np.ndarray
    infos: dict[str, Any] | None  # nested columns, T_i + 1 rows per episode
    lengths: np.ndarray
    padded: bool  # whether acts/rews/flags carry minari's padding row per episode
    seeds: np.ndarray | None


def read(path: Path) -> SourceRead:
    """Read every episode of a Minari dataset, whatever its backend."""
    data = _data_dir(path)
    if data is None:
        raise DataError("not a Minari dataset (no data/metadata.json)")
    meta = json.loads((data / METADATA).read_text())
    if "observation_space" not in meta or "action_space" not in meta:
        raise DataError("metadata.json has no observation_space/action_space (rebuilding them from env_spec is not supported)")
    obs_space = _deserialize_space(meta["observation_space"])
    act_space = _deserialize_space(meta["action_space"])
    jpeg = bool(meta.get("jpeg_encoding", True))
    fmt = meta["data_format"]
    n_episodes = meta.get("total_episodes", 0)
    if not isinstance(n_episodes, int) or n_episodes < 1:
        raise DataError("Minari dataset has no episodes")
    if fmt == "hdf5":
        raw = _read_hdf5(data, n_episodes, obs_space, act_space, jpeg)
    else:
        raw = _read_arrow(data, fmt, n_episodes, obs_space, act_space, jpeg)
    batch, notes = _to_batch(raw)
    _apply_ildata_extras(batch, meta.get("ildata"))
    if jpeg and any(_is_image(s) for _, _, s in _leaves(obs_space)):
        notes.append("images were JPEG-encoded by minari (lossy): imported as decoded")
    env_id = None
    if isinstance(meta.get("env_spec"), str):
        try:
            env_id = json.loads(meta["env_spec"]).get("id")
        except ValueError:
            notes.append("env_spec in metadata.json is not valid JSON: env id unknown")
    return SourceRead(
        batch=batch,
        format=f"minari-{fmt}",
        observation_space=obs_space,
        action_space=act_space,
        env_id=env_id,
        notes=notes,
    )


def _apply_ildata_extras(batch: EpisodeBatch, extra: Any) -> None:
    """Undo what `write` had to invent for minari (zero rewards, terminations it could not
    tell from time-limit truncations), as recorded under the `ildata` metadata key."""
    if not isinstance(extra, dict):
        return
    if extra.get("rewards") is False:
        batch.rews = None
    unknown = extra.get("termination_unknown_episodes") or []
    if unknown:
        index = np.asarray(unknown, dtype=np.int64)
        if index.min() < 0 or index.max() >= batch.num_episodes:
            raise DataError("metadata.json: ildata.termination_unknown_episodes out of range")
        batch.termination_known[index] = False


def _episode_dirs(data: Path, n_episodes: int) -> list[Path]:
    dirs = [data / str(i) for i in range(n_episodes)]
    missing = [d.name for d in dirs if not d.is_dir()]
    if missing:
        raise DataError(f"metadata.json lists {n_episodes} episodes but episode folder {missing[0]} is missing")
    return dirs


def _read_arrow(data: Path, fmt: str, n_episodes: int, obs_space, act_space, jpeg: bool) -> _Raw:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    dirs = _episode_dirs(data, n_episodes)
    files: list[tuple[int, Path]] = []
    for i, d in enumerate(dirs):
        parts = sorted(d.glob(f"*.{fmt}"))
        if not parts:
            raise DataError(f"episode folder {d.name} has no .{fmt} file")
        files += [(i, part) for part in parts]

    def read_file(part: Path) -> pa.Table:
        try:
            if fmt == "arrow":
                with pa.memory_map(str(part)) as source:
                    return pa.ipc.open_file(source).read_all()
            return pq.read_table(part, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{part.relative_to(data)}: {exc}") from exc

    # Files decode in parallel: pyarrow releases the GIL (parquet decoding dominates).
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        tables = list(pool.map(read_file, [part for _, part in files]))
    # Rows per episode (an episode may be split into several part files).
    rows = np.zeros(n_episodes, dtype=np.int64)
    np.add.at(rows, np.array([i for i, _ in files]), [t.num_rows for t in tables])
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise DataError(f"episodes have different columns or types: {exc}") from exc
    for column in ("observations", "actions", "rewards", "terminations", "truncations"):
        if column not in table.column_names:
            raise DataError(f"episode files have no {column!r} column")

    observations = table.column("observations").combine_chunks()
    obs = {".".join(p): _arrow_leaf(_arrow_field(observations, p), s, jpeg) for p, _, s in _leaves(obs_space)}
    actions = table.column("actions").combine_chunks()
    _check_action_space(act_space)
    acts = _arrow_leaf(actions, act_space, jpeg)
    infos = None
    if "infos" in table.column_names:
        infos = _arrow_infos(table.column("infos").combine_chunks())
    return _Raw(
        obs=obs,
        acts=acts,
        rews=table.column("rewards").to_numpy(),
        terms=pc.fill_null(table.column("terminations"), False).to_numpy().astype(bool),
        truncs=pc.fill_null(table.column("truncations"), False).to_numpy().astype(bool),
        infos=infos,
        lengths=rows - 1,
        padded=True,
        seeds=_arrow_seeds(dirs),
    )


def _arrow_field(array: pa.Array, path: tuple[str, ...]) -> pa.Array:
    import pyarrow.compute as pc

    for name in path:
        if not hasattr(array.type, "get_field_index") or array.type.get_field_index(name) < 0:
            raise DataError(f"observation column has no field {'.'.join(path)!r}")
        array = pc.struct_field(array, name)
    return array


def _arrow_leaf(array: pa.Array, space: gym.Space, jpeg: bool) -> np.ndarray:
    """One leaf column -> numpy rows of `space.shape`, with the dtype stored in the file."""
    import pyarrow as pa

    shape = _leaf_shape(space)
    if jpeg and _is_image(space) and pa.types.is_binary(array.type):
        return _decode_jpegs(array.to_pylist(), shape)
    if pa.types.is_fixed_size_list(array.type):
        if array.null_count:
            raise DataError("missing values in an array column")
        flat = array.flatten().to_numpy(zero_copy_only=False)
        size = int(np.prod(shape)) if shape else 1
        if array.type.list_size != size:
            raise DataError(f"column holds {array.type.list_size} values per row, space {space} expects {size}")
        return flat.reshape(len(array), *shape)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        if array.null_count:
            raise DataError("missing values in a scalar column")
        return array.to_numpy(zero_copy_only=False).reshape(len(array), *shape)
    raise DataError(f"unexpected Arrow type {array.type} for space {space}")


def _arrow_infos(array: pa.Array) -> dict[str, Any]:
    """minari's arrow infos struct -> nested dict of numpy columns (nested structs included,
    which minari's own `_decode_info` turns into arrays of Python dicts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    for field in array.type:
        child = pc.struct_field(array, field.name)
        if pa.types.is_struct(field.type):
            out[field.name] = _arrow_infos(child)
        elif pa.types.is_fixed_size_list(field.type):
            values = child.flatten().to_numpy(zero_copy_only=False)
            shape_text = (field.metadata or {}).get(b"shape")
            if shape_text is not None:
                shape = tuple(int(d) for d in shape_text.split(b",") if d)
            else:
                shape = (field.type.list_size,)
            out[field.name] = values.reshape(len(child), *shape)
        else:
            out[field.name] = child.to_numpy(zero_copy_only=False)
    return out


def _arrow_seeds(dirs: list[Path]) -> np.ndarray | None:
    seeds = np.full(len(dirs), -1, dtype=np.int64)
    for i, d in enumerate(dirs):
        meta = d / METADATA
        if meta.is_file():
            seed = json.loads(meta.read_text()).get("seed")
            if seed is not None:
                seeds[i] = int(seed)
    return seeds if (seeds >= 0).any() else None


def _read_hdf5(data: Path, n_episodes: int, obs_space, act_space, jpeg: bool) -> _Raw:
    import h5py

    _check_action_space(act_space)
    # (output key, dataset path in an episode group, row shape, JPEG-encoded?), decided once.
    columns = [
        (".".join(p), "/".join(("observations",) + h5_path), _leaf_shape(s), jpeg and _is_image(s)) for p, h5_path, s in _leaves(obs_space)
    ]
    columns.append(("actions", "actions", _leaf_shape(act_space), jpeg and _is_image(act_space)))
    columns += [(key, key, (), False) for key in ("rewards", "terminations", "truncations")]
    parts: dict[str, list[np.ndarray]] = {key: [] for key, _, _, _ in columns}
    infos = []
    lengths = np.zeros(n_episodes, dtype=np.int64)
    seeds = np.full(n_episodes, -1, dtype=np.int64)
    file_path = data / HDF5_FILE
    if not file_path.is_file():
        raise DataError(f"hdf5 dataset has no {HDF5_FILE}")
    try:
        h5 = h5py.File(file_path, "r")
    except OSError as exc:
        raise DataError(f"{HDF5_FILE}: {exc}") from exc
    with h5:
        # One h5py read per episode and array: the file stores episodes as separate groups.
        for i in range(n_episodes):
            group = h5.get(f"episode_{i}")
            if not isinstance(group, h5py.Group):
                raise DataError(f"{HDF5_FILE} has no group episode_{i}")
            for key, path, shape, encoded in columns:
                values = _h5_read(group, path)
                if encoded and (values.dtype == object or values.ndim != len(shape) + 1):
                    values = _decode_jpegs(list(values), shape)
                parts[key].append(values.reshape(len(values), *shape))
            lengths[i] = len(parts["actions"][-1])
            if "infos" in group:
                infos.append(_hdf5_infos(group["infos"]))
            if "seed" in group.attrs:
                seeds[i] = int(group.attrs["seed"])
    if infos and len(infos) != n_episodes:
        raise DataError("some episodes have infos and others do not")
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    return _Raw(
        obs={key: arrays[key] for key, path, _, _ in columns if path.startswith("observations")},
        acts=arrays["actions"],
        rews=arrays["rewards"],
        terms=arrays["terminations"].astype(bool),
        truncs=arrays["truncations"].astype(bool),
        infos=_concat_nested(infos) if infos else None,
        lengths=lengths,
        padded=False,
        seeds=seeds if (seeds >= 0).any() else None,
    )


def _h5_read(group: h5py.Group, path: str) -> np.ndarray:
    """A whole dataset through h5py's low-level API, which halves the per-call overhead of
    `group[path][()]`: it dominates minari files, which hold several small datasets per episode."""
    from h5py import h5d, h5s

    try:
        dataset = h5d.open(group.id, path.encode())
    except KeyError:
        raise DataError(f"{group.name} has no {path}") from None
    if dataset.dtype.hasobject or not dataset.shape:  # strings, JPEG bytes, scalars
        return np.asarray(group[path][()])
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    if out.size:
        dataset.read(h5s.ALL, h5s.ALL, out)
    return out


def _hdf5_infos(group: h5py.Group) -> dict[str, Any]:
    import h5py

    out: dict[str, Any] = {}
    for key, value in group.items():
        out[key] = _hdf5_infos(value) if isinstance(value, h5py.Group) else np.asarray(value[()])
    return out


def _concat_nested(parts: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(parts[0])
    if any(list(p) != keys for p in parts):
        raise DataError("episodes have different info keys")
    return {
        k: _concat_nested([p[k] for p in parts]) if isinstance(parts[0][k], dict) else np.concatenate([p[k] for p in parts]) for k in keys
    }


def _take_nested(columns: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    return {k: _take_nested(v, rows) if isinstance(v, dict) else v[rows] for k, v in columns.items()}


def _columns_to_dicts(columns: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Columnar infos -> one dict per step (the EpisodeBatch contract); values become plain
    Python (nested lists for arrays) so any JSON-minded writer can keep them."""
    keys = list(columns)
    values = [_columns_to_dicts(v, n) if isinstance(v, Mapping) else np.asarray(v).tolist() for v in columns.values()]
    for k, v in zip(keys, values):
        if len(v) != n:
            raise DataError(f"info {k!r} has {len(v)} rows for {n} steps")
    return [dict(zip(keys, row)) for row in zip(*values)] if keys else [{} for _ in range(n)]


def _to_batch(raw: _Raw) -> tuple[EpisodeBatch, list[str]]:
    """Cut minari's per-episode rows into an EpisodeBatch, keeping each episode's final flags."""
    notes: list[str] = []
    lengths = raw.lengths
    if (lengths < 1).any():
        bad = int(np.flatnonzero(lengths < 1)[0])
        raise DataError(f"episode {bad} has no steps")
    n_obs = obs_len(unflatten_obs(raw.obs))
    if n_obs != int(lengths.sum() + len(lengths)):
        raise DataError(f"{n_obs} observations for {int(lengths.sum())} steps in {len(lengths)} episodes")
    obs_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    # Step rows: arrow/parquet pad acts/rews/flags to T+1 rows (drop each last row); hdf5 does not.
    if raw.padded:
        step_rows = _step_rows(lengths)
        acts, rews, terms, truncs = (a[step_rows] for a in (raw.acts, raw.rews, raw.terms, raw.truncs))
    else:
        acts, rews, terms, truncs = raw.acts, raw.rews, raw.terms, raw.truncs
    steps = int(lengths.sum())
    for name, arr in (("actions", acts), ("rewards", rews), ("terminations", terms), ("truncations", truncs)):
        if len(arr) != steps:
            raise DataError(f"{len(arr)} {name} for {steps} steps")
    last = np.cumsum(lengths) - 1
    for name, flags in (("terminations", terms), ("truncations", truncs)):
        early = flags.copy()
        early[last] = False
        if early.any():
            step = int(np.flatnonzero(early)[0])
            episode = int(np.searchsorted(last, step))
            raise DataError(f"episode {episode} has {name} set before its last step")
    infos = None
    if raw.infos is not None:
        # minari stores T+1 infos per episode, the first from reset(); step t's info is row t+1.
        info_rows = np.ones(n_obs, dtype=bool)
        info_rows[obs_starts] = False
        try:
            infos = _columns_to_dicts(_take_nested(raw.infos, info_rows), steps)
        except IndexError as exc:
            raise DataError(f"infos do not have one row per observation: {exc}") from exc
        notes.append("minari's reset() infos (one per episode) are not kept; step infos are")
    batch = EpisodeBatch(
        obs=unflatten_obs(raw.obs),
        acts=acts,
        lengths=lengths,
        terminated=terms[last],
        truncated=truncs[last],
        termination_known=np.ones(len(lengths), dtype=bool),
        rews=rews,
        infos=infos,
        seeds=raw.seeds,
    )
    return batch, notes


# --------------------------------------------------------------------------- writing


@dataclass
class _Out:
    """What every backend writes: episodes in minari's row layout."""

    obs: dict[str, np.ndarray]  # flat leaf key -> T_i + 1 rows per episode
    acts: np.ndarray  # T_i rows per episode
    rews: np.ndarray
    terms: np.ndarray
    truncs: np.ndarray
    infos: dict[str, Any] | None  # nested columns, T_i + 1 rows per episode (reset row first)
    lengths: np.ndarray
    seeds: np.ndarray | None

    @property
    def obs_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths + 1)[:-1]]).astype(np.int64)

    def padded(self, values: np.ndarray) -> np.ndarray:
        """T rows -> minari's arrow layout of T+1 rows per episode (zero row after each)."""
        n_obs = int(self.lengths.sum() + len(self.lengths))
        out = np.zeros((n_obs, *values.shape[1:]), dtype=values.dtype)
        out[_step_rows(self.lengths)] = values
        return out


def _step_rows(lengths: np.ndarray) -> np.ndarray:
    """Mask over T+1 rows per episode that is False on each episode's final-observation row."""
    rows = np.ones(int(lengths.sum() + len(lengths)), dtype=bool)
    rows[np.cumsum(lengths + 1) - 1] = False
    return rows


def write(
    ds: Any,
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
    if dst.exists():
        raise DataError(f"{dst} already exists")
    dataset_id = dataset_id or dataset_id_for(dst)
    if not _ID_RE.fullmatch(dataset_id):
        raise DataError(f"bad Minari dataset id {dataset_id!r} (expected [NAMESPACE/]NAME-vN)")
    batch: EpisodeBatch = ds.to_batch()
    obs_space, act_space = ds.observation_space, ds.action_space
    _check_action_space(act_space)
    flat_obs = flatten_obs(batch.obs)
    if sorted(flat_obs) != sorted(".".join(p) for p, _, _ in _leaves(obs_space)):
        raise DataError(f"observation keys {sorted(flat_obs)} do not match the observation space {obs_space}")
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
    infos = None
    if batch.infos is not None:
        infos = _infos_columns(batch.infos, notes)
    if infos is not None:
        # minari keeps T+1 infos per episode, the first from reset(), which ildata does not
        # keep: the first step's info stands in for it (reading drops that row again).
        position = np.arange(steps + len(lengths)) - np.repeat(np.cumsum(lengths + 1) - lengths - 1, lengths + 1)
        step_start = np.repeat(np.cumsum(lengths) - lengths, lengths + 1)
        infos = _take_nested(infos, step_start + np.maximum(position - 1, 0))
    out = _Out(flat_obs, batch.acts, rews, terms, truncs, infos, lengths, batch.seeds)

    dst.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        data = tmp / "data"
        data.mkdir()
        if data_format == "hdf5":
            _write_hdf5(data, out, obs_space, jpeg_encoding)
        else:
            _write_arrow(data, data_format, out, obs_space, act_space, jpeg_encoding)
        metadata = _dataset_metadata(ds, dataset_id, data_format, jpeg_encoding, out)
        if extra:
            metadata["ildata"] = extra
        size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
        metadata["dataset_size"] = round(size / 1e6, 1)
        (data / METADATA).write_text(json.dumps(metadata))
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    register_namespace(dst, dataset_id)
    return notes


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


def _dataset_metadata(ds: Any, dataset_id: str, data_format: str, jpeg: bool, out: _Out) -> dict[str, Any]:
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


def _infos_columns(infos: Sequence[Any], notes: list[str]) -> dict[str, Any] | None:
    """Per-step info dicts -> nested numpy columns, when every step has the same keys and each
    key holds same-shaped values (what minari can store); else None with a note."""

    def columns(rows: Sequence[Any], where: str) -> dict[str, Any] | None:
        if not rows or not all(isinstance(r, Mapping) for r in rows):
            return None
        keys = list(rows[0])
        if not keys or any(list(r) != keys for r in rows):
            return None
        out: dict[str, Any] = {}
        for key in keys:
            values = [r[key] for r in rows]
            if isinstance(values[0], Mapping):
                sub = columns(values, f"{where}{key}.")
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

    result = columns(list(infos), "")
    if result is None:
        notes.append("infos are not uniform dicts of same-shaped values: not written (minari cannot store them)")
    return result


def _encode_jpeg(frame: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG")
    return buffer.getvalue()


def _arrow_encode(values: np.ndarray, space: gym.Space, jpeg: bool) -> pa.Array:
    """One leaf -> minari's Arrow type: Box/MultiDiscrete/MultiBinary as a flat fixed_size_list,
    Discrete as a scalar column, JPEG bytes for images when asked."""
    import gymnasium as gym
    import pyarrow as pa

    if jpeg and _is_image(space):
        return pa.array([_encode_jpeg(f) for f in values], type=pa.binary())
    if isinstance(space, gym.spaces.Discrete):
        return pa.array(np.ascontiguousarray(values).reshape(len(values)))
    flat = np.ascontiguousarray(values).reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _arrow_obs(space: gym.Space, flat_obs: Mapping[str, np.ndarray], jpeg: bool, path: tuple[str, ...] = ()) -> pa.Array:
    import gymnasium as gym
    import pyarrow as pa

    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        names = list(space.spaces) if isinstance(space, gym.spaces.Dict) else [str(i) for i in range(len(space.spaces))]
        subspaces = list(space.spaces.values()) if isinstance(space, gym.spaces.Dict) else list(space.spaces)
        arrays = [_arrow_obs(sub, flat_obs, jpeg, path + (name,)) for name, sub in zip(names, subspaces)]
        return pa.StructArray.from_arrays(arrays, names=names)
    return _arrow_encode(flat_obs[".".join(path)], space, jpeg)


def _arrow_info_struct(columns: Mapping[str, Any]) -> pa.Array:
    """minari's `_encode_info` layout: nested struct, arrays of rank > 1 as fixed_size_list with
    a `shape` field metadata."""
    import pyarrow as pa

    arrays, fields = [], []
    for key, values in columns.items():
        if isinstance(values, Mapping):
            array = _arrow_info_struct(values)
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


def _write_arrow(data: Path, fmt: str, out: _Out, obs_space, act_space, jpeg: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "observations": _arrow_obs(obs_space, out.obs, jpeg),
        "actions": _arrow_encode(out.padded(out.acts), act_space, jpeg),
        "rewards": pa.array(out.padded(out.rews)),
        "terminations": pa.array(out.padded(out.terms)),
        "truncations": pa.array(out.padded(out.truncs)),
    }
    if out.infos is not None:
        columns["infos"] = _arrow_info_struct(out.infos)
    table = pa.table(columns)
    # One folder and file per episode is minari's layout; the slices are zero-copy views.
    for i, (start, length) in enumerate(zip(out.obs_starts, out.lengths)):
        folder = data / str(i)
        folder.mkdir()
        part = table.slice(int(start), int(length) + 1)
        if fmt == "parquet":
            pq.write_table(part, folder / "part-0.parquet")
        else:
            with pa.OSFile(str(folder / "part-0.arrow"), "wb") as sink:
                with pa.ipc.new_file(sink, part.schema) as writer:
                    writer.write_table(part)
        (folder / METADATA).write_text(json.dumps(_episode_metadata(out, i)))


def _episode_metadata(out: _Out, i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"id": i, "total_steps": int(out.lengths[i])}
    if out.seeds is not None and out.seeds[i] >= 0:
        meta["seed"] = int(out.seeds[i])
    return meta


def _write_hdf5(data: Path, out: _Out, obs_space, jpeg: bool) -> None:
    import h5py

    obs_leaves = list(_leaves(obs_space))
    obs_starts = out.obs_starts
    step_starts = np.cumsum(out.lengths) - out.lengths
    with h5py.File(data / HDF5_FILE, "w", track_order=True) as h5:
        # One group per episode is minari's hdf5 layout.
        for i, length in enumerate(out.lengths):
            group = h5.create_group(f"episode_{i}")
            group.attrs.update(_episode_metadata(out, i))
            obs_rows = slice(int(obs_starts[i]), int(obs_starts[i] + length + 1))
            step_rows = slice(int(step_starts[i]), int(step_starts[i] + length))
            for p, h5_path, space in obs_leaves:
                values = out.obs[".".join(p)][obs_rows]
                name = "/".join(("observations",) + h5_path)
                if jpeg and _is_image(space):
                    frames = [np.frombuffer(_encode_jpeg(f), dtype=np.uint8) for f in values]
                    dataset = group.create_dataset(name, (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
                    dataset[...] = np.array(frames + [None], dtype=object)[:-1]
                else:
                    group.create_dataset(name, data=values)
            group.create_dataset("actions", data=out.acts[step_rows])
            group.create_dataset("rewards", data=out.rews[step_rows])
            group.create_dataset("terminations", data=out.terms[step_rows])
            group.create_dataset("truncations", data=out.truncs[step_rows])
            if out.infos is not None:
                _write_hdf5_infos(group.create_group("infos"), _take_nested(out.infos, obs_rows))


def _write_hdf5_infos(group: h5py.Group, columns: Mapping[str, Any]) -> None:
    import h5py

    for key, values in columns.items():
        if isinstance(values, Mapping):
            _write_hdf5_infos(group.create_group(key), values)
        elif values.dtype.kind == "U":
            group.create_dataset(key, data=values.astype(object), dtype=h5py.string_dtype("utf-8"))
        else:
            group.create_dataset(key, data=values)
