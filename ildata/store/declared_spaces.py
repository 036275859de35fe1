"""The observation and action spaces meta/info.json declares, against the features it declares
(which `load` checks against the shards' columns): shapes, dtypes and the fields every space
kind needs. Read from the JSON layout (ildata/spaces.py) without gymnasium, so every `load` can
afford it; values against bounds need a scan of the data and are left to `ildata verify`.

Without this, a space that disagrees with its data (an observation Box of shape [5] over 4-wide
observations) opens, and fails later wherever the space meets the data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from math import prod
from typing import Any

import numpy as np

from ildata.store.layout import INFO_FILE, DatasetInfo, Feature

LEAF_KINDS = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")


def declared_space_problems(info: DatasetInfo) -> Iterator[str]:
    """One line per way info.json's spaces cannot describe its features."""
    for key, column in info.obs_columns("obs").items():
        feature = info.features.get(column)
        if feature is None:
            continue  # reported by the column checks
        space, problem = _subspace(info.observation_space, key)
        if problem is not None:
            yield f"{INFO_FILE}: observation_space {problem} for column {column!r}"
        else:
            yield from (
                f"{INFO_FILE}: observation_space{_where(key)} {p}, but the {column!r} data is {_describe(feature)}"
                for p in _leaf_problems(space, feature)
            )
    acts = info.features.get("acts")
    if acts is not None:
        yield from (
            f"{INFO_FILE}: action_space {p}, but the 'acts' data is {_describe(acts)}" for p in _leaf_problems(info.action_space, acts)
        )


def _where(key: str) -> str:
    return f"[{key!r}]" if key else ""


def _describe(feature: Feature) -> str:
    return f"{feature.dtype} of shape {list(feature.shape)}"


def _subspace(space: Any, key: str) -> tuple[Any, str | None]:
    """The subspace of a flattened observation key ("a.b"; Tuple entries "0", "1", ...)."""
    for part in key.split(".") if key else []:
        subspaces = space.get("subspaces") if isinstance(space, Mapping) else None
        if isinstance(subspaces, Mapping) and part in subspaces:
            space = subspaces[part]
        elif isinstance(subspaces, list) and part.isdigit() and int(part) < len(subspaces):
            space = subspaces[int(part)]
        else:
            return None, f"has no subspace {key!r}"
    return space, None


def _int_list(value: Any) -> list[int] | None:
    """`value` flattened as a list of integers, or None when it is not a (nested) list of them."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged
        return None
    if array.size == 0 and isinstance(value, list):
        return []  # a scalar Box's shape
    if array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.ravel()]


def _numpy_dtype(name: Any) -> np.dtype | None:
    try:
        return np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        return None


def _leaf_problems(space: Any, feature: Feature) -> Iterator[str]:
    """What makes `space` (JSON layout) unable to hold `feature`'s values."""
    kind = space.get("type") if isinstance(space, Mapping) else None
    if kind not in LEAF_KINDS:
        yield f"is {kind!r}, not one of {', '.join(LEAF_KINDS)}" if isinstance(kind, str) else "has no space type"
        return
    data_dtype = _numpy_dtype(feature.dtype)
    data_kind = data_dtype.kind if data_dtype is not None else "?"
    if kind == "Box":
        shape = _int_list(space.get("shape"))
        if shape is None or any(s < 0 for s in shape) or np.ndim(space.get("shape")) != 1:
            yield f"(Box) has an invalid shape {space.get('shape')!r}"
            return
        if tuple(shape) != feature.shape:
            yield f"(Box) has shape {shape}"
        for bound in ("low", "high"):
            values = space.get(bound)
            if not isinstance(values, list) or len(values) != prod(shape):
                yield f"(Box) needs {prod(shape)} {bound} bounds for shape {shape}, has {len(values) if isinstance(values, list) else 'none'}"
        dtype = _numpy_dtype(space.get("dtype"))
        if dtype is None:
            yield f"(Box) has an unknown dtype {space.get('dtype')!r}"
        elif dtype.kind in "iub" and data_kind == "f":
            yield f"(Box) holds {dtype} values"
    elif kind == "Discrete":
        n, start = space.get("n"), space.get("start", 0)
        if not _is_int(n) or n < 1 or not _is_int(start):
            yield f"(Discrete) needs a positive integer n and an integer start, has n={n!r}, start={start!r}"
        if feature.shape != () or data_kind not in "iu":
            yield "(Discrete) holds integer scalars"
    elif kind == "MultiDiscrete":
        nvec = _int_list(space.get("nvec"))
        if nvec is None or any(v < 1 for v in nvec):
            yield f"(MultiDiscrete) needs positive integer sizes, has nvec={space.get('nvec')!r}"
        elif tuple(np.shape(space.get("nvec"))) != feature.shape:
            yield f"(MultiDiscrete) has shape {list(np.shape(space.get('nvec')))}"
        if data_kind not in "iu":
            yield "(MultiDiscrete) holds integers"
    else:  # MultiBinary
        n = space.get("n")
        shape = [n] if _is_int(n) else _int_list(n)
        if shape is None or any(s < 0 for s in shape):
            yield f"(MultiBinary) has an invalid n {n!r}"
        elif tuple(shape) != feature.shape and not (shape == [1] and feature.shape == ()):  # inferred for scalar booleans
            yield f"(MultiBinary) has shape {shape}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
