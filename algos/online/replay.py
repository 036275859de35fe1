"""Off-policy replay buffers for learned rewards: relabelled sampling, and saving as plain arrays.

A learner trained on a reward that keeps changing (a discriminator, a preference model) must not
train on the rewards its transitions were stored with: `RelabelledReplayBuffer` (SB3's
`replay_buffer_class`) gives every batch it samples the rewards of the current model.
`save_replay`/`load_replay` keep a buffer as plain arrays (npz, no pickles), never as SB3's
pickled buffers: a checkpoint is data, and loading it must not run code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

# (sampled batch) -> its rewards under the current model, shape (batch,)
Relabel = Callable[[ReplayBufferSamples], np.ndarray]
REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


class RelabelledReplayBuffer(ReplayBuffer):
    """SB3's `ReplayBuffer` whose `sample` replaces the stored rewards with `relabel(batch)`."""

    def __init__(self, *args: Any, relabel: Relabel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relabel = relabel

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        data = super().sample(batch_size, env)
        rewards = torch.as_tensor(self.relabel(data), dtype=torch.float32).reshape(-1, 1)
        return data._replace(rewards=rewards)


def save_replay(model: Any, path: Path) -> None:
    """The filled part of `model`'s replay buffer (if it has one) as an npz of plain arrays."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {k: getattr(buffer, k)[:size] for k in REPLAY_ARRAYS if getattr(buffer, k, None) is not None}
    arrays.update(pos=np.asarray(buffer.pos, np.int64), full=np.asarray(buffer.full))
    np.savez(path, **arrays)


def load_replay(model: Any, path: Path) -> None:
    """Refill `model`'s replay buffer from `save_replay`'s file (nothing when either is missing)."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None or not path.is_file():
        return
    with np.load(path, allow_pickle=False) as saved:
        for key in REPLAY_ARRAYS:
            if key in saved.files:
                values = saved[key]
                getattr(buffer, key)[: len(values)] = values
        buffer.pos, buffer.full = int(saved["pos"]), bool(saved["full"])
