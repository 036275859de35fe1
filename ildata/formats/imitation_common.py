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

from ildata.episode import MAX_INFO_ELEMENTS, DataError, EpisodeBatch, InfoBudget, Obs, plain_info
from ildata.formats import SourceRead

TRUNCATED_KEY = "TimeLimit.truncated"


def _truncation_flag(info: Any) -> int:
    """1: info says truncated, 0: says not truncated, -1: does not say."""
    if isinstance(info, str):  # a jsonpickle payload kept verbatim: still JSON at the top level
        try:
            info = json.loads(info)
        except (ValueError, RecursionError):
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


def _is_trivial(info: Any) -> bool:
    """Empty, or holding only the truncation flag (which the episode flags already carry)."""
    return not info or (isinstance(info, dict) and info.keys() <= {TRUNCATED_KEY})


def _all_empty(infos: Sequence[Any]) -> bool:
    # `any` runs at C speed over empty dicts/None: the 2M-step case costs ~20 ms. An array info
    # has no truth value (ValueError): then it is not empty.
    try:
        return not any(infos)
    except ValueError:
        return False


def info_budget(source_bytes: int) -> InfoBudget:
    """The most info elements a source of `source_bytes` may decode to. A pickle or JSON spends
    at least a byte on each element it really holds, so only references shared many times
    (a few bytes that stand for a whole list) can go past four per byte."""
    return InfoBudget(max(MAX_INFO_ELEMENTS, 4 * source_bytes))


def carries_infos(infos: Sequence[Any]) -> bool:
    """Whether per-step infos hold anything besides empty dicts and the truncation flag."""
    return not (_all_empty(infos) or all(not isinstance(i, np.ndarray) and _is_trivial(i) for i in infos))


def plain_infos(infos: Sequence[Any], budget: InfoBudget, *, keep: bool | None = None) -> list[Any] | None:
    """Per-step infos as plain Python, or None when they carry nothing (the common case).
    `keep` overrides that test: a source read in chunks decides it once for all its steps."""
    if not (carries_infos(infos) if keep is None else keep):
        return None
    return [plain_info(i, budget) if i is not None else None for i in infos]


def make_read(
    fmt: str,
    obs: Obs,
    acts: np.ndarray,
    lengths: np.ndarray,
    terminal: np.ndarray,
    rews: np.ndarray | None,
    infos: Sequence[Any] | None,
    notes: list[str] | None = None,
    *,
    source_bytes: int,
    keep_infos: bool | None = None,
) -> SourceRead:
    """Assemble the `SourceRead` of an imitation file (flags per `termination_flags`);
    `source_bytes`, the size the infos were decoded from, bounds what they may expand to;
    `keep_infos` (default: whether these infos carry anything) whether the batch keeps them."""
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
        infos=plain_infos(infos, info_budget(source_bytes), keep=keep_infos) if infos is not None else None,
    )
    notes = list(notes or [])
    note = termination_note(int((~known).sum()), len(known))
    if note:
        notes.append(note)
    return SourceRead(batch=batch, format=fmt, notes=notes)


def termination_note(unknown: int, episodes: int) -> str | None:
    """The note for episodes whose termination imitation's `terminal` cannot tell apart."""
    if not unknown:
        return None
    return (
        f"{unknown} of {episodes} episodes: imitation stores time-limit truncation as "
        "terminal=True, so whether they terminated or were truncated is recorded as unknown"
    )
