"""In-memory episode types shared by every reader, writer and collector.

`Episode` is what a user sees (`ds[i]`, `ildata.save`). `EpisodeBatch` is the columnar
intermediate every reader produces and the store writer consumes: all episodes' arrays
concatenated, so that importing a 2M-step file never loops over steps in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

# An observation array is either one ndarray or a (possibly nested) mapping of them
# (gymnasium Dict/Tuple spaces; Tuple keys are "0", "1", ...).
Obs = Union[np.ndarray, Mapping[str, "Obs"]]  # noqa: UP007  (recursive alias: `|` cannot take the string)


class DataError(ValueError):
    """Bad input data: the CLI prints it as one line naming the file, and exits 2.

    `subject` names the file the problem is in, when it is not the command's main input.
    """

    def __init__(self, message: str, *, subject: object = None):
        super().__init__(message)
        self.subject = subject


# ----------------------------------------------------------------------------- dtypes
# The one place that says which array dtypes a store column (and so every reader and
# `ildata.save`) accepts: booleans, integers and IEEE floats of 16-64 bits. Anything else
# (complex, strings, bytes, structured/void, datetimes, objects, float128, zero-width) has no
# Arrow column type. Big-endian arrays are valid and become native byte order.
STORABLE_KINDS = frozenset("biuf")
INT64_MAX = np.iinfo(np.int64).max


def storable_dtype(name: str, dtype: np.dtype) -> np.dtype:
    """The native-byte-order dtype `name` ("obs", "acts", "rews", "obs.key") is stored as, or a
    DataError naming the field and the dtype when no store column can hold it."""
    if dtype.kind not in STORABLE_KINDS or dtype.itemsize == 0 or (dtype.kind == "f" and dtype.itemsize > 8):
        raise DataError(f"{name} has dtype {dtype.str} ({dtype}), which no store column can hold (numbers and booleans only)")
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def normalise_dtype(name: str, array: np.ndarray) -> np.ndarray:
    """`array` in a dtype a store column holds (native byte order), refusing the others.

    Actions are indices or vectors that gymnasium spaces keep as int64, so uint64 actions become
    int64 when every value fits, and are refused when one does not (a value above 2**63 - 1 is
    no action index). Observations and rewards keep uint64 (Arrow has the type)."""
    dtype = storable_dtype(name, array.dtype)
    if name == "acts" and dtype == np.uint64:
        if array.size and int(array.max()) > INT64_MAX:
            raise DataError(f"acts has uint64 values up to {int(array.max())}, beyond int64 (the widest integer action)")
        dtype = np.dtype(np.int64)
    return array if dtype == array.dtype else array.astype(dtype)


# ----------------------------------------------------------------------------- infos
# Infos come from files as Python objects. A pickle can make one list hold the same list many
# times, nested (memo references): 1 KB that expands to 2**40 elements when turned into JSON,
# or a list nested 100 000 deep. Every info is made plain through `plain_info`, which counts
# what it produces and refuses both.
MAX_INFO_DEPTH = 100
MAX_INFO_ELEMENTS = 10_000_000
_JSON_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_JSON_SCALARS)  # exact types: a str or int subclass goes through `_plain`


class InfoBudget:
    """How many more info elements may be produced (shared by all the steps of one read)."""

    def __init__(self, limit: int = MAX_INFO_ELEMENTS) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise DataError(
                f"infos expand to more than {self.limit} elements (lists or dicts shared by reference "
                "many times, or nested): refused rather than filling memory"
            )


def plain_info(value: Any, budget: InfoBudget) -> Any:
    """numpy scalars/arrays inside an info -> plain Python that serialises as JSON; values of
    other types become their repr. The expanded size (what JSON will write) is spent from
    `budget` and the depth kept under MAX_INFO_DEPTH. A container referenced again is not walked
    again (its plain form and size are reused), so a reference bomb is refused at once."""
    return _plain(value, budget, 0, {})[0]


def _plain(value: Any, budget: InfoBudget, depth: int, seen: dict[int, tuple[Any, Any, int]]) -> tuple[Any, int]:
    """(plain form, expanded element count); `seen`: id -> (value kept alive, plain, count)."""
    if isinstance(value, _JSON_SCALARS):
        budget.spend(1)
        return value, 1
    if isinstance(value, np.generic):
        budget.spend(1)
        return value.item(), 1
    if not isinstance(value, (dict, list, tuple, np.ndarray)):
        budget.spend(1)
        return repr(value), 1
    if id(value) in seen:
        _, shared, shared_size = seen[id(value)]
        budget.spend(shared_size)
        return shared, shared_size
    if depth >= MAX_INFO_DEPTH or (isinstance(value, np.ndarray) and depth + value.ndim > MAX_INFO_DEPTH):
        raise DataError(f"infos nested deeper than {MAX_INFO_DEPTH} levels")
    plain: Any
    size: int
    # Scalar children (the bulk of any info) are taken inline and spent once per container.
    if isinstance(value, dict):
        mapping: dict[str, Any] = {}
        own = len(value) + 1  # the container and its keys
        nested = 0  # already spent by the recursive calls
        for key, item in value.items():
            if type(item) in _SCALAR_TYPES:
                mapping[str(key)] = item
                own += 1
            else:
                mapping[str(key)], count = _plain(item, budget, depth + 1, seen)
                nested += count
        budget.spend(own)
        plain, size = mapping, own + nested
    elif isinstance(value, (list, tuple)):
        items: list[Any] = []
        own, nested = 1, 0
        for item in value:
            if type(item) in _SCALAR_TYPES:
                items.append(item)
                own += 1
            else:
                converted, count = _plain(item, budget, depth + 1, seen)
                items.append(converted)
                nested += count
        budget.spend(own)
        plain, size = items, own + nested
    elif value.dtype.hasobject:
        plain, size = _plain(value.tolist(), budget, depth, {})
    else:
        budget.spend(value.size + 1)
        plain, size = value.tolist(), value.size + 1
    seen[id(value)] = (value, plain, size)
    return plain, size


def describe_array(array: np.ndarray) -> str:
    """`float32(1000, 4)`: an array in a few characters (for reprs)."""
    return f"{array.dtype}{tuple(array.shape)}"


def describe_obs(obs: Obs) -> str:
    flat = flatten_obs(obs)
    if set(flat) == {""}:
        return describe_array(flat[""])
    return "{" + ", ".join(f"{k}: {describe_array(v)}" for k, v in flat.items()) + "}"


@dataclass(repr=False)
class Episode:
    """One trajectory: `obs` has one more row than `acts` (the final observation is kept)."""

    obs: Obs
    acts: np.ndarray
    rews: np.ndarray | None = None
    terminated: bool = False
    truncated: bool = False
    infos: list[dict[str, Any] | str] | None = None
    # False when the source folded time-limit truncation into "done" (imitation's `terminal`).
    termination_known: bool = True
    seed: int | None = None

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    def __repr__(self) -> str:
        """One line (the arrays are described, not printed)."""
        ending = "terminated" if self.terminated else "truncated" if self.truncated else "unfinished"
        if not self.termination_known:
            ending += " (terminated vs truncated unknown)"
        parts = [f"length={len(self)}"]
        if self.rews is not None:
            parts.append(f"return={float(np.sum(self.rews, dtype=np.float64)):.6g}")
        parts += [ending, f"seed={self.seed}", f"obs={describe_obs(self.obs)}", f"acts={describe_array(self.acts)}"]
        if self.infos is not None:
            parts.append(f"infos={len(self.infos)}")
        return f"Episode({', '.join(parts)})"


def obs_len(obs: Obs) -> int:
    """Number of rows of an observation array or dict of arrays."""
    if isinstance(obs, Mapping):
        lengths = {obs_len(v) for v in obs.values()}
        if len(lengths) != 1:
            raise DataError(f"observation keys have different lengths: {sorted(lengths)}")
        return lengths.pop()
    return int(obs.shape[0])


def flatten_obs(obs: Obs, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested observation mapping -> {"a.b": array}; a plain array -> {"": array}."""
    if not isinstance(obs, Mapping):
        return {prefix: obs}
    flat: dict[str, np.ndarray] = {}
    for key, value in obs.items():
        flat.update(flatten_obs(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def unflatten_obs(flat: Mapping[str, np.ndarray]) -> Obs:
    """Inverse of `flatten_obs`."""
    if set(flat) == {""}:
        return flat[""]
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def map_obs(obs: Obs, fn) -> Obs:
    """Apply `fn` to every leaf array of an observation."""
    if isinstance(obs, Mapping):
        return {k: map_obs(v, fn) for k, v in obs.items()}
    return fn(obs)


def _normalise_obs(obs: Obs, name: str) -> Obs:
    """`normalise_dtype` on every leaf, keeping the mapping's keys as they are."""
    if isinstance(obs, Mapping):
        return {key: _normalise_obs(value, f"{name}.{key}") for key, value in obs.items()}
    if not isinstance(obs, np.ndarray):
        raise DataError(f"{name} is a {type(obs).__name__}, not a numpy array")
    return normalise_dtype(name, obs)


@dataclass
class EpisodeBatch:
    """Episodes in columnar form.

    - `obs`: every episode's T_i + 1 observations concatenated (sum(T_i + 1) rows);
    - `acts`, `rews`, `infos`: every episode's T_i steps concatenated (sum(T_i) rows);
    - `lengths`, `terminated`, `truncated`, `termination_known`, `seeds`: one entry per episode.
    """

    obs: Obs
    acts: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    termination_known: np.ndarray
    rews: np.ndarray | None = None
    infos: Sequence[dict[str, Any] | str | None] | None = None
    seeds: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        self.obs = _normalise_obs(self.obs, "obs")
        self.acts = normalise_dtype("acts", np.asarray(self.acts))
        if self.rews is not None:
            self.rews = normalise_dtype("rews", np.asarray(self.rews))
        n = len(self.lengths)
        for name in ("terminated", "truncated", "termination_known"):
            value = np.asarray(getattr(self, name), dtype=bool).reshape(-1)
            if value.shape[0] != n:
                raise DataError(f"{name} has {value.shape[0]} entries for {n} episodes")
            setattr(self, name, value)
        self.validate()

    @property
    def num_episodes(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def num_transitions(self) -> int:
        return int(self.lengths.sum())

    @property
    def first_rows(self) -> np.ndarray:
        """Index of every episode's first step in the concatenated acts/rews."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def returns(self) -> np.ndarray | None:
        """Sum of rewards per episode (float64), or None without rewards."""
        if self.rews is None:
            return None
        return np.add.reduceat(self.rews.astype(np.float64), self.first_rows)

    def validate(self) -> None:
        """Raise DataError on inconsistent lengths (the commonest corruption of legacy files)."""
        if self.num_episodes == 0:
            raise DataError("no episodes")
        if (self.lengths < 1).any():
            bad = int(np.flatnonzero(self.lengths < 1)[0])
            raise DataError(f"episode {bad} has no actions (length 0)")
        steps = self.num_transitions
        n_obs = obs_len(self.obs)
        if n_obs != steps + self.num_episodes:
            raise DataError(
                f"observations/actions length mismatch: {n_obs} observations for {steps} actions "
                f"in {self.num_episodes} episodes (expected {steps + self.num_episodes})"
            )
        if self.acts.shape[0] != steps:
            raise DataError(f"{self.acts.shape[0]} actions but episode lengths sum to {steps}")
        if self.rews is not None and self.rews.shape[0] != steps:
            raise DataError(f"{self.rews.shape[0]} rewards for {steps} actions")
        if self.infos is not None and len(self.infos) != steps:
            raise DataError(f"{len(self.infos)} infos for {steps} actions")
        if self.seeds is not None and len(self.seeds) != self.num_episodes:
            raise DataError(f"{len(self.seeds)} seeds for {self.num_episodes} episodes")
        for key, array in flatten_obs(self.obs).items():
            storable_dtype(f"obs.{key}" if key else "obs", array.dtype)
        storable_dtype("acts", self.acts.dtype)
        if self.rews is not None:
            storable_dtype("rews", self.rews.dtype)

    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode]) -> EpisodeBatch:
        """Concatenate per-episode arrays (one numpy call per field, not per step)."""
        if len(episodes) == 0:
            raise DataError("no episodes")
        first = episodes[0]
        for i, ep in enumerate(episodes):
            if obs_len(ep.obs) != len(ep) + 1:
                raise DataError(f"episode {i}: {obs_len(ep.obs)} observations for {len(ep)} actions (expected {len(ep) + 1})")
        flat = [flatten_obs(ep.obs) for ep in episodes]
        keys = list(flat[0])
        if any(list(f) != keys for f in flat):
            raise DataError("episodes have different observation keys")
        obs = unflatten_obs({k: np.concatenate([f[k] for f in flat]) for k in keys})
        has_rews = [ep.rews is not None for ep in episodes]
        if any(has_rews) and not all(has_rews):
            raise DataError("some episodes have rewards and others do not")
        rews = np.concatenate([ep.rews for ep in episodes]) if first.rews is not None else None
        infos: list[Any] | None = None
        if any(ep.infos is not None for ep in episodes):
            # Made plain here, within a budget, so that infos sharing lists by reference cannot
            # make the store's JSON encoding run forever.
            budget = InfoBudget(max(MAX_INFO_ELEMENTS, 64 * sum(len(ep) for ep in episodes)))
            infos = []
            for ep in episodes:
                if ep.infos is None:
                    infos.extend([None] * len(ep))
                else:
                    infos.extend(None if i is None else plain_info(i, budget) for i in ep.infos)
        seeds = None
        if any(ep.seed is not None for ep in episodes):
            seeds = np.array([-1 if ep.seed is None else ep.seed for ep in episodes], dtype=np.int64)
        return cls(
            obs=obs,
            acts=np.concatenate([np.asarray(ep.acts) for ep in episodes]),
            lengths=np.array([len(ep) for ep in episodes]),
            terminated=np.array([ep.terminated for ep in episodes]),
            truncated=np.array([ep.truncated for ep in episodes]),
            termination_known=np.array([ep.termination_known for ep in episodes]),
            rews=rews,
            infos=infos,
            seeds=seeds,
        )
