"""Minari's hdf5 backend (minari's `HDF5Storage`): one `data/main_data.hdf5` holding a group
`episode_<id>` per episode, its metadata as the group's attributes.

Only what lies in that file is read: external and soft links, external-storage and virtual
datasets (which would read other files) are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ildata.episode import INT64_MAX, DataError
from ildata.formats.hdf5_links import refuse_external_storage, refuse_links
from ildata.formats.minari.metadata import (
    HDF5_FILE,
    check_action_space,
    check_episode_ids,
    check_episode_metadata,
    check_leaf,
    episode_numbers,
    is_image,
    leaf_shape,
    leaves,
)
from ildata.formats.minari.rows import Columns, Out, Raw, concat_nested, decode_jpegs, encode_jpeg, nested_rows, take_nested
from ildata.fsutil import inside, require_regular_file

if TYPE_CHECKING:
    import gymnasium as gym
    import h5py

_MAX_INFO_DEPTH = 32


# --------------------------------------------------------------------------- reading


def _int_attrs(group: h5py.Group, names: tuple[str, ...], subject: Path) -> list[int | None]:
    """Integer attributes of an episode group (its minari metadata), None where absent, through
    the low-level API: `group.attrs.get` costs more than reading the episode's arrays."""
    from h5py import h5a

    out: list[int | None] = []
    for name in names:
        key = name.encode()
        if not h5a.exists(group.id, key):
            out.append(None)
            continue
        attr = h5a.open(group.id, key)
        if attr.shape not in ((), (1,)) or attr.dtype.kind not in "iu":
            raise DataError(f"{group.name} attribute {name} is not an integer ({attr.dtype}, shape {attr.shape})", subject=subject)
        value = np.empty(attr.shape, dtype=attr.dtype)
        attr.read(value)
        number = int(value.reshape(-1)[0])
        if number > INT64_MAX:
            raise DataError(f"{group.name} attribute {name} is {number}, beyond int64", subject=subject)
        out.append(number)
    return out


def _read_dataset(group: h5py.Group, path: str, subject: Path) -> np.ndarray:
    """A whole dataset through h5py's low-level API, which halves the per-call overhead of
    `group[path][()]`: it dominates minari files, which hold several small datasets per episode."""
    from h5py import h5d, h5s

    try:
        dataset = h5d.open(group.id, path.encode())
    except KeyError:
        raise DataError(f"{group.name} has no {path}", subject=subject) from None
    refuse_external_storage(dataset, f"{group.name.lstrip('/')}/{path}", subject)
    if dataset.dtype.hasobject or not dataset.shape:  # strings, JPEG bytes, scalars
        return np.asarray(group[path][()])
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    if out.size:
        dataset.read(h5s.ALL, h5s.ALL, out)
    return out


def _infos(group: h5py.Group, subject: Path, depth: int = 0) -> Columns:
    import h5py

    if depth > _MAX_INFO_DEPTH:
        raise DataError(f"{group.name}: infos nested over {_MAX_INFO_DEPTH} levels deep", subject=subject)
    out: Columns = {}
    for key, value in group.items():
        if isinstance(value, h5py.Group):
            out[key] = _infos(value, subject, depth + 1)
        else:
            refuse_external_storage(value.id, f"{group.name.lstrip('/')}/{key}", subject)
            out[key] = np.asarray(value[()])
    return out


def open_file(data: Path, n_episodes: int, meta_path: Path) -> h5py.File:
    """The dataset's main_data.hdf5, opened, its links refused and its episode groups checked
    against `total_episodes`, before any data is read. The caller closes it."""
    import h5py

    file_path = require_regular_file(inside(data, HDF5_FILE))
    try:
        h5 = h5py.File(file_path, "r")
    except OSError as exc:
        raise DataError(f"not a readable HDF5 file ({exc})", subject=file_path) from None
    try:
        refuse_links(h5, file_path)
        check_episode_ids(meta_path, n_episodes, episode_numbers(h5, "episode_"), "group episode_{}")
    except BaseException:
        h5.close()
        raise
    return h5


def _group(h5: h5py.File, i: int) -> h5py.Group:
    import h5py

    group = h5[f"episode_{i}"]
    if not isinstance(group, h5py.Group):
        raise DataError(f"episode_{i} is not a group", subject=Path(h5.filename))
    return group


def episode_steps(h5: h5py.File, n_episodes: int) -> np.ndarray:
    """Steps of every episode, from the shape of its actions (metadata only: what a source read
    in chunks is cut by)."""
    from h5py import h5d

    subject = Path(h5.filename)
    steps = np.zeros(n_episodes, dtype=np.int64)
    for i in range(n_episodes):  # one dataset header per episode, no data
        try:
            dataset = h5d.open(_group(h5, i).id, b"actions")
        except KeyError:
            raise DataError(f"/episode_{i} has no actions", subject=subject) from None
        steps[i] = dataset.shape[0] if dataset.shape else 1
    return steps


