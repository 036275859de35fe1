"""Train an RL expert (`algo: rl`) on the online layer, to collect demonstrations from.

Kept as recipes (recipes/expert-*.yaml) so the shipped experts (datasets/experts/) and the shipped
Pendulum data can be rebuilt: train the expert, then `ildata collect --policy <run folder> ...`.
Training is `algos.online`'s: `make_vec_env` (seeded episodes, the step counter) and a layer
learner (PPO, SAC or TRPO, `learner:` in SB3's words, see `algos.online.learners`), which never
takes more than `total_timesteps` env steps. The policy is saved as an SB3 zip under `policy/`
and loaded back through `algos.policies.load_sb3` (no unpickling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym

from algos.base import Algorithm, LogFn, register
from algos.policies import load_sb3, write_policy_meta
from ildata.episode import DataError
from ildata.store import TrajectoryDataset

MODEL_FILE = "model.zip"


@dataclass
class ExpertConfig:
    """How long, in how many envs, and the learner (a mapping `algos.online.learners.learner_config` checks)."""

    RENAMED: ClassVar[dict[str, str]] = {"algorithm": "learner", "hyperparams": "learner"}

    total_timesteps: int = 20_000  # env steps in all, an upper bound (the step counter checks it)
    n_envs: int = 1
    # `{algo: ppo | sac | trpo, ...}` with SB3's argument names (`rollout_steps` for n_steps)
    learner: dict[str, Any] = field(default_factory=lambda: {"algo": "sac"})
    log_interval: int = 1000  # env steps between metric rows (SB3 reports more often)

    def __post_init__(self) -> None:
        from algos.online.learners import learner_config

        if self.total_timesteps < 1:
            raise DataError("total_timesteps: must be at least 1")
        if self.n_envs < 1:
            raise DataError("n_envs: must be at least 1")
        if self.log_interval < 1:
            raise DataError("log_interval: must be at least 1")
        learner_config(self.learner)  # checked now, before anything trains


@register("rl")
class Expert(Algorithm):
    """Online RL in the recipe's env; no dataset."""

    Config = ExpertConfig
    needs_dataset = False
    config: ExpertConfig

    def __init__(self, config: ExpertConfig, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.model: Any = None  # the SB3 model

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Train for at most `total_timesteps` env steps; log SB3's metrics with `env_steps`."""
        from algos.online.learners import learner_config, make_learner
        from algos.online.vec_env import make_vec_env

        env_id = env_id or self.env_id
        if env_id is None:
            raise DataError("env: the rl algorithm trains in an env")
        self.env_id = env_id
        venv = make_vec_env(env_id, self.config.n_envs, seed=self.seed)
        last: dict[str, float] = {}
        logged = [0]  # env steps at the last row written

        def forward(step: int, metrics: dict[str, float]) -> None:
            last.update(metrics, env_steps=float(venv.steps))
            if "rollout/ep_rew_mean" in metrics:
                last["episode_return_mean"] = metrics["rollout/ep_rew_mean"]
            if log is not None and (venv.steps - logged[0] >= self.config.log_interval or venv.steps >= budget):
                logged[0] = venv.steps
                log(step, dict(last))

        learner = make_learner(learner_config(self.config.learner), venv, seed=self.seed, log=forward)
        budget = learner.plan(self.config.total_timesteps)
        learner.learn(self.config.total_timesteps)
        venv.close()
        self.model = learner.model
        self.policy = learner.policy
        return last

    def _save_state(self, run_dir: Path) -> None:
        """The SB3 zip under `policy/` (loaded back without unpickling, see `load_sb3`)."""
        if self.model is None:
            raise RuntimeError("fit before save")
        policy_dir = run_dir / "policy"
        policy_dir.mkdir(parents=True, exist_ok=True)
        self.model.save(policy_dir / MODEL_FILE)
        write_policy_meta(
            policy_dir,
            "sb3",
            self.model.observation_space,
            self.model.action_space,
            file=MODEL_FILE,
            env_id=self.env_id,
            algorithm=type(self.model).__name__,
        )

    def _load_state(self, run_dir: Path) -> None:
        if self.env_id is None:
            raise DataError("an rl run folder needs the env it was trained in (env_id is null)", subject=run_dir)
        policy = load_sb3(run_dir / "policy" / MODEL_FILE, self.env_id)
        self.model, self.policy = policy.model, policy
