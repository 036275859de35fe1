"""Hand an ildata TrajectoryDataset to d3rlpy's offline algorithms, in memory.

d3rlpy's own Minari loader (`d3rlpy.datasets.get_minari`) concatenates T+1 observations with T
actions and so shifts every episode after the first by one step per episode; this adapter builds
the step-aligned arrays with `ildata.formats.d3rlpy_h5.to_d3rlpy_arrays` (the same layout as
`ildata convert --to d3rlpy`): one observation per action, `terminals` only for real
terminations, `timeouts` for every other episode end, whose final observation is kept by a
padding step that d3rlpy never samples as a transition.

The way back: `D3rlpyPolicy` acts with a trained d3rlpy model on observations as ildata holds them,
and `bc_config` is the d3rlpy BC config BC's `backend: d3rlpy` trains (and its loader rebuilds).
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np

from algos.base import quiet_import
from algos.policies import Policy
from algos.sampler import space_leaves
from ildata.episode import DataError, Obs, flatten_obs
from ildata.formats.d3rlpy_h5 import to_d3rlpy_arrays


def action_space_of(space: Any) -> tuple[Any, int]:
    """(d3rlpy ActionSpace, action_size) for a gymnasium action space."""
    from d3rlpy.constants import ActionSpace

    if isinstance(space, gym.spaces.Discrete):
        if int(space.start) != 0:
            raise DataError(f"d3rlpy needs discrete actions numbered from 0, the space starts at {space.start}")
        return ActionSpace.DISCRETE, int(space.n)
    if isinstance(space, gym.spaces.Box):
        return ActionSpace.CONTINUOUS, int(np.prod(space.shape))
    raise DataError(f"d3rlpy supports Discrete and Box action spaces, not {space}")


def to_mdp_dataset(ds: Any) -> Any:
    """TrajectoryDataset -> `d3rlpy.dataset.MDPDataset` with the same transitions.

    Dict/Tuple observations become d3rlpy tuple observations (one array per leaf, in the order of
    the store's observation keys). Rewards default to zeros when the dataset has none.
    """
    from d3rlpy.dataset import MDPDataset

    action_space, action_size = action_space_of(ds.action_space)
    arrays = to_d3rlpy_arrays(ds.to_batch())
    observations = arrays.observations[0] if arrays.keys == [""] else arrays.observations
    return MDPDataset(
        observations=observations,
        actions=arrays.actions,
        rewards=arrays.rewards,
        terminals=arrays.terminals,
        timeouts=arrays.timeouts,
        action_space=action_space,
        action_size=action_size,
    )


def bc_config(head: str, hidden_sizes: list[int], batch_size: int, learning_rate: float) -> Any:
    """d3rlpy's own BC config (`DiscreteBCConfig` for a categorical head) with BC's knobs."""
    d3rlpy = quiet_import("d3rlpy")

    encoder = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=list(hidden_sizes))
    common = dict(batch_size=batch_size, learning_rate=learning_rate, encoder_factory=encoder)
    if head == "categorical":
        return d3rlpy.algos.DiscreteBCConfig(**common)
    policy_type = "deterministic" if head == "deterministic" else "stochastic"
    return d3rlpy.algos.BCConfig(policy_type=policy_type, **common)


class D3rlpyPolicy(Policy):
    """A d3rlpy BC/DiscreteBC model's `predict` (always its deterministic action)."""

    def __init__(self, model: Any, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(observation_space, action_space, deterministic=True)
        self.model = model

    def act(self, obs: Obs) -> np.ndarray:
        action = np.asarray(self.model.predict(d3rlpy_observation(obs, self.observation_space)))
        if isinstance(self.action_space, gym.spaces.Discrete):
            return action.astype(self.action_space.dtype) + self.action_space.start
        box = cast(gym.spaces.Box, self.action_space)
        action = action.reshape((-1, *box.shape)).astype(box.dtype)
        return np.clip(action, box.low, box.high)


def d3rlpy_observation(obs: Obs, space: gym.Space) -> np.ndarray | list[np.ndarray]:
    """Observations as `to_mdp_dataset` gives them to d3rlpy: one array, or one per leaf."""
    flat = flatten_obs(obs)
    arrays = [np.asarray(flat[key], dtype=np.float32) for key, _ in space_leaves(space)]
    return arrays[0] if len(arrays) == 1 else arrays