def read_episodes(h5: h5py.File, start: int, stop: int, obs_space: gym.Space, act_space: gym.Space, jpeg: bool) -> Raw:
    """Episodes `start` .. `stop` - 1 of an opened file (`open_file`)."""

    n_episodes = stop - start
    file_path = Path(h5.filename)
    check_action_space(act_space)
    # (output key, dataset path in an episode group, leaf space, JPEG-encoded?), decided once.
    columns = [(".".join(p), "/".join(("observations",) + h5_path), s, jpeg and is_image(s)) for p, h5_path, s in leaves(obs_space)]
    columns.append(("actions", "actions", act_space, jpeg and is_image(act_space)))
    parts: dict[str, list[np.ndarray]] = {
        key: [] for key, _, _, _ in columns + [(k, k, None, False) for k in ("rewards", "terminations", "truncations")]
    }
    infos: list[Columns] = []
    lengths = np.zeros(n_episodes, dtype=np.int64)
    info_lengths = np.zeros(n_episodes, dtype=np.int64)
    attrs = np.full((3, n_episodes), -1, dtype=np.int64)  # id, total_steps, seed
    # One h5py read per episode and array: the file stores episodes as separate groups.
    for i in range(n_episodes):
        group = _group(h5, start + i)
        for key, path, space, encoded in columns:
            values = _read_dataset(group, path, file_path)
            if encoded and (values.dtype == object or values.ndim != len(leaf_shape(space)) + 1):
                values = decode_jpegs(list(values), leaf_shape(space))
            parts[key].append(check_leaf(values, space, f"{group.name}/{path}", file_path))
        for key in ("rewards", "terminations", "truncations"):
            parts[key].append(_read_dataset(group, key, file_path))
        lengths[i] = len(parts["actions"][-1])
        if "infos" in group and len(group["infos"]):  # minari writes an empty group for buffers without infos
            infos.append(_infos(group["infos"], file_path))
            info_lengths[i] = nested_rows(infos[-1]) or 0
        attrs[:, i] = [-1 if value is None else value for value in _int_attrs(group, ("id", "total_steps", "seed"), file_path)]
    if infos and len(infos) != n_episodes:
        raise DataError("some episodes have infos and others do not", subject=file_path)
    check_episode_metadata(lambda i: file_path, attrs[0], attrs[1], lengths, first=start)
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    seeds = attrs[2]
    return Raw(
        obs={key: arrays[key] for key, path, _, _ in columns if path.startswith("observations")},
        acts=arrays["actions"],
        rews=arrays["rewards"],
        terms=arrays["terminations"].astype(bool),
        truncs=arrays["truncations"].astype(bool),
        infos=concat_nested(infos) if infos else None,
        info_lengths=info_lengths if infos else None,
        lengths=lengths,
        padded=False,
        seeds=seeds if (seeds >= 0).any() else None,
    )


def read(data: Path, n_episodes: int, meta_path: Path, obs_space: gym.Space, act_space: gym.Space, jpeg: bool) -> Raw:
    """Every episode: the one-chunk case of `read_episodes`."""
    with open_file(data, n_episodes, meta_path) as h5:
        return read_episodes(h5, 0, n_episodes, obs_space, act_space, jpeg)


# --------------------------------------------------------------------------- writing


def write(data: Path, out: Out, obs_space: gym.Space, jpeg: bool) -> None:
    import h5py

    obs_leaves = list(leaves(obs_space))
    obs_starts = out.obs_starts
    step_starts = np.cumsum(out.lengths) - out.lengths
    with h5py.File(data / HDF5_FILE, "w", track_order=True) as h5:
        # One group per episode is minari's hdf5 layout.
        for i, length in enumerate(out.lengths):
            group = h5.create_group(f"episode_{i}")
            group.attrs.update(out.episode_metadata(i))
            obs_rows = slice(int(obs_starts[i]), int(obs_starts[i] + length + 1))
            step_rows = slice(int(step_starts[i]), int(step_starts[i] + length))
            for p, h5_path, space in obs_leaves:
                values = out.obs[".".join(p)][obs_rows]
                name = "/".join(("observations",) + h5_path)
                if jpeg and is_image(space):
                    frames = [np.frombuffer(encode_jpeg(f), dtype=np.uint8) for f in values]
                    dataset = group.create_dataset(name, (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
                    dataset[...] = np.array(frames + [None], dtype=object)[:-1]
                else:
                    group.create_dataset(name, data=values)
            group.create_dataset("actions", data=out.acts[step_rows])
            group.create_dataset("rewards", data=out.rews[step_rows])
            group.create_dataset("terminations", data=out.terms[step_rows])
            group.create_dataset("truncations", data=out.truncs[step_rows])
            if out.infos is not None:
                _write_infos(group.create_group("infos"), take_nested(out.infos, obs_rows))


def _write_infos(group: h5py.Group, columns: Mapping[str, object]) -> None:
    import h5py

    for key, values in columns.items():
        if isinstance(values, Mapping):
            _write_infos(group.create_group(key), values)
        elif isinstance(values, np.ndarray) and values.dtype.kind == "U":
            group.create_dataset(key, data=values.astype(object), dtype=h5py.string_dtype("utf-8"))
        else:
            group.create_dataset(key, data=values)
