"""What every `imitation` format shares: the meaning of `terminal`, and how infos are kept.

imitation ends a rollout on `done` (terminated OR truncated) and stores that as `terminal`, so a
time-limit truncation reads as `terminal=True`. The only trace of the difference is the
`TimeLimit.truncated` key that stable-baselines3's VecEnvs put into every step's info (True on
a time-limit cut, False otherwise). These helpers turn that into honest per-episode flags.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, Obs
from ildata.formats import SourceRead

TRUNCATED_KEY = "TimeLimit.truncated"

_JSON_SCALARS = (str, int, float, bool, type(None))


def _truncation_flag(info: Any) -> int:
    """1: info says truncated, 0: says not truncated, -1: does not say."""
    if isinstance(info, str):  # a jsonpickle payload kept verbatim: still JSON at the top level
        try:
            info = json.loads(info)
        except ValueError:
            return -1
    flag = info.get(TRUNCATED_KEY) if isinstance(info, dict) else None
    if isinstance(flag, (bool, np.bool_)):
        return 1 if flag else 0
    return -1


def termination_flags(terminal: np.ndarray, last_infos: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(terminated, truncated, termination_known) per episode from imitation's `terminal`.

    - last info says `TimeLimit.truncated: True`: truncated, known;
    - last info says `TimeLimit.truncated: False`: terminated = terminal, known (SB3 semantics);
    - otherwise: terminated = terminal but unknown, since imitation folded truncation into it.
    """
    terminal = np.asarray(terminal, dtype=bool).reshape(-1)
    if last_infos is None:
        flags = np.full(terminal.shape[0], -1, dtype=np.int8)
    else:
        flags = np.fromiter((_truncation_flag(i) for i in last_infos), dtype=np.int8, count=len(terminal))
    truncated = flags == 1
    return terminal & ~truncated, truncated, flags >= 0


def to_plain(value: Any) -> Any:
    """numpy scalars/arrays inside infos -> plain Python, so infos serialise as JSON."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist()) if value.dtype.hasobject else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _JSON_SCALARS):
        return value
    return repr(value)  # nothing else can come out of the allow-listed unpickler


def _is_trivial(info: Any) -> bool:
    """Empty, or holding only the truncation flag (which the episode flags already carry)."""
    return not info or (isinstance(info, dict) and info.keys() <= {TRUNCATED_KEY})


def plain_infos(infos: Sequence[Any]) -> list[Any] | None:
    """Per-step infos as plain Python, or None when they carry nothing (the common case)."""
    # `any` runs at C speed over empty dicts/None: the 2M-step case costs ~20 ms.
    if not any(infos) or all(map(_is_trivial, infos)):
        return None
    return [to_plain(i) if i is not None else None for i in infos]


def make_read(
    fmt: str,
    obs: Obs,
    acts: np.ndarray,
    lengths: np.ndarray,
    terminal: np.ndarray,
    rews: np.ndarray | None,
    infos: Sequence[Any] | None,
    notes: list[str] | None = None,
) -> SourceRead:
    """Assemble the `SourceRead` of an imitation file (flags per `termination_flags`)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    last_infos = None
    if infos is not None:
        if len(infos) != int(lengths.sum()):
            raise DataError(f"{len(infos)} infos for {int(lengths.sum())} actions")
        last_infos = [infos[int(i)] for i in np.cumsum(lengths) - 1]
    terminated, truncated, known = termination_flags(terminal, last_infos)
    batch = EpisodeBatch(
        obs=obs,
        acts=acts,
        lengths=lengths,
        terminated=terminated,
        truncated=truncated,
        termination_known=known,
        rews=rews,
        infos=plain_infos(infos) if infos is not None else None,
    )
    notes = list(notes or [])
    unknown = int((~known).sum())
    if unknown:
        notes.append(
            f"{unknown} of {len(known)} episodes: imitation stores time-limit truncation as "
            "terminal=True, so whether they terminated or were truncated is recorded as unknown"
        )
    return SourceRead(batch=batch, format=fmt, notes=notes)
