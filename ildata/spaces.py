"""JSON (de)serialisation and inference of gymnasium spaces.

Written by hand rather than through `minari.serialization` because the store must load without
minari (its import pulls h5py and Pillow); the JSON layout is Minari's, so the two interoperate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ildata.episode import DataError, Obs


def _gym_spaces():
    from gymnasium import spaces  # lazy: keeps `ildata --help` fast

    return spaces


def _bound_list(array: np.ndarray) -> list:
    # JSON has no inf/nan: encode them as strings, as Minari does.
    return [x if np.isfinite(x) else str(x) for x in np.asarray(array, dtype=np.float64).ravel().tolist()]


def _bounds_from(values: list, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64).reshape(shape).astype(dtype)


def space_to_dict(space: Any) -> dict[str, Any]:
    """gymnasium space -> JSON-able dict (Minari's layout)."""
    spaces = _gym_spaces()
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": _bound_list(space.low),
            "high": _bound_list(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "dtype": str(space.dtype), "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "dtype": str(space.dtype), "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "subspaces": {k: space_to_dict(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "subspaces": [space_to_dict(s) for s in space.spaces]}
    raise DataError(f"unsupported space type {type(space).__name__}")


def space_from_dict(data: Mapping[str, Any]) -> Any:
    """Inverse of `space_to_dict`."""
    spaces = _gym_spaces()
    kind = data["type"]
    if kind == "Box":
        shape = tuple(data["shape"])
        dtype = np.dtype(data["dtype"])
        return spaces.Box(
            low=_bounds_from(data["low"], shape, dtype),
            high=_bounds_from(data["high"], shape, dtype),
            shape=shape,
            dtype=dtype,
        )
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(
            np.array(data["nvec"]), dtype=np.dtype(data.get("dtype", "int64")), start=np.array(data.get("start", 0))
        )
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({k: space_from_dict(v) for k, v in data["subspaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([space_from_dict(v) for v in data["subspaces"]])
    raise DataError(f"unknown space type {kind!r} in metadata")


def space_to_json(space: Any) -> str:
    return json.dumps(space_to_dict(space))


def space_from_json(text: str) -> Any:
    return space_from_dict(json.loads(text))


def infer_obs_space(obs: Obs) -> Any:
    """An unbounded Box per leaf (uint8 gets [0, 255]): legacy files do not record their spaces."""
    spaces = _gym_spaces()
    if isinstance(obs, Mapping):
        if all(k.isdigit() for k in obs) and sorted(int(k) for k in obs) == list(range(len(obs))):
            return spaces.Tuple([infer_obs_space(obs[str(i)]) for i in range(len(obs))])
        return spaces.Dict({k: infer_obs_space(v) for k, v in obs.items()})
    return _infer_box(obs)


def _infer_box(array: np.ndarray) -> Any:
    spaces = _gym_spaces()
    dtype = array.dtype
    shape = array.shape[1:]
    if dtype == np.uint8:
        return spaces.Box(0, 255, shape=shape, dtype=np.uint8)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return spaces.Box(info.min, info.max, shape=shape, dtype=dtype)
    if dtype == np.bool_:
        return spaces.MultiBinary(list(shape) if shape else 1)
    return spaces.Box(-np.inf, np.inf, shape=shape, dtype=dtype)


def infer_action_space(acts: np.ndarray) -> Any:
    """Integer scalars -> Discrete(max+1), integer vectors -> MultiDiscrete, floats -> unbounded Box."""
    spaces = _gym_spaces()
    if np.issubdtype(acts.dtype, np.integer) and acts.size:
        low = int(acts.min())
        start = min(low, 0)
        if acts.ndim == 1:
            return spaces.Discrete(int(acts.max()) - start + 1, start=start)
        nvec = acts.reshape(acts.shape[0], -1).max(axis=0).reshape(acts.shape[1:]) + 1
        return spaces.MultiDiscrete(nvec, dtype=acts.dtype)
    return _infer_box(acts)


def check_matches(space: Any, array: np.ndarray, what: str) -> None:
    """Raise DataError when per-step `array` rows cannot belong to `space` (shape or dtype kind)."""
    spaces = _gym_spaces()
    if isinstance(space, spaces.Discrete):
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"{what}: Discrete space needs integer scalars, got {array.dtype}{list(array.shape[1:])}")
        return
    shape = getattr(space, "shape", None)
    if shape is not None and tuple(array.shape[1:]) != tuple(shape):
        raise DataError(f"{what}: shape {list(array.shape[1:])} does not match the space's {list(shape)}")
