"""Tabular MDPs with known dynamics, as gymnasium environments.

Each env exposes the attributes of `algos.mce_irl.TabularModel` (`transition_matrix (S, A, S)`,
`observation_matrix (S, D)`, `reward_matrix (S,)`, `horizon`, `initial_state_dist (S,)`), so the
MCE IRL functions take `env.unwrapped` (or the env itself) directly, while `ildata collect` rolls
the same env out like any other gymnasium env.

Episodes have a fixed horizon: never terminated, truncated after exactly `horizon` steps, so an
episode has `horizon + 1` observations, one per row of the occupancy measure `D`. The reward of a
step is the reward of the state the agent acts in (`reward_matrix[s_t]`), which is what the soft
Bellman backup of `mce_partition_fh` optimises.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np

ObservationKind = Literal["state", "features"]


class TabularModelEnv(gym.Env):
    """A finite-horizon MDP given by its matrices.

    `observation="state"` emits the state id (a `Discrete(S)` space: demonstrations index states
    directly); `observation="features"` emits the state's row of `observation_matrix` (a `Box`),
    which MCE IRL maps back to states by exact row match.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        transition_matrix: np.ndarray,
        reward_matrix: np.ndarray,
        initial_state_dist: np.ndarray,
        horizon: int,
        observation_matrix: np.ndarray | None = None,
        observation: ObservationKind = "state",
    ) -> None:
        T = np.asarray(transition_matrix, dtype=np.float64)
        if T.ndim != 3 or T.shape[0] != T.shape[2]:
            raise ValueError(f"transition_matrix must have shape (S, A, S), got {T.shape}")
        n_states, n_actions, _ = T.shape
        if not np.allclose(T.sum(axis=2), 1.0) or (T < 0).any():
            raise ValueError("transition_matrix rows must be probability distributions")
        R = np.asarray(reward_matrix, dtype=np.float64)
        if R.shape != (n_states,):
            raise ValueError(f"reward_matrix must have shape ({n_states},), got {R.shape}")
        p0 = np.asarray(initial_state_dist, dtype=np.float64)
        if p0.shape != (n_states,) or not np.isclose(p0.sum(), 1.0) or (p0 < 0).any():
            raise ValueError("initial_state_dist must be a distribution over the states")
        if int(horizon) < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        O = np.eye(n_states) if observation_matrix is None else np.asarray(observation_matrix)
        if O.ndim != 2 or O.shape[0] != n_states:
            raise ValueError(f"observation_matrix must have shape ({n_states}, D), got {O.shape}")
        self.transition_matrix = T
        self.reward_matrix = R
        self.initial_state_dist = p0
        self.horizon = int(horizon)
        self.observation_matrix = O.astype(np.float32)
        self.observation = observation
        if observation == "state":
            self.observation_space: gym.Space = gym.spaces.Discrete(n_states)
        elif observation == "features":
            self.observation_space = gym.spaces.Box(
                low=float(self.observation_matrix.min()),
                high=float(self.observation_matrix.max()),
                shape=(O.shape[1],),
                dtype=np.float32,
            )
        else:
            raise ValueError(f"observation must be 'state' or 'features', got {observation!r}")
        self.action_space = gym.spaces.Discrete(n_actions)
        # Cumulative rows: sampling a successor is one searchsorted instead of rng.choice(p=...).
        self._cum_T = np.cumsum(T, axis=2)
        self._cum_p0 = np.cumsum(p0)
        self._state = 0
        self._t = 0

    @property
    def n_states(self) -> int:
        return int(self.transition_matrix.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.transition_matrix.shape[1])

    def _obs(self) -> Any:
        if self.observation == "state":
            return np.int64(self._state)
        return self.observation_matrix[self._state].copy()

    @staticmethod
    def _sample(cum: np.ndarray, u: float) -> int:
        return int(min(np.searchsorted(cum, u * cum[-1], side="right"), cum.shape[0] - 1))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = self._sample(self._cum_p0, float(self.np_random.random()))
        self._t = 0
        return self._obs(), {"state": self._state, "t": 0}

    def step(self, action: Any):
        if not self.action_space.contains(int(action)):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        reward = float(self.reward_matrix[self._state])
        self._state = self._sample(self._cum_T[self._state, int(action)], float(self.np_random.random()))
        self._t += 1
        truncated = self._t >= self.horizon
        return self._obs(), reward, False, truncated, {"state": self._state, "t": self._t}


