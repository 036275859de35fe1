"""Spaces as people and JSON read them, from the spaces' JSON layout (ildata.spaces).

`inspect` of a store never imports gymnasium (a tenth of its run time), so gymnasium's own
`str(space)` is reproduced here (`space_repr`, kept equal to gymnasium's by a test) beside the
friendlier text (`space_text`) and JSON (`space_object`) forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def space_repr(space: Mapping[str, Any]) -> str:
    """gymnasium's `str(space)`, from the space's JSON layout: `inspect` of a store never imports
    gymnasium (a tenth of its run time). Kept equal to gymnasium's by a test."""
    kind = space["type"]
    if kind == "Box":
        low, high = box_bounds(space)
        return f"Box({_short_repr(low)}, {_short_repr(high)}, {tuple(space['shape'])}, {np.dtype(space['dtype'])})"
    if kind == "Discrete":
        start = int(space.get("start", 0))
        return f"Discrete({int(space['n'])}{f', start={start}' if start else ''})"
    if kind == "MultiDiscrete":
        dtype = np.dtype(space.get("dtype", "int64"))
        nvec = np.array(space["nvec"], dtype=dtype)
        starts = np.broadcast_to(np.array(space.get("start", 0), dtype=dtype), nvec.shape)
        return f"MultiDiscrete({nvec}{f', start={starts}' if starts.any() else ''})"
    if kind == "MultiBinary":
        n = space["n"]
        return f"MultiBinary({n if isinstance(n, int) else tuple(n)})"
    if kind == "Dict":
        return "Dict(" + ", ".join(f"{k!r}: {space_repr(s)}" for k, s in space["subspaces"].items()) + ")"
    if kind == "Tuple":
        return "Tuple(" + ", ".join(space_repr(s) for s in space["subspaces"]) + ")"
    return str(kind)


def _num(value: float) -> float | str:
    """A bound as JSON can hold it: infinities as strings, as the spaces' JSON layout does."""
    return value if np.isfinite(value) else str(value)


def space_object(space: Mapping[str, Any]) -> dict[str, Any]:
    """A space for `inspect --json`: its kind, dtype, shape and bounds as JSON values (a Box's
    bounds as one number when they are the same everywhere, which keeps image spaces small)."""
    kind = space["type"]
    if kind == "Box":
        low, high = box_bounds(space)
        out: dict[str, Any] = {"type": "Box", "dtype": str(np.dtype(space["dtype"])), "shape": list(space["shape"])}
        for name, bound in (("low", low), ("high", high)):
            flat = bound.astype(np.float64).ravel()
            uniform = flat.size > 0 and bool((flat == flat[0]).all())
            out[name] = _num(float(flat[0])) if uniform else [_num(float(v)) for v in flat.tolist()]
        return out
    if kind in ("Dict", "Tuple"):
        subspaces = space["subspaces"]
        if kind == "Dict":
            return {"type": kind, "subspaces": {k: space_object(s) for k, s in subspaces.items()}}
        return {"type": kind, "subspaces": [space_object(s) for s in subspaces]}
    return {k: v for k, v in space.items()}


def _g(value: float) -> str:
    return f"{value:.4g}"


def space_text(space: Mapping[str, Any], indent: str = "") -> str:
    """A space for people: kind, dtype, shape and value ranges, one line per Dict/Tuple entry."""
    kind = space["type"]
    if kind == "Box":
        low, high = (b.astype(np.float64).ravel() for b in box_bounds(space))
        head = f"Box {np.dtype(space['dtype'])} {tuple(space['shape'])}"
        if low.size == 0:
            return head
        if (low == low[0]).all() and (high == high[0]).all():
            return f"{head} in [{_g(low[0])}, {_g(high[0])}]"
        if low.size <= 8:
            return f"{head}: " + " ".join(f"[{_g(lo)}, {_g(hi)}]" for lo, hi in zip(low, high))
        return f"{head}: low {_g(low.min())}..{_g(low.max())}, high {_g(high.min())}..{_g(high.max())}"
    if kind == "Discrete":
        start, n = int(space.get("start", 0)), int(space["n"])
        return f"Discrete: {n} values ({start}..{start + n - 1})"
    if kind == "MultiDiscrete":
        return f"MultiDiscrete: {list(np.asarray(space['nvec']).ravel().tolist())} values per entry"
    if kind == "MultiBinary":
        return f"MultiBinary {space['n']}"
    if kind in ("Dict", "Tuple"):
        subspaces = space["subspaces"]
        items = subspaces.items() if kind == "Dict" else enumerate(subspaces)
        inner = indent + "  "
        return kind + "".join(f"\n{inner}{k}: {space_text(s, inner)}" for k, s in items)
    return str(kind)


def _short_repr(array: np.ndarray) -> str:
    if array.size and array.min() == array.max():
        return str(array.min())
    return str(array)


def box_bounds(space: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A Box's (low, high) in its dtype; JSON writes infinities as strings, which float() reads."""
    shape, dtype = tuple(space["shape"]), np.dtype(space["dtype"])

    def bound(key: str) -> np.ndarray:
        return np.array([float(v) for v in space[key]], dtype=np.float64).reshape(shape).astype(dtype)

    return bound("low"), bound("high")
