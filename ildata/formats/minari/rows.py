"""Minari's row layout, shared by every backend: per-episode rows in, an EpisodeBatch out
(and back), infos as nested numpy columns, JPEG frames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, obs_len, unflatten_obs

# Nested info columns: key -> array with one row per info row, or a nested mapping of them.
Columns = dict[str, Any]


@dataclass
class Raw:
    """Whole-dataset columns as a backend read them, before cutting into steps."""

    obs: dict[str, np.ndarray]  # flat leaf key -> T_i + 1 rows per episode
    acts: np.ndarray  # T_i (+ 1 padding, arrow/parquet) rows per episode
    rews: np.ndarray
    terms: np.ndarray
    truncs: np.ndarray
    infos: Columns | None  # nested columns, `info_lengths[i]` rows per episode
    info_lengths: np.ndarray | None  # T_i + 1 (reset() row first) or T_i (one per step)
    lengths: np.ndarray
    padded: bool  # whether acts/rews/flags carry minari's padding row per episode
    seeds: np.ndarray | None


@dataclass
class Out:
    """What every backend writes: episodes in minari's row layout."""

    obs: dict[str, np.ndarray]  # flat leaf key -> T_i + 1 rows per episode
    acts: np.ndarray  # T_i rows per episode
    rews: np.ndarray
    terms: np.ndarray
    truncs: np.ndarray
    infos: Columns | None  # nested columns, T_i + 1 rows per episode (reset row first)
    lengths: np.ndarray
    seeds: np.ndarray | None

    @property
    def obs_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths + 1)[:-1]]).astype(np.int64)

    def padded(self, values: np.ndarray) -> np.ndarray:
        """T rows -> minari's arrow layout of T+1 rows per episode (zero row after each)."""
        n_obs = int(self.lengths.sum() + len(self.lengths))
        out = np.zeros((n_obs, *values.shape[1:]), dtype=values.dtype)
        out[step_rows(self.lengths)] = values
        return out

    def episode_metadata(self, i: int) -> dict[str, Any]:
        """What minari records about episode `i` (data/<i>/metadata.json, hdf5 group attrs)."""
        meta: dict[str, Any] = {"id": i, "total_steps": int(self.lengths[i])}
        if self.seeds is not None and self.seeds[i] >= 0:
            meta["seed"] = int(self.seeds[i])
        return meta


def step_rows(lengths: np.ndarray) -> np.ndarray:
    """Mask over T+1 rows per episode that is False on each episode's final-observation row."""
    rows = np.ones(int(lengths.sum() + len(lengths)), dtype=bool)
    rows[np.cumsum(lengths + 1) - 1] = False
    return rows


def take_nested(columns: Columns, rows: np.ndarray | slice) -> Columns:
    return {k: take_nested(v, rows) if isinstance(v, dict) else v[rows] for k, v in columns.items()}


def concat_nested(parts: list[Columns]) -> Columns:
    keys = list(parts[0])
    if any(list(p) != keys for p in parts):
        raise DataError("episodes have different info keys")
    return {
        k: concat_nested([p[k] for p in parts]) if isinstance(parts[0][k], dict) else np.concatenate([p[k] for p in parts]) for k in keys
    }


def nested_rows(columns: Columns, where: str = "") -> int | None:
    """The row count every leaf of `columns` shares (None for no leaves); DataError if they differ."""
    first: tuple[str, int] | None = None
    for key, value in columns.items():
        n = nested_rows(value, f"{where}{key}.") if isinstance(value, dict) else len(value)
        if n is None:
            continue
        if first is None:
            first = (f"{where}{key}", n)
        elif n != first[1]:
            raise DataError(f"info {where}{key!s} has {n} rows but info {first[0]} has {first[1]}")
    return None if first is None else first[1]


def columns_to_dicts(columns: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Columnar infos -> one dict per step (the EpisodeBatch contract); values become plain
    Python (nested lists for arrays) so any JSON-minded writer can keep them."""
    keys = list(columns)
    values = [columns_to_dicts(v, n) if isinstance(v, Mapping) else np.asarray(v).tolist() for v in columns.values()]
    return [dict(zip(keys, row)) for row in zip(*values)] if keys else [{} for _ in range(n)]


def decode_jpegs(frames: Sequence[bytes] | Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """JPEG frames -> uint8 array. One PIL call per frame: JPEG has no batch decoder."""
    import io

    from PIL import Image

    out = np.empty((len(frames), *shape), dtype=np.uint8)
    for i, frame in enumerate(frames):
        raw = frame.tobytes() if isinstance(frame, np.ndarray) else bytes(frame)
        try:
            out[i] = np.asarray(Image.open(io.BytesIO(raw))).reshape(shape)
        except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            raise DataError(f"image {i} is not a JPEG frame of shape {shape} ({exc})") from None
    return out


def encode_jpeg(frame: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG")
    return buffer.getvalue()


def _step_infos(raw: Raw, steps: int, notes: list[str]) -> list[dict[str, Any]] | None:
    """Step infos from minari's info rows: an episode holds T+1 (the first from reset(), dropped:
    what minari's DataCollector records) or T (one per step: what `create_dataset_from_buffers`
    stores from buffers holding step infos only)."""
    if raw.infos is None or raw.info_lengths is None:
        return None
    lengths, info_lengths = raw.lengths, raw.info_lengths
    with_reset = info_lengths == lengths + 1
    bad = np.flatnonzero(~with_reset & (info_lengths != lengths))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"episode {i} has {int(info_lengths[i])} info rows for {int(lengths[i])} steps (expected one per step or per observation)"
        )
    total = int(info_lengths.sum())
    rows = nested_rows(raw.infos)
    if rows is not None and rows != total:
        raise DataError(f"infos have {rows} rows but the episodes need {total}")
    keep = np.ones(total, dtype=bool)
    keep[(np.cumsum(info_lengths) - info_lengths)[with_reset]] = False
    if with_reset.any():
        notes.append("minari's reset() infos (one per episode) are not kept; step infos are")
    return columns_to_dicts(take_nested(raw.infos, keep), steps)


def to_batch(raw: Raw) -> tuple[EpisodeBatch, list[str]]:
    """Cut minari's per-episode rows into an EpisodeBatch, keeping each episode's final flags."""
    notes: list[str] = []
    lengths = raw.lengths
    if (lengths < 1).any():
        bad = int(np.flatnonzero(lengths < 1)[0])
        raise DataError(f"episode {bad} has no steps")
    n_obs = obs_len(unflatten_obs(raw.obs))
    if n_obs != int(lengths.sum() + len(lengths)):
        raise DataError(f"{n_obs} observations for {int(lengths.sum())} steps in {len(lengths)} episodes")
    # Step rows: arrow/parquet pad acts/rews/flags to T+1 rows (drop each last row); hdf5 does not.
    if raw.padded:
        keep = step_rows(lengths)
        acts, rews, terms, truncs = (a[keep] for a in (raw.acts, raw.rews, raw.terms, raw.truncs))
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
    batch = EpisodeBatch(
        obs=unflatten_obs(raw.obs),
        acts=acts,
        lengths=lengths,
        terminated=terms[last],
        truncated=truncs[last],
        termination_known=np.ones(len(lengths), dtype=bool),
        rews=rews,
        infos=_step_infos(raw, steps, notes),
        seeds=raw.seeds,
    )
    return batch, notes