# Actions of the gridworld: (row offset, column offset); row 0 is the top row.
GRID_MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])  # up, right, down, left


class CliffWorldEnv(TabularModelEnv):
    """Sutton & Barto's cliff walk as a finite-horizon tabular MDP.

    Start is the bottom-left cell, goal the bottom-right one, and the cells between them on the
    bottom row are the cliff. Goal and cliff cells are absorbing, paying `rew_goal` /
    `rew_cliff` on every remaining step; every other cell pays `rew_default`. With probability
    `slip` a move goes in a uniformly random direction instead, so the safe path away from the
    edge trades length against risk. Moves into a wall stay put.

    `features="onehot"` makes `observation_matrix` the identity (any state reward is linear in
    it); `features="xy"` gives each cell its (row, column) scaled to [0, 1].
    """

    def __init__(
        self,
        width: int = 6,
        height: int = 4,
        horizon: int = 20,
        slip: float = 0.1,
        rew_default: float = -1.0,
        rew_goal: float = 10.0,
        rew_cliff: float = -10.0,
        features: Literal["onehot", "xy"] = "onehot",
        observation: ObservationKind = "state",
    ) -> None:
        if width < 3 or height < 2:
            raise ValueError("the cliff world needs width >= 3 and height >= 2")
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip must be in [0, 1], got {slip}")
        self.width, self.height = int(width), int(height)
        rows, cols = np.divmod(np.arange(width * height), width)
        bottom = rows == height - 1
        goal = bottom & (cols == width - 1)
        cliff = bottom & (cols > 0) & (cols < width - 1)
        reward = np.where(goal, rew_goal, np.where(cliff, rew_cliff, rew_default))

        # Successor of every (state, move) with walls clamped: vectorised over the grid.
        target_rows = np.clip(rows[:, None] + GRID_MOVES[None, :, 0], 0, height - 1)
        target_cols = np.clip(cols[:, None] + GRID_MOVES[None, :, 1], 0, width - 1)
        successor = target_rows * width + target_cols  # (S, 4)
        n = width * height
        move = np.zeros((n, 4, n))
        np.put_along_axis(move, successor[:, :, None], 1.0, axis=2)
        # Intended move with prob 1 - slip, otherwise one of the 4 moves uniformly.
        transition = (1.0 - slip) * move + slip * move.mean(axis=1, keepdims=True)
        absorbing = goal | cliff
        transition[absorbing] = np.eye(n)[absorbing][:, None, :]

        start = (height - 1) * width
        initial = np.zeros(n)
        initial[start] = 1.0
        if features == "onehot":
            obs_matrix = np.eye(n)
        elif features == "xy":
            obs_matrix = np.stack([rows / (height - 1), cols / (width - 1)], axis=1)
        else:
            raise ValueError(f"features must be 'onehot' or 'xy', got {features!r}")
        super().__init__(transition, reward, initial, horizon, obs_matrix, observation)


class RandomMDPEnv(TabularModelEnv):
    """A random finite-horizon MDP drawn from `mdp_seed` (the same seed gives the same MDP).

    Each (state, action) leads to `branch_factor` random successors with Dirichlet(1)
    probabilities; the initial distribution is Dirichlet over all states; observations are
    standard-normal features and the reward is linear in them (so a linear reward net can
    represent it exactly).
    """

    def __init__(
        self,
        n_states: int = 16,
        n_actions: int = 3,
        branch_factor: int = 3,
        horizon: int = 10,
        obs_dim: int = 5,
        mdp_seed: int = 0,
        observation: ObservationKind = "state",
    ) -> None:
        if not 1 <= branch_factor <= n_states:
            raise ValueError(f"branch_factor must be in [1, {n_states}], got {branch_factor}")
        rng = np.random.default_rng(mdp_seed)
        transition = np.zeros((n_states, n_actions, n_states))
        # One random permutation per (s, a), keeping the first `branch_factor` states.
        successors = np.argsort(rng.random((n_states, n_actions, n_states)), axis=2)[..., :branch_factor]
        probs = rng.dirichlet(np.ones(branch_factor), size=(n_states, n_actions))
        np.put_along_axis(transition, successors, probs, axis=2)
        obs_matrix = rng.standard_normal((n_states, obs_dim))
        reward = obs_matrix @ rng.standard_normal(obs_dim)
        initial = rng.dirichlet(np.ones(n_states))
        super().__init__(transition, reward, initial, horizon, obs_matrix, observation)
