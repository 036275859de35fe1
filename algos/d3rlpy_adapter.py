"""Hand an ildata TrajectoryDataset to d3rlpy's offline algorithms, in memory.

d3rlpy's own Minari loader (`d3rlpy.datasets.get_minari`) concatenates T+1 observations with T
actions and so shifts every episode after the first by one step per episode; this adapter builds
the step-aligned arrays with `ildata.formats.d3rlpy_h5.to_d3rlpy_arrays` (the same layout as
`ildata convert --to d3rlpy`): one observation per action, `terminals` only for real
terminations, `timeouts` for every other episode end, whose final observation is kept by a
padding step that d3rlpy never samples as a transition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ildata.episode import DataError
from ildata.formats.d3rlpy_h5 import to_d3rlpy_arrays


def action_space_of(space: Any) -> tuple[Any, int]:
    """(d3rlpy ActionSpace, action_size) for a gymnasium action space."""
    import gymnasium as gym
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
