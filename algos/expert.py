"""Train an RL expert (`algo: rl`) on the online layer, to collect demonstrations from.

Kept as recipes (recipes/expert-*.yaml) so the shipped experts (datasets/experts/) and the shipped
Pendulum data can be rebuilt: train the expert, then `ildata collect --policy <run folder> ...`.
Training is `algos.online`'s: `make_vec_env` (seeded episodes, the step counter) and a layer
learner (PPO, SAC or TRPO, `learner:` in SB3's words, see `algos.online.learners`), which never
takes more than `total_timesteps` env steps. The policy is saved as an SB3 zip under `policy/`
and loaded back through `algos.policies.load_sb3` (no unpickling).

`reward_from: RUN` trains the learner on the reward another run learned (a GAIL, AIRL or
preference-comparisons run folder, `algos.saved_reward`) instead of the env's, paid normalised
(`normalize_reward`): how a learned reward is checked to transfer. The policy is then saved as a
layer learner folder (it may carry `learner.normalize_obs`, from the recipe's dataset).
`train_on_saved_reward` is that loop for algorithms whose recipes offer the same key (GAIL, AIRL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
import numpy as np

from algos.base import Algorithm, LogFn, register
from algos.online.learner_configs import LearnerConfig, SACConfig, learner_config
from algos.policies import load_sb3, write_policy_meta
from ildata.episode import DataError
from ildata.store import TrajectoryDataset

if TYPE_CHECKING:
    from algos.online.budget import StepBudget
    from algos.online.learners import Learner

MODEL_FILE = "model.zip"
POLICY_DIR = "policy"


@dataclass
class ExpertConfig:
    """How long, in how many envs, the learner, and (optionally) a learned reward to train on."""

    RENAMED: ClassVar[dict[str, str]] = {"algorithm": "learner", "hyperparams": "learner"}

    total_timesteps: int = 20_000  # env steps in all, an upper bound (the step counter checks it)
    n_envs: int = 1
    # `{algo: ppo | sac | trpo | dqn, ...}` with SB3's argument names (`rollout_steps` for n_steps)
    learner: LearnerConfig = field(default_factory=SACConfig)
    log_interval: int = 1000  # env steps between metric rows (SB3 reports more often)
    # Train on the reward saved in this run folder (or a sweep's configuration folder: each seed
    # takes its own seed's), not the env's.
    reward_from: str | None = field(default=None, metadata={"path": True})
    # How the reward of `reward_from` is paid: running statistics of it, updated every step.
    normalize_reward: Literal["standard", "scale", "off"] = "standard"

    def __post_init__(self) -> None:
        if isinstance(self.learner, Mapping):  # built in code from a mapping, not through a recipe
            self.learner = learner_config(self.learner)
        if self.total_timesteps < 1:
            raise DataError("total_timesteps: must be at least 1")
        if self.n_envs < 1:
            raise DataError("n_envs: must be at least 1")
        if self.log_interval < 1:
            raise DataError("log_interval: must be at least 1")


@register("rl")
class Expert(Algorithm):
    """Online RL in the recipe's env; no dataset."""

    Config = ExpertConfig
    needs_dataset = False
    config: ExpertConfig

    def __init__(self, config: ExpertConfig, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.model: Any = None  # the SB3 model
        self.learner: Learner | None = None  # with reward_from: saved as a layer learner folder

    def check_inputs(self, dataset: TrajectoryDataset | None, env_id: str | None) -> None:
        """The reward run is loaded and its spaces checked before training."""
        if self.config.reward_from is not None and self.observation_space is not None and self.action_space is not None:
            from algos.saved_reward import load_reward

            load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Train for at most `total_timesteps` env steps; log SB3's metrics with `env_steps`."""
        from algos.online.learners import make_learner
        from algos.online.normalizer import obs_statistics
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

        train_env: Any = venv
        stats = None
        if self.config.reward_from is not None:
            train_env = self._saved_reward_env(venv)
            stats = (
                obs_statistics(np.asarray(dataset.transitions().obs)) if dataset is not None and self.config.learner.normalize_obs else None
            )
        learner = make_learner(self.config.learner, train_env, seed=self.seed, log=forward, obs_stats=stats)
        budget = learner.plan(self.config.total_timesteps)
        learner.learn(self.config.total_timesteps)
        venv.close()
        self.model = learner.model
        self.policy = learner.policy
        if self.config.reward_from is not None:
            self.learner = learner
        return last

    def _saved_reward_env(self, venv: Any) -> Any:
        """`venv` paying the reward of `reward_from`, normalised; `self.reward` becomes that reward."""
        from algos.online.reward_wrapper import RewardVecEnvWrapper
        from algos.saved_reward import load_reward, normalized_reward

        assert self.config.reward_from is not None
        if self.observation_space is None or self.action_space is None:
            self.observation_space, self.action_space = venv.observation_space, venv.action_space
        self.reward = load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)
        return RewardVecEnvWrapper(venv, normalized_reward(self.reward, self.config.normalize_reward))

    def _save_state(self, run_dir: Path) -> None:
        """The SB3 zip under `policy/` (loaded back without unpickling, see `load_sb3`); with
        `reward_from`, a layer learner folder there."""
        if self.learner is not None:
            self.learner.save(run_dir / POLICY_DIR)
            return
        if self.model is None:
            raise RuntimeError("fit before save")
        policy_dir = run_dir / POLICY_DIR
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
        if self.config.reward_from is not None:
            from algos.online.learners import Learner
            from algos.saved_reward import load_reward

            self.learner = Learner.load(run_dir / POLICY_DIR)
            self.model, self.policy = self.learner.model, self.learner.policy
            if self.observation_space is not None and self.action_space is not None:
                self.reward = load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)
            return
        if self.env_id is None:
            raise DataError("an rl run folder needs the env it was trained in (env_id is null)", subject=run_dir)
        policy = load_sb3(run_dir / POLICY_DIR / MODEL_FILE, self.env_id)
        self.model, self.policy = policy.model, policy


