"""Preference comparisons' round checkpoints: everything the next round needs, so that a run
interrupted and resumed (`ildata train --resume`) logs exactly the metrics of one never interrupted.

Beside the run state (reward ensemble, preference pairs, normaliser, learner policy and
optimisers), a checkpoint holds what the next round draws on: the reward optimisers, the
off-policy replay buffer, the last phase's episodes (the next queries' fragments), the episodes
still running in the sub-envs (replayed from their seeds on resume, `EpisodeRecorder.resume`),
the SB3 model's counters, and every random generator: the run's and the oracle's, and the global
numpy, torch and Python ones SB3 draws its actions and replay batches from. Arrays are saved as
plain npz (no pickles), never as SB3's pickled buffers: a checkpoint is data, and loading it must
not run code.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from algos.online.learners import Learner
from algos.online.recorder import EpisodeRecorder
from algos.online.replay import load_replay, save_replay
from ildata.episode import EpisodeBatch, Obs

OPTIMIZERS_FILE = "reward_optimizers.pt"
REPLAY_FILE = "replay.npz"
ROUND_FILE = "round.json"  # the counters, generators and metrics rows
BATCH_FILE = "episodes.npz"  # the last learner phase's episodes: the next round's fragments come from them
RUNNING_FILE = "running.npz"  # the episodes running in the sub-envs
TORCH_RNG_FILE = "torch_rng.pt"
EPISODE_ARRAYS = ("obs", "acts", "rews", "lengths", "terminated", "truncated", "termination_known", "seeds")
MODEL_COUNTERS = ("_n_calls", "_n_updates", "_episode_num")  # SB3 model counters a fresh model restarts


def save_round(
    path: Path,
    learner: Learner,
    recorder: EpisodeRecorder,
    optimizers: list[torch.optim.Optimizer],
    batch: EpisodeBatch | None,
    counters: dict[str, Any],
) -> None:
    """Write the round's files into `path` (an open atomic folder); `counters` (JSON) gets the
    model's counters and the global generators added."""
    torch.save([opt.state_dict() for opt in optimizers], path / OPTIMIZERS_FILE)
    save_replay(learner.model, path / REPLAY_FILE)
    if batch is not None:
        episodes: dict[str, Any] = {k: np.asarray(getattr(batch, k)) for k in EPISODE_ARRAYS if getattr(batch, k) is not None}
        np.savez(path / BATCH_FILE, **episodes)
    running: dict[str, Any] = recorder.running_state()
    np.savez(path / RUNNING_FILE, **running)
    torch.save(torch.get_rng_state(), path / TORCH_RNG_FILE)
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    state = {
        **counters,
        "model_counters": {name: int(getattr(learner.model, name)) for name in MODEL_COUNTERS if hasattr(learner.model, name)},
        "numpy_rng": [kind, keys.tolist(), pos, has_gauss, cached],
        "python_rng": random.getstate(),
        "action_space_rng": _action_space_rng(learner).bit_generator.state,
    }
    (path / ROUND_FILE).write_text(json.dumps(state))


def read_counters(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / ROUND_FILE).read_text()))


def load_batch(path: Path) -> EpisodeBatch | None:
    if not (path / BATCH_FILE).is_file():
        return None
    with np.load(path / BATCH_FILE, allow_pickle=False) as saved:
        return EpisodeBatch(**{k: saved[k] for k in saved.files})


def restore_round(
    path: Path, learner: Learner, recorder: EpisodeRecorder, optimizers: list[torch.optim.Optimizer], state: dict[str, Any]
) -> Obs:
    """Put a freshly loaded learner, its env stack and the generators where the checkpoint was:
    the replay buffer, the running episodes (replayed), the model's counters, the optimisers and the
    global generators (last: building the model reseeded them). Returns the sub-envs' observations."""
    load_replay(learner.model, path / REPLAY_FILE)
    with np.load(path / RUNNING_FILE, allow_pickle=False) as saved:
        running = {k: saved[k] for k in saved.files}
    obs = recorder.resume(running)
    model = learner.model
    model._last_obs = obs  # type: ignore[assignment]
    model._last_episode_starts = running["pos"] == 0  # an episode that began at the last step
    for name, value in state["model_counters"].items():
        setattr(model, name, value)
    for opt, saved_opt in zip(optimizers, torch.load(path / OPTIMIZERS_FILE, weights_only=True), strict=True):
        opt.load_state_dict(saved_opt)
    torch.set_rng_state(torch.load(path / TORCH_RNG_FILE, weights_only=True))
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    _action_space_rng(learner).bit_generator.state = state["action_space_rng"]
    return obs


def _action_space_rng(learner: Learner) -> np.random.Generator:
    """The generator SB3 draws an off-policy learner's first (`learning_starts`) actions from."""
    rng = learner.model.action_space.np_random
    assert isinstance(rng, np.random.Generator)
    return rng
