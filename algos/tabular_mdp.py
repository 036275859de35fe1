"""Tabular MDPs with known dynamics: the model protocol, finite-horizon soft and hard Bellman
backups, occupancy measures, the tabular policy, and the optimal planner (`algo: tabular_optimal`).

`mce_partition_fh` and `mce_occupancy_measures` follow the semantics of the functions of those
names in the `imitation` library (Ziebart 2010, chapters 9 and 10); `algos.mce_irl` trains a
reward through them.

Observations in a dataset index the states of the tabular env: a `Discrete` observation space
gives state ids directly; any other observation (e.g. a `Box` of features) is matched exactly to
a row of `observation_matrix` (rows must then be distinct).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from scipy.special import logsumexp

from algos.base import Algorithm, LogFn, register
from algos.policies import POLICY_LOADERS, Policy, PolicyMeta, load_policy, write_policy_meta
from algos.sampler import run_positions
from ildata.envs import make_env
from ildata.episode import DataError
from ildata.store import TrajectoryDataset

# ---------------------------------------------------------------------------------------------
# Tabular model protocol


@runtime_checkable
class TabularModel(Protocol):
    """What the MCE functions need: any object with these attributes works (duck typing).

    `transition_matrix[s, a, s']` = P(s' | s, a); `observation_matrix[s]` = features of state s;
    `reward_matrix[s]` = reward for acting in state s; `horizon` = steps per episode;
    `initial_state_dist[s]` = P(s_0 = s).
    """

    transition_matrix: np.ndarray
    observation_matrix: np.ndarray
    reward_matrix: np.ndarray
    horizon: int
    initial_state_dist: np.ndarray


def as_tabular_model(env: Any) -> TabularModel:
    """The model behind `env`: itself, or `env.unwrapped` for a `gym.make` wrapper stack.

    gymnasium 1.0 wrappers no longer forward attribute access, so `gym.make(...)` would otherwise
    hide the matrices.
    """
    if isinstance(env, TabularModel):
        return env
    inner = getattr(env, "unwrapped", None)
    if inner is not None and isinstance(inner, TabularModel):
        return inner
    missing = [name for name in TabularModel.__annotations__ if not hasattr(env, name)]
    raise TypeError(f"{type(env).__name__} is not a tabular model: missing {', '.join(missing)}")


def _reward_vector(model: TabularModel, reward: np.ndarray | None) -> np.ndarray:
    n_states = model.transition_matrix.shape[0]
    r = np.asarray(model.reward_matrix if reward is None else reward, dtype=np.float64)
    if r.shape != (n_states,):
        raise ValueError(f"reward must have shape ({n_states},), got {r.shape}")
    return r


# ---------------------------------------------------------------------------------------------
# Soft Bellman backup and occupancy measures


def _backup_fh(
    env: Any, reward: np.ndarray | None, discount: float, value_of: Callable[[np.ndarray], np.ndarray]
) -> tuple[TabularModel, np.ndarray, np.ndarray]:
    """Backward induction over the horizon with `V[t] = value_of(Q[t])` (soft or hard max)."""
    model = as_tabular_model(env)
    T = np.asarray(model.transition_matrix, dtype=np.float64)
    r = _reward_vector(model, reward)
    horizon = int(model.horizon)
    n_states, n_actions, _ = T.shape
    V = np.empty((horizon, n_states))
    Q = np.empty((horizon, n_states, n_actions))
    Q[horizon - 1] = r[:, None]
    V[horizon - 1] = value_of(Q[horizon - 1])
    for t in range(horizon - 2, -1, -1):
        Q[t] = r[:, None] + discount * (T @ V[t + 1])
        V[t] = value_of(Q[t])
    return model, V, Q


def mce_partition_fh(env: Any, *, reward: np.ndarray | None = None, discount: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft value iteration over the finite horizon (Ziebart's recurrences 9.1-9.3).

    Returns `(V, Q, pi)`: `V[t, s]`, `Q[t, s, a]`, `pi[t, s, a]` for `t < horizon`, where
    `Q[H-1, s, a] = r(s)`, `Q[t, s, a] = r(s) + discount * E_{s'|s,a} V[t+1, s']`,
    `V[t, s] = logsumexp_a Q[t, s, a]` and `pi = exp(Q - V)`. `reward` defaults to
    `env.reward_matrix`.
    """
    _, V, Q = _backup_fh(env, reward, discount, lambda q: logsumexp(q, axis=1))
    pi = np.exp(Q - V[:, :, None])
    return V, Q, pi


def mce_occupancy_measures(
    env: Any,
    *,
    reward: np.ndarray | None = None,
    pi: np.ndarray | None = None,
    discount: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """State occupancy of policy `pi` (default: the soft-optimal policy for `reward`).

    Returns `(D, Dcum)`: `D[t, s]` = P(s_t = s) for t = 0..horizon (horizon + 1 rows, each
    summing to 1) and `Dcum[s] = sum_t discount**t * D[t, s]`, the expected discounted number of
    visits of s. `pi` may be time-dependent `(horizon, S, A)` or stationary `(S, A)`.
    """
    model = as_tabular_model(env)
    T = np.asarray(model.transition_matrix, dtype=np.float64)
    horizon = int(model.horizon)
    n_states, n_actions, _ = T.shape
    if pi is None:
        _, _, pi = mce_partition_fh(model, reward=reward, discount=discount)
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape == (n_states, n_actions):
        pi = np.broadcast_to(pi, (horizon, n_states, n_actions))
    if pi.shape != (horizon, n_states, n_actions):
        raise ValueError(f"pi must have shape ({horizon}, {n_states}, {n_actions}), got {pi.shape}")
    T_flat = T.reshape(n_states * n_actions, n_states)
    D = np.empty((horizon + 1, n_states))
    D[0] = model.initial_state_dist
    for t in range(horizon):
        D[t + 1] = (D[t][:, None] * pi[t]).reshape(-1) @ T_flat
    Dcum = (discount ** np.arange(horizon + 1)) @ D
    return D, Dcum


def optimal_partition_fh(env: Any, *, reward: np.ndarray | None = None, discount: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard value iteration: like `mce_partition_fh` with max instead of logsumexp.

    `pi[t, s]` is deterministic (one-hot on the first maximising action), the optimal policy of
    the finite-horizon MDP.
    """
    _, V, Q = _backup_fh(env, reward, discount, lambda q: q.max(axis=1))
    pi = np.eye(Q.shape[2])[Q.argmax(axis=2)]
    return V, Q, pi


# ---------------------------------------------------------------------------------------------
# Observations -> states, and demonstration occupancy measures


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One hashable/sortable byte string per row (float32; -0.0 folded into 0.0)."""
    rows = np.ascontiguousarray(rows.reshape(rows.shape[0], -1), dtype=np.float32) + np.float32(0.0)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def states_from_obs(model: TabularModel, obs: np.ndarray) -> np.ndarray:
    """State ids of a batch of observations: integer ids, or exact rows of observation_matrix."""
    obs = np.asarray(obs)
    n_states = model.transition_matrix.shape[0]
    if np.issubdtype(obs.dtype, np.integer) and obs.ndim <= 1:
        states = obs.reshape(-1).astype(np.int64)
        if states.size and (states.min() < 0 or states.max() >= n_states):
            raise DataError(f"state ids must be in [0, {n_states}), got {states.min()}..{states.max()}")
        return states
    table = np.asarray(model.observation_matrix)
    if obs.ndim == 1:
        obs = obs[None]
    if obs.shape[1:] != table.shape[1:]:
        raise DataError(f"observations of shape {obs.shape[1:]} do not match observation_matrix rows {table.shape[1:]}")
    keys = _row_keys(table)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    query = _row_keys(obs)
    pos = np.clip(np.searchsorted(sorted_keys, query), 0, len(keys) - 1)
    found = sorted_keys[pos] == query
    if not found.all():
        bad = int(np.flatnonzero(~found)[0])
        raise DataError(f"observation {obs[bad].tolist()} is not a row of the env's observation_matrix")
    if (sorted_keys[1:] == sorted_keys[:-1]).any():
        raise DataError("observation_matrix has duplicate rows: observations cannot identify states")
    return order[pos]


def demo_occupancy(model: TabularModel, obs: np.ndarray, lengths: np.ndarray, discount: float = 1.0) -> np.ndarray:
    """Discounted state-visit counts of demonstrations, averaged over episodes (`Dcum` of the data).

    `obs` holds every episode's `T_i + 1` observations concatenated. Episodes must last the
    env's horizon: a shorter one would visit fewer states than the model's `D` and bias the match.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    horizon = int(model.horizon)
    if (lengths != horizon).any():
        bad = int(np.flatnonzero(lengths != horizon)[0])
        raise DataError(
            f"episode {bad} has {lengths[bad]} steps but the tabular env's horizon is {horizon}: "
            "MCE IRL matches occupancy over full-horizon episodes"
        )
    states = states_from_obs(model, obs)
    t = run_positions(lengths + 1)
    n_states = model.transition_matrix.shape[0]
    counts = np.bincount(states, weights=discount**t, minlength=n_states)
    return counts / len(lengths)


# ---------------------------------------------------------------------------------------------
# Tabular policy (a run folder's `policy/` of kind "tabular")


class TabularPolicy(Policy):
    """A policy table `pi[t, s, a]` as a callable obs -> action.

    A callable gets no timestep, so it acts with the first-step decision rule `pi[0]` (the one
    for a full horizon ahead); `act_at(obs, t)` uses the time-dependent rule. Deterministic
    policies take the most probable action, otherwise actions are drawn from `pi`.
    """

    def __init__(
        self,
        pi: np.ndarray,
        model: TabularModel,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        deterministic: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, deterministic)
        pi = np.asarray(pi, dtype=np.float64)
        if pi.ndim != 3 or not np.allclose(pi.sum(axis=2), 1.0) or (pi < 0).any():
            raise DataError("pi must be a (horizon, S, A) array of distributions")
        self.pi = pi
        self.model = model
        self.rng = np.random.default_rng(seed)

    def act_at(self, obs: Any, t: int | np.ndarray) -> np.ndarray:
        """Actions for a batch of observations at timestep(s) `t`."""
        states = states_from_obs(self.model, obs)
        t = np.clip(np.broadcast_to(np.asarray(t, dtype=np.int64), states.shape), 0, self.pi.shape[0] - 1)
        probs = self.pi[t, states]
        if self.deterministic:
            return probs.argmax(axis=1)
        u = self.rng.random((states.shape[0], 1))
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)

    def act(self, obs: Any) -> np.ndarray:
        return self.act_at(obs, 0)


def tabular_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[TabularModel, gym.Space, gym.Space]:
    """(model, observation_space, action_space) of a tabular env id."""
    env = make_env(env_id, **(env_kwargs or {}))
    try:
        return as_tabular_model(env), env.observation_space, env.action_space
    except TypeError as exc:
        raise DataError(f"{env_id} is not a tabular env: {exc}") from None
    finally:
        env.close()


def save_tabular_policy(policy_dir: Path, pi: np.ndarray, env_id: str, env_kwargs: dict[str, Any]) -> None:
    """`policy.json` (kind "tabular", env to rebuild the model from) and `pi.npy`."""
    _, observation_space, action_space = tabular_env(env_id, env_kwargs)
    write_policy_meta(policy_dir, "tabular", observation_space, action_space, env_id=env_id, env_kwargs=env_kwargs)
    np.save(policy_dir / "pi.npy", pi)


@POLICY_LOADERS.register("tabular")
def load_tabular_policy(policy_dir: Path, meta: PolicyMeta) -> TabularPolicy:
    """Rebuild a tabular policy: the model from its env id and kwargs, the table from `pi.npy`."""
    model, observation_space, action_space = tabular_env(meta["env_id"], meta.get("env_kwargs"))
    pi = np.load(policy_dir / "pi.npy", allow_pickle=False)
    return TabularPolicy(pi, model, observation_space, action_space)


def expected_return(model: TabularModel, pi: np.ndarray, discount: float = 1.0) -> float:
    """Exact expected return of `pi`: rewards of the states acted in, s_0 .. s_{H-1}."""
    D, _ = mce_occupancy_measures(model, pi=pi)
    return float((discount ** np.arange(D.shape[0] - 1)) @ D[:-1] @ np.asarray(model.reward_matrix))


# ---------------------------------------------------------------------------------------------
# The optimal planner, as an algorithm: its run folder is the expert `ildata collect` rolls out


@dataclass
class TabularOptimalConfig:
    """Hard value iteration on the env's own reward; no dataset needed."""

    discount: float = 1.0
    env_kwargs: dict[str, Any] = field(default_factory=dict)


@register("tabular_optimal")
class TabularOptimal(Algorithm):
    """Plans the optimal policy of a tabular env (the gridworld dataset's expert)."""

    Config = TabularOptimalConfig
    needs_dataset = False
    config: TabularOptimalConfig

    def __init__(
        self,
        config: TabularOptimalConfig,
        *,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.pi: np.ndarray | None = None

    def fit(self, dataset: TrajectoryDataset | None = None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        env_id = env_id or self.env_id
        if env_id is None:
            raise DataError("tabular_optimal needs a tabular env (recipe `env`)")
        cfg = self.config
        model, self.observation_space, self.action_space = tabular_env(env_id, cfg.env_kwargs)
        _, _, self.pi = optimal_partition_fh(model, discount=cfg.discount)
        self.env_id = env_id
        self.policy = TabularPolicy(self.pi, model, self.observation_space, self.action_space)
        metrics = {
            "expected_return": expected_return(model, self.pi, cfg.discount),
            # What the callable policy (first-step rule at every step) earns.
            "expected_return_stationary": expected_return(model, self.pi[0], cfg.discount),
        }
        if log is not None:
            log(0, metrics)
        return metrics

    def _save_state(self, run_dir: Path) -> None:
        if self.pi is None or self.env_id is None:
            raise RuntimeError("fit before save")
        save_tabular_policy(run_dir / "policy", self.pi, self.env_id, self.config.env_kwargs)

    def _load_state(self, run_dir: Path) -> None:
        policy = load_policy(run_dir)
        assert isinstance(policy, TabularPolicy)
        self.pi, self.policy = policy.pi, policy
        self.observation_space, self.action_space = policy.observation_space, policy.action_space
