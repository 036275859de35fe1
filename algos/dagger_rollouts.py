"""The vec env stack DAgger rolls out in, and how its unfinished episodes survive a checkpoint.

Episodes run on across DAgger's rounds, so at a round's checkpoint the sub-envs are in the middle
of episodes. `RolloutEnv.save` keeps what the recorder holds of them (observations, the expert's
labels, rewards) with the actions the env executed; `RolloutEnv.restore` resets each sub-env with
its episode's seed and replays the executed actions, which brings an env that is deterministic
given its seed back to the state it was in, and refills the recorder: a resumed run then steps on
exactly as the uninterrupted one. Replaying asks nothing of the env but that determinism, where
pickling would need every env and wrapper to be picklable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from algos.online.recorder import EpisodeRecorder
from algos.online.vec_env import PolicyRunner, make_vec_env
from ildata.episode import Obs, flatten_obs, unflatten_obs

UNFINISHED_FILE = "unfinished.npz"  # in a checkpoint folder: the episodes running at its round's end


class LabelledActions(VecEnvWrapper):
    """Under the recorder: the recorder keeps the expert's labels as the episode's actions,
    while the env executes the mixture's actions (`executed`, set by the mixture each step).

    `history` holds the executed actions of the last vector steps, one (n_envs, ...) array each:
    a checkpoint replays the running episodes' share of them.
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.executed: np.ndarray | None = None
        self.history: list[np.ndarray] = []

    def step_async(self, actions: np.ndarray) -> None:
        executed = np.asarray(actions if self.executed is None else self.executed)
        self.history.append(executed)
        self.venv.step_async(executed)

    def reset(self) -> Any:
        self.history = []  # every episode starts over
        return self.venv.reset()

    def step_wait(self) -> Any:
        return self.venv.step_wait()


class RolloutEnv:
    """`n_envs` seeded envs (`make_vec_env`) under `LabelledActions` and a recorder, stepped by a
    `PolicyRunner` that keeps the last observation, so episodes continue from round to round."""

    def __init__(self, env_id: str, n_envs: int, seed: int) -> None:
        self.env_id = env_id
        self.base = make_vec_env(env_id, n_envs, seed=seed)
        self.labelled = LabelledActions(self.base)
        self.recorder = EpisodeRecorder(self.labelled)
        self.runner = PolicyRunner(self.recorder)

    def run(self, policy: Callable[[Obs], np.ndarray], n_env_steps: int) -> int:
        """Step with `policy` (at most `n_env_steps` env steps); keep only the history a checkpoint needs."""
        taken = self.runner.run(policy, n_env_steps)
        keep = int(self.recorder.running_state()["pos"].max())
        history = self.labelled.history
        self.labelled.history = history[len(history) - keep :] if keep else []
        return taken

    def save(self, folder: Path) -> None:
        """Write the running episodes (`EpisodeRecorder.running_state`) and their executed actions to `folder`."""
        state = self.recorder.running_state()
        steps = state["pos"]
        t = int(steps.max())
        # (t, n_envs, ...): the last t vector steps, in the dtype the envs were given (a replay must match it)
        last = np.stack(self.labelled.history[-t:]) if t else np.zeros((0, self.base.num_envs), self.base.action_space.dtype)
        executed = np.zeros((last.shape[1], t, *last.shape[2:]), dtype=last.dtype)
        for i, k in enumerate(steps):
            executed[i, :k] = last[t - k :, i]
        np.savez(folder / UNFINISHED_FILE, allow_pickle=False, executed=executed, **state)

    def restore(self, folder: Path) -> None:
        """Bring back the episodes `save` wrote: each sub-env replays its executed actions from its seed."""
        with np.load(folder / UNFINISHED_FILE) as f:
            state = {k: f[k] for k in f.files}
        executed, steps = state.pop("executed"), state["pos"]
        now = flatten_obs(self.recorder.resume(state, executed))
        rows = np.arange(len(steps))
        saved = {k: state[f"obs.{k}"][rows, steps] for k in now}
        self.runner.obs = unflatten_obs({k: np.asarray(v, dtype=saved[k].dtype) for k, v in now.items()})  # as the vec env returns it
        if not all(np.array_equal(now[k], saved[k]) for k in now):
            warnings.warn(
                f"{self.env_id}: replaying the unfinished episodes from their seeds led elsewhere (the env is not "
                "deterministic given its seed): the resumed run goes on from the replayed states",
                stacklevel=2,
            )
        t = int(steps.max())
        history = np.zeros((t, *executed.shape[:1], *executed.shape[2:]), dtype=executed.dtype)
        for i, k in enumerate(steps):
            history[t - k :, i] = executed[i, :k]
        self.labelled.history = list(history)

    def close(self) -> None:
        self.base.close()
