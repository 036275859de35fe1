"""Horizon checks: whether every episode has the same length, and transforms that make it so.

Why it matters: in AIRL, GAIL and preference comparisons the discriminator or reward model sees
where episodes end. If expert episodes end at different times (CartPole ends when the pole falls),
episode length itself carries reward information: a learned reward that is merely positive
(or negative) everywhere teaches the policy to survive (or die early) regardless of what the
demonstrations did. Fixed horizons remove that leak (see Gleave et al., seals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ildata.episode import DataError, EpisodeBatch, flatten_obs, unflatten_obs

ABSORBING_KEY = "absorbing"


class VariableHorizonError(DataError):
    """Episodes of different lengths given to an algorithm that would learn from their ends."""


@dataclass
class HorizonVerdict:
    fixed: bool
    length: int | None  # the common length when fixed
    histogram: dict[int, int] = field(default_factory=dict)  # length -> number of episodes

    def to_dict(self) -> dict[str, Any]:
        return {"fixed": self.fixed, "length": self.length, "histogram": {str(k): v for k, v in self.histogram.items()}}

    def describe(self) -> str:
        if self.fixed:
            return f"fixed horizon of {self.length} steps"
        lengths = sorted(self.histogram)
        return f"variable horizon: {len(lengths)} distinct lengths from {lengths[0]} to {lengths[-1]}"


def verdict(lengths: np.ndarray) -> HorizonVerdict:
    values, counts = np.unique(np.asarray(lengths), return_counts=True)
    histogram = {int(v): int(c) for v, c in zip(values, counts)}
    fixed = len(values) == 1
    return HorizonVerdict(fixed=fixed, length=int(values[0]) if fixed else None, histogram=histogram)


def check_fixed_horizon(lengths: np.ndarray, *, allow_variable_horizon: bool = False, what: str = "this algorithm") -> HorizonVerdict:
    """Return the verdict; raise VariableHorizonError on variable horizons unless allowed."""
    result = verdict(lengths)
    if not result.fixed and not allow_variable_horizon:
        raise VariableHorizonError(
            f"{result.describe()}. Episode ends leak reward information to {what}: a reward that is "
            "positive (negative) everywhere already rewards surviving (dying early), whatever the "
            "demonstrations did. Make the data fixed-horizon (`ildata convert SRC DST --fixed-horizon "
            "absorbing|truncate`, or fixed-horizon envs such as seals/), or pass "
            "allow_variable_horizon=True if you know what you are doing."
        )
    return result


def make_fixed_horizon(batch: EpisodeBatch, method: str, horizon: int | None = None) -> EpisodeBatch:
    """Return a fixed-horizon copy of `batch`.

    - "truncate": cut every episode to `horizon` (default: the shortest length) and mark the cut
      ones truncated; episodes shorter than `horizon` are dropped.
    - "absorbing": pad every episode that ended before `horizon` (default: the longest length) with
      an absorbing state: the final observation repeated, flagged by an extra observation key
      `absorbing` (1 on padded rows), zero actions and zero rewards (as in DAC, Kostrikov et al.).
      Only episodes that ended by termination (or whose end is unknown) can be padded: padding a
      truncated episode would invent a termination, so that is refused.
    """
    lengths = batch.lengths
    if method == "truncate":
        horizon = int(lengths.min()) if horizon is None else int(horizon)
        keep = lengths >= horizon
        if not keep.any():
            raise DataError(f"no episode is at least {horizon} steps long")
        return _truncate(batch, keep, horizon)
    if method == "absorbing":
        horizon = int(lengths.max()) if horizon is None else int(horizon)
        if (lengths > horizon).any():
            raise DataError(f"episodes longer than the horizon {horizon}: use --fixed-horizon truncate")
        short_truncated = (lengths < horizon) & batch.truncated
        if short_truncated.any():
            raise DataError(
                f"{int(short_truncated.sum())} episodes were truncated before {horizon} steps: an absorbing "
                "state would claim they terminated; use --fixed-horizon truncate"
            )
        return _pad_absorbing(batch, horizon)
    raise DataError(f"unknown fixed-horizon method {method!r} (use 'absorbing' or 'truncate')")


def _obs_row_index(lengths: np.ndarray) -> np.ndarray:
    """Start row of every episode's observations in the (T+1)-per-episode layout."""
    return np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])


def _truncate(batch: EpisodeBatch, keep: np.ndarray, horizon: int) -> EpisodeBatch:
    lengths = batch.lengths
    act_start = batch.first_rows[keep]
    obs_start = _obs_row_index(lengths)[keep]
    step = np.tile(np.arange(horizon), len(act_start))
    act_rows = np.repeat(act_start, horizon) + step
    obs_rows = np.repeat(obs_start, horizon + 1) + np.tile(np.arange(horizon + 1), len(obs_start))
    cut = lengths[keep] > horizon
    flat = {k: v[obs_rows] for k, v in flatten_obs(batch.obs).items()}
    return EpisodeBatch(
        obs=unflatten_obs(flat),
        acts=batch.acts[act_rows],
        lengths=np.full(len(act_start), horizon),
        terminated=batch.terminated[keep] & ~cut,
        truncated=batch.truncated[keep] | cut,
        termination_known=batch.termination_known[keep] | cut,
        rews=batch.rews[act_rows] if batch.rews is not None else None,
        infos=[batch.infos[i] for i in act_rows] if batch.infos is not None else None,
        seeds=batch.seeds[keep] if batch.seeds is not None else None,
    )


def _pad_absorbing(batch: EpisodeBatch, horizon: int) -> EpisodeBatch:
    lengths = batch.lengths
    n = len(lengths)
    padded = lengths < horizon
    # Output step s of episode e reads source step min(s, len_e - 1) for actions and
    # source observation min(s, len_e) (the final observation repeats as the absorbing state).
    step = np.tile(np.arange(horizon), n)
    obs_step = np.tile(np.arange(horizon + 1), n)
    act_src = np.repeat(batch.first_rows, horizon) + np.minimum(step, np.repeat(lengths - 1, horizon))
    obs_src = np.repeat(_obs_row_index(lengths), horizon + 1) + np.minimum(obs_step, np.repeat(lengths, horizon + 1))
    padded_act = step >= np.repeat(lengths, horizon)
    padded_obs = obs_step > np.repeat(lengths, horizon + 1)
    flat = {k: v[obs_src] for k, v in flatten_obs(batch.obs).items()}
    if ABSORBING_KEY in flat:
        raise DataError(f"observations already have a key named {ABSORBING_KEY!r}")
    if set(flat) == {""}:
        flat = {"obs": flat[""]}
    flat[ABSORBING_KEY] = padded_obs.astype(np.uint8)
    acts = batch.acts[act_src].copy()
    acts[padded_act] = 0
    rews = None
    if batch.rews is not None:
        rews = batch.rews[act_src].copy()
        rews[padded_act] = 0
    infos = None
    if batch.infos is not None:
        infos = [None if p else batch.infos[i] for i, p in zip(act_src.tolist(), padded_act.tolist())]
    return EpisodeBatch(
        obs=unflatten_obs(flat),
        acts=acts,
        lengths=np.full(n, horizon),
        # A padded episode now ends at the horizon in its absorbing state: cut there, not terminated.
        terminated=batch.terminated & ~padded,
        truncated=batch.truncated | padded,
        termination_known=batch.termination_known | padded,
        rews=rews,
        infos=infos,
        seeds=batch.seeds,
        extra={"padded_episodes": int(padded.sum())},
    )
