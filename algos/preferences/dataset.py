"""`PreferenceDataset`: fragment pairs and labels (1 = left preferred, 0 = right, 0.5 = equal,
NaN = not answered yet) as one Parquet file that ildata, polars or pandas read back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from algos.preferences.fragments import Fragments, concat_fragments
from ildata.episode import DataError
from ildata.fsutil import atomic_output
from ildata.spaces import space_from_dict, space_to_dict

PREFERENCES_FORMAT = 1
SIDES = ("left", "right")


@dataclass
class PreferenceDataset:
    """Fragment pairs and their labels (NaN: pending); `pair_ids` are stable across export/import."""

    left: Fragments
    right: Fragments
    labels: np.ndarray
    pair_ids: np.ndarray
    observation_space: gym.Space
    action_space: gym.Space
    env_id: str | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, rows: np.ndarray) -> PreferenceDataset:
        return PreferenceDataset(
            self.left.take(rows),
            self.right.take(rows),
            self.labels[rows],
            self.pair_ids[rows],
            self.observation_space,
            self.action_space,
            self.env_id,
        )

    def labelled(self) -> PreferenceDataset:
        return self.take(np.flatnonzero(~np.isnan(self.labels)))

    def extend(self, other: PreferenceDataset) -> PreferenceDataset:
        return PreferenceDataset(
            concat_fragments([self.left, other.left]),
            concat_fragments([self.right, other.right]),
            np.concatenate([self.labels, other.labels]),
            np.concatenate([self.pair_ids, other.pair_ids]),
            self.observation_space,
            self.action_space,
            self.env_id,
        )

    @staticmethod
    def empty(observation_space: gym.Space, action_space: gym.Space, length: int, env_id: str | None = None) -> PreferenceDataset:
        obs_shape, act_shape = tuple(observation_space.shape or ()), tuple(action_space.shape or ())

        def none() -> Fragments:
            obs = np.zeros((0, length, *obs_shape), observation_space.dtype)
            acts = np.zeros((0, length, *act_shape), action_space.dtype)
            return Fragments(obs, acts, obs.copy(), np.zeros((0, length)), np.zeros(0, np.int64), np.zeros(0, np.int64))

        return PreferenceDataset(none(), none(), np.zeros(0), np.zeros(0, np.int64), observation_space, action_space, env_id)

    # ---- Parquet: one row per pair; fragments as fixed-size lists, shapes in the schema metadata
    def to_table(self) -> pa.Table:
        columns: dict[str, pa.Array] = {"pair_id": pa.array(self.pair_ids, pa.int64()), "label": pa.array(self.labels, pa.float64())}
        for side, frags in zip(SIDES, (self.left, self.right), strict=True):
            for key in ("obs", "acts", "next_obs", "rews"):
                values = np.ascontiguousarray(getattr(frags, key))
                width = int(np.prod(values.shape[1:]))
                columns[f"{side}_{key}"] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)
            columns[f"{side}_seed"] = pa.array(frags.seeds, pa.int64())
            columns[f"{side}_start"] = pa.array(frags.starts, pa.int64())
        meta = {
            "format": PREFERENCES_FORMAT,
            "length": self.left.length,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "env_id": self.env_id,
        }
        return pa.table(columns).replace_schema_metadata({"ildata.preferences": json.dumps(meta)})

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write one Parquet file (atomically)."""
        path = Path(path)
        with atomic_output(path, overwrite=overwrite, folder=False) as tmp:
            pq.write_table(self.to_table(), tmp)
        return path

    @staticmethod
    def load(path: str | Path) -> PreferenceDataset:
        """Read a file `save` wrote; a one-line DataError naming the file otherwise."""
        path = Path(path)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"not a preference file ({exc})", subject=path) from None
        raw = (table.schema.metadata or {}).get(b"ildata.preferences")
        if raw is None:
            raise DataError("not a preference file (no ildata.preferences metadata)", subject=path)
        meta = json.loads(raw)
        if meta.get("format") != PREFERENCES_FORMAT:
            raise DataError(f"unsupported preference format {meta.get('format')!r}", subject=path)
        obs_space, act_space = space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
        n, length = table.num_rows, int(meta["length"])
        shapes = {
            "obs": (tuple(obs_space.shape or ()), obs_space.dtype),
            "next_obs": (tuple(obs_space.shape or ()), obs_space.dtype),
            "acts": (tuple(act_space.shape or ()), act_space.dtype),
            "rews": ((), np.float64),
        }

        def side(name: str) -> Fragments:
            arrays = {}
            for key, (shape, dtype) in shapes.items():
                values = table.column(f"{name}_{key}").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                arrays[key] = np.asarray(values, dtype=dtype).reshape(n, length, *shape)
            seeds = table.column(f"{name}_seed").to_numpy()
            return Fragments(
                arrays["obs"], arrays["acts"], arrays["next_obs"], arrays["rews"], seeds, table.column(f"{name}_start").to_numpy()
            )

        try:
            left, right = side("left"), side("right")
        except (KeyError, ValueError) as exc:
            raise DataError(f"damaged preference file ({exc})", subject=path) from None
        labels = table.column("label").to_numpy(zero_copy_only=False).astype(np.float64)
        return PreferenceDataset(left, right, labels, table.column("pair_id").to_numpy(), obs_space, act_space, meta.get("env_id"))
