"""Choosing episodes of a dataset: indices as `select` takes them, `filter` predicates over the
episode table, random `split`s. Index arithmetic only: the dataset's subsets share its data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ildata.episode import DataError

if TYPE_CHECKING:
    import polars as pl


def episode_positions(indices: Sequence[int] | np.ndarray, count: int) -> np.ndarray:
    """`indices` (positions among `count` episodes, negative ones from the end, or a boolean
    mask of `count`) as int64 positions, checked to be in range."""
    array = np.asarray(indices)
    if array.dtype == np.bool_:
        if array.shape != (count,):
            raise IndexError(f"a boolean episode mask needs {count} values, got {array.shape}")
        array = np.flatnonzero(array)
    elif array.size and array.dtype.kind not in "iu":
        raise TypeError(f"episode indices must be integers, got {array.dtype}")
    array = array.astype(np.int64).reshape(-1)
    if len(array) and (array.min() < -count or array.max() >= count):
        raise IndexError(f"episode index out of range for {count} episodes")
    return array


def predicate_mask(table: pl.DataFrame, predicate: pl.Expr | Callable[[dict[str, Any]], bool]) -> np.ndarray:
    """One bool per row of the episode `table`: a polars expression evaluated vectorised, or a
    function called with each row as a dict."""
    import polars as pl

    if isinstance(predicate, pl.Expr):
        try:
            result = table.select(predicate.alias("keep")).to_series()
        except pl.exceptions.PolarsError as exc:
            raise DataError(f"cannot filter episodes by {predicate} ({str(exc).splitlines()[0]})") from None
        if result.dtype != pl.Boolean or len(result) != len(table):
            raise DataError(f"a filter expression must give one boolean per episode, {predicate} gives {len(result)} {result.dtype}")
        return result.fill_null(False).to_numpy().astype(bool)
    if not callable(predicate):
        raise TypeError(f"filter takes a polars expression or a function of an episode row, not {type(predicate).__name__}")
    return np.fromiter((bool(predicate(row)) for row in table.iter_rows(named=True)), dtype=bool, count=len(table))


def split_positions(count: int, fractions: float | Sequence[float], seed: int) -> list[np.ndarray]:
    """Positions of `count` episodes dealt into random parts of the given `fractions` (a float
    f: two parts, f and 1 - f), each part sorted. Sizes are rounded at the cumulative cuts, so
    every episode is in exactly one part."""
    shares = [fractions, 1.0 - fractions] if isinstance(fractions, (int, float)) else list(fractions)
    if isinstance(fractions, (int, float)) and not 0.0 < fractions < 1.0:
        raise ValueError("fraction must be strictly between 0 and 1")
    if len(shares) < 2 or any(not 0.0 < f < 1.0 for f in shares) or not np.isclose(sum(shares), 1.0):
        raise ValueError(f"split fractions must be at least two numbers in (0, 1) that sum to 1, got {shares}")
    order = np.random.default_rng(seed).permutation(count)
    cuts = np.round(np.cumsum(shares)[:-1] * count).astype(np.int64)
    return [np.sort(part) for part in np.split(order, cuts)]
