"""Reader for trajectory pickles written by `imitation` from 2019 to 2022 (families P0-P5).

All are a pickled list with one element per trajectory; what an element is changed over the
years (see LEGACY-FORMATS.md). Loading goes through `ildata.safe_pickle`, which maps imitation's
classes to inert stand-ins and refuses every other global, so no code from the file runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ildata import safe_pickle
from ildata.episode import DataError, storable_dtype
from ildata.formats import SourceRead
from ildata.formats.imitation_common import make_read


def sniff(path: Path) -> bool:
    """A pickle starts with PROTO (0x80) and a protocol number; imitation used 2 to 5."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


@dataclass
class _Traj:
    family: str
    obs: Any
    acts: Any
    rews: Any
    infos: Any
    terminal: Any


def _from_state(i: int, family: str, state: Any, with_rews: bool) -> _Traj:
    if not isinstance(state, dict) or "obs" not in state or "acts" not in state:
        raise DataError(f"trajectory {i}: dataclass state without 'obs' and 'acts'")
    if with_rews and "rews" not in state:
        raise DataError(f"trajectory {i}: TrajectoryWithRew without 'rews'")
    return _Traj(family, state["obs"], state["acts"], state.get("rews"), state.get("infos"), state.get("terminal", True))


def _fields(i: int, item: Any) -> _Traj:
    """Normalise one pickled trajectory of any family to the same fields."""
    if isinstance(item, dict):  # P0
        if not {"obs", "act"} <= item.keys():
            raise DataError(f"trajectory {i}: dict without 'obs' and 'act' keys (not an imitation trajectory)")
        return _Traj("P0", item["obs"], item["act"], item.get("rew"), None, True)
    if not isinstance(item, safe_pickle.LegacyTrajectory):
        raise DataError(f"trajectory {i}: a {type(item).__name__}, not an imitation trajectory")
    path = item.class_path
    if path == "imitation.util.rollout.Trajectory":  # NamedTuples, positional in field order
        if len(item.args) == 3:  # P1: (act, obs, rew)
            act, obs, rew = item.args
            return _Traj("P1", obs, act, rew, None, True)
        if len(item.args) == 4:  # P2: (acts, obs, rews, infos)
            acts, obs, rews, infos = item.args
            return _Traj("P2", obs, acts, rews, infos, True)
        raise DataError(f"trajectory {i}: {path} with {len(item.args)} fields (expected 3 or 4)")
    with_rews = path.endswith("WithRew")
    if path.startswith("imitation.util.data."):
        return _from_state(i, "P3", item.state, with_rews)
    family = "P5" if isinstance(item.state, dict) and "terminal" in item.state else "P4"
    return _from_state(i, family, item.state, with_rews)


def _numeric(i: int, name: str, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim == 0:
        raise DataError(f"trajectory {i}: {name} is not an array of steps")
    storable_dtype(name, value.dtype)  # before concatenating: numpy would promote mixed kinds
    return value


def read(path: Path) -> SourceRead:
    """Read a P0-P5 pickle into one batch (one concatenation per field, not per step)."""
    with open(path, "rb") as f:
        data = safe_pickle.load(f)
    if isinstance(data, safe_pickle.LegacyTrajectory):
        data = [data]  # a single trajectory pickled on its own
    if not isinstance(data, (list, tuple)):
        raise DataError(f"pickle holds a {type(data).__name__}, not a list of imitation trajectories")
    if not data:
        raise DataError("pickle holds an empty list: no trajectories")
    trajs = [_fields(i, item) for i, item in enumerate(data)]
    lengths = np.empty(len(trajs), dtype=np.int64)
    for i, t in enumerate(trajs):
        t.obs, t.acts = _numeric(i, "obs", t.obs), _numeric(i, "acts", t.acts)
        lengths[i] = t.acts.shape[0]
        if t.obs.shape[0] != lengths[i] + 1:
            raise DataError(f"trajectory {i}: {t.obs.shape[0]} observations for {lengths[i]} actions (expected {lengths[i] + 1})")
        if t.rews is not None and _numeric(i, "rews", t.rews).shape[0] != lengths[i]:
            raise DataError(f"trajectory {i}: {t.rews.shape[0]} rewards for {lengths[i]} actions")
        if t.infos is not None and not isinstance(t.infos, (list, tuple, np.ndarray)):
            raise DataError(f"trajectory {i}: infos is a {type(t.infos).__name__}, not a sequence")
        if t.infos is not None and len(t.infos) != lengths[i]:
            raise DataError(f"trajectory {i}: {len(t.infos)} infos for {lengths[i]} actions")
        if not isinstance(t.terminal, (bool, np.bool_)):
            raise DataError(f"trajectory {i}: terminal is a {type(t.terminal).__name__}, not a bool")
    has_rews = [t.rews is not None for t in trajs]
    if any(has_rews) and not all(has_rews):
        raise DataError("some trajectories have rewards and others do not")
    infos = None
    if any(t.infos is not None for t in trajs):
        infos = []
        for t, n in zip(trajs, lengths):
            infos.extend(list(t.infos) if t.infos is not None else [None] * int(n))
    try:
        obs = np.concatenate([t.obs for t in trajs])
        acts = np.concatenate([t.acts for t in trajs])
    except (ValueError, TypeError) as exc:
        raise DataError(f"trajectories disagree on observation/action shapes or dtypes: {exc}") from None
    return make_read(
        f"imitation-pickle-{trajs[0].family}",
        obs=obs,
        acts=acts,
        lengths=lengths,
        terminal=np.array([bool(t.terminal) for t in trajs]),
        rews=np.concatenate([t.rews for t in trajs]) if all(has_rews) else None,
        infos=infos,
        source_bytes=path.stat().st_size,
    )