def train_on_saved_reward(
    config: Any,
    learner_cfg: LearnerConfig,
    venv: Any,
    budget: StepBudget,
    reward: Any,
    *,
    seed: int,
    log: LogFn | None,
    dataset: TrajectoryDataset | None,
) -> tuple[Learner, dict[str, float]]:
    """A fresh learner trained from scratch on `reward`, paid normalised (`config.normalize_reward`),
    for `config.total_timesteps` env steps; every SB3 report is logged with `env_steps`. The
    learner's inputs take the demonstrations' statistics (`learner.normalize_obs`) from `dataset`."""
    from algos.online.learners import make_learner
    from algos.online.normalizer import obs_statistics
    from algos.online.reward_wrapper import RewardVecEnvWrapper
    from algos.saved_reward import normalized_reward

    last: dict[str, float] = {}

    def forward(step: int, metrics: dict[str, float]) -> None:
        last.update(metrics, env_steps=float(budget.used))
        if "rollout/ep_rew_mean" in metrics:
            last["episode_return_mean"] = metrics["rollout/ep_rew_mean"]
        if log is not None:
            log(int(budget.used), dict(last))

    stats = obs_statistics(np.asarray(dataset.transitions().obs)) if dataset is not None and learner_cfg.normalize_obs else None
    paid = RewardVecEnvWrapper(venv, normalized_reward(reward, config.normalize_reward))
    learner = make_learner(learner_cfg, paid, seed=seed, log=forward, obs_stats=stats)
    learner.learn(config.total_timesteps)
    budget.check()
    last["env_steps"] = float(budget.used)
    if log is not None and not last.get("episode_return_mean"):
        log(int(budget.used), dict(last))
    return learner, last
