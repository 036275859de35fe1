"""Density-based reward: the log density of the demonstrations' states (or state-actions, or
state-next-states) under scikit-learn's `KernelDensity`, as in imitation's density baseline.

Fitting is offline. The learned reward can then (a) train a PPO policy on the online layer
(`algos.online`: `make_vec_env`, `RewardVecEnvWrapper` replacing the env's reward, with each
transition's timestep for per-timestep models, and a layer learner), and (b) relabel a dataset's
rewards into a new dataset (`relabel`). Features are standardised with scikit-learn's
`StandardScaler` (kernel bandwidths then mean the same thing in every dimension); Discrete parts
are one-hot. A stationary model fits one KDE on every step; a per-timestep model fits one KDE per
step index t (steps past the longest demonstration use the last one).

Saved models hold the features the KDEs were fitted on (`density.npz`, no pickle) and are
refitted on load: fitting a KDE only stores its data, so the result is identical. PPO's settings
are the layer's `algos.online.learners.PPOConfig`, nested under `config.learner`; its budget is
`config.total_timesteps` env steps (an upper bound) in `config.n_envs` envs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from algos.base import Algorithm, LogFn, RewardFn, register
from algos.online.learners import PPOConfig
from algos.policies import load_sb3, write_policy_meta
from algos.sampler import obs_features, run_positions
from ildata.episode import DataError, Obs, map_obs
from ildata.store import TrajectoryDataset

MODEL_FILE = "model.zip"

FEATURES = ("state", "state_action", "state_state")


@dataclass
class DensityConfig:
    """Density reward settings; a recipe's `config:` section maps onto these fields one-to-one."""

    RENAMED: ClassVar[dict[str, str]] = {
        "ppo": "learner",  # ppo.total_timesteps and ppo.n_envs moved up: total_timesteps, n_envs
        "ppo_timesteps": "total_timesteps",
        "ppo_n_steps": "learner.rollout_steps",
        "ppo_batch_size": "learner.batch_size",
        "ppo_learning_rate": "learner.learning_rate",
        "ppo_gamma": "learner.gamma",
        "ppo_n_epochs": "learner.n_epochs",
        "ppo_ent_coef": "learner.ent_coef",
        "ppo_gae_lambda": "learner.gae_lambda",
        "ppo_n_envs": "n_envs",
        "ppo_normalize_reward": "learner.normalize_reward",
        "ppo_reward_margin": "reward_margin",
        "standardise": "normalize_obs",
    }

    features: str = "state"  # state | state_action | state_state (next state)
    stationary: bool = True  # False: one KDE per timestep
    kernel: str = "gaussian"  # any sklearn KernelDensity kernel
    bandwidth: float = 0.5  # in standardised units when `normalize_obs`
    normalize_obs: bool = True  # standardise the features (StandardScaler) before the KDEs
    max_samples: int = 20000  # transitions the KDEs keep (a uniform subsample beyond that)
    # PPO on the learned reward: at most total_timesteps env steps (0: learn the reward only).
    total_timesteps: int = 0
    n_envs: int = 1  # parallel envs; a rollout is learner.rollout_steps * n_envs env steps
    learner: PPOConfig = field(default_factory=PPOConfig)
    # Log densities of states far from the demonstrations reach -1e5 and below (a Gaussian KDE's
    # log density falls with the squared distance), and those states swamp PPO's value targets.
    # With a margin m (nats), PPO sees max(log p - floor, 0) / (median demo log p - floor) where
    # floor = lowest demonstration log density - m: 0 far from every demonstration, about 1 on
    # typical demonstration states. None: the raw log density (PPO collapsed with it on CartPole).
    reward_margin: float | None = 50.0

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise DataError(f"features: must be one of {', '.join(FEATURES)}, got {self.features!r}")
        kernels = ("gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine")
        if self.kernel not in kernels:
            raise DataError(f"kernel: must be one of {', '.join(kernels)}, got {self.kernel!r}")
        if not self.bandwidth > 0:
            raise DataError(f"bandwidth: must be positive, got {self.bandwidth}")
        if self.max_samples < 1:
            raise DataError(f"max_samples: must be at least 1, got {self.max_samples}")
        if self.reward_margin is not None and not self.reward_margin > 0:
            raise DataError(f"reward_margin: must be positive (or null), got {self.reward_margin}")
        if self.total_timesteps < 0:
            raise DataError(f"total_timesteps: must be >= 0, got {self.total_timesteps}")
        if self.n_envs < 1:
            raise DataError(f"n_envs: must be at least 1, got {self.n_envs}")


@register("density")
class DensityReward(Algorithm):
    """KDE log-density reward learned offline from demonstrations; optionally PPO on it."""

    Config = DensityConfig
    config: DensityConfig
    observation_space: gym.Space
    action_space: gym.Space

    def __init__(
        self, config: DensityConfig, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0
    ) -> None:
        if observation_space is None or action_space is None:
            raise DataError("the density reward needs the observation and action spaces")
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.samples: np.ndarray | None = None  # raw features the KDEs were fitted on
        self.sample_steps: np.ndarray | None = None  # their timesteps
        self.scaler: Any = None
        self.kdes: list[Any] = []
        self.ppo: Any = None  # the SB3 PPO model, when PPO ran

    # ---- features and the density model
    def features(self, obs: Obs, acts: np.ndarray | None = None, next_obs: Obs | None = None) -> np.ndarray:
        """Feature rows for a batch of transitions, as `config.features` asks."""
        parts = [obs_features(obs, self.observation_space)]
        if self.config.features == "state_action":
            if acts is None:
                raise DataError("the state_action density reward needs actions")
            parts.append(obs_features(np.asarray(acts), self.action_space))
        elif self.config.features == "state_state":
            if next_obs is None:
                raise DataError("the state_state density reward needs next observations")
            parts.append(obs_features(next_obs, self.observation_space))
        return np.concatenate(parts, axis=1).astype(np.float64)

    def _fit_density(self, samples: np.ndarray, steps: np.ndarray) -> None:
        from sklearn.neighbors import KernelDensity
        from sklearn.preprocessing import StandardScaler

        cfg = self.config
        self.samples, self.sample_steps = samples, steps
        self.scaler = StandardScaler().fit(samples) if cfg.normalize_obs else None
        x = self.scaler.transform(samples) if self.scaler is not None else samples
        groups = [np.ones(len(x), dtype=bool)] if cfg.stationary else [steps == t for t in range(int(steps.max()) + 1)]
        self.kdes = [KernelDensity(kernel=cfg.kernel, bandwidth=cfg.bandwidth).fit(x[g]) for g in groups]
        self.reward = self.log_density

    def log_density(
        self, obs: Obs, acts: np.ndarray | None = None, next_obs: Obs | None = None, *, t: np.ndarray | None = None
    ) -> np.ndarray:
        """The reward: log density of each transition's features (at its timestep `t` if per-timestep)."""
        if not self.kdes:
            raise RuntimeError("fit the density before asking for rewards")
        return self._score(self.features(obs, acts, next_obs), t)

    def _score(self, x: np.ndarray, t: np.ndarray | None) -> np.ndarray:
        """Log density of raw feature rows `x` (at timesteps `t` if per-timestep)."""
        if self.scaler is not None:
            x = self.scaler.transform(x)
        if len(self.kdes) == 1:
            return self.kdes[0].score_samples(x)
        if t is None:
            raise DataError("a per-timestep density reward needs the timestep of every transition")
        steps = np.minimum(np.broadcast_to(np.asarray(t), (x.shape[0],)), len(self.kdes) - 1)
        out = np.empty(x.shape[0])
        for step in np.unique(steps):  # one vectorised call per distinct timestep
            rows = steps == step
            out[rows] = self.kdes[step].score_samples(x[rows])
        return out

    # ---- training
    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Fit the KDE(s) on the dataset's transitions; then PPO on the reward if configured."""
        if dataset is None:
            raise DataError("the density reward learns from a dataset")
        cfg = self.config
        tr = dataset.transitions()
        steps = run_positions(dataset.lengths)
        rows = np.arange(len(tr))
        if len(rows) > cfg.max_samples:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(rows), cfg.max_samples, replace=False))
        sub = lambda o: map_obs(o, lambda leaf: np.asarray(leaf)[rows])  # noqa: E731
        self._fit_density(self.features(sub(tr.obs), tr.acts[rows], sub(tr.next_obs)), steps[rows])
        train_rewards = self.log_density(sub(tr.obs), tr.acts[rows], sub(tr.next_obs), t=steps[rows])
        metrics = {"demo_mean_log_density": float(train_rewards.mean()), "kde_samples": float(len(rows))}
        if log is not None:
            log(0, metrics)
        self.env_id = env_id or dataset.env_id
        if cfg.total_timesteps > 0:
            if self.env_id is None:
                raise DataError("PPO on the density reward needs an env (recipe `env`)")
            metrics.update(self.train_ppo(self.env_id, log=log))
        return metrics

    def ppo_reward_fn(self) -> RewardFn:
        """The reward PPO optimises: the log density, or its floored rescaling (`reward_margin`)."""
        margin = self.config.reward_margin
        if margin is None:
            return self.log_density
        if self.samples is None or self.sample_steps is None:
            raise RuntimeError("fit the density before asking for rewards")
        demo = self._score(self.samples, self.sample_steps)  # the demonstrations the KDEs hold
        floor = float(demo.min()) - margin
        scale = float(np.median(demo)) - floor

        def reward(obs: Obs, acts: np.ndarray | None = None, next_obs: Obs | None = None, *, t: Any = None) -> np.ndarray:
            return np.maximum(self.log_density(obs, acts, next_obs, t=t) - floor, 0.0) / scale

        return reward

    def train_ppo(self, env_id: str, *, log: LogFn | None = None) -> dict[str, float]:
        """PPO in `env_id` with the env's reward replaced by the learned one (the online layer).

        Logs, per rollout, the env's true return (Monitor), the learned reward PPO optimised and
        `env_steps` off the step counter, which never exceeds `total_timesteps`.
        """
        from stable_baselines3.common.callbacks import BaseCallback

        from algos.online.learners import make_learner
        from algos.online.reward_wrapper import RewardVecEnvWrapper
        from algos.online.vec_env import make_vec_env

        cfg = self.config
        density_reward = self.ppo_reward_fn()

        def reward(obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
            return density_reward(obs, acts, next_obs, t=t)

        venv = make_vec_env(env_id, cfg.n_envs, seed=self.seed)
        learner = make_learner(cfg.learner, RewardVecEnvWrapper(venv, reward, timesteps=not cfg.stationary), seed=self.seed)
        final: dict[str, float] = {}

        class Progress(BaseCallback):
            """Logs the env's true return (Monitor), the learned reward PPO optimised, env steps."""

            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                final["ppo_learned_reward_mean"] = float(learner.model.rollout_buffer.rewards.mean())  # type: ignore[attr-defined]
                if self.model.ep_info_buffer:
                    final["ppo_env_return_mean"] = float(np.mean([e["r"] for e in self.model.ep_info_buffer]))
                final["env_steps"] = float(venv.steps)
                if log is not None:
                    log(int(self.model.num_timesteps), dict(final))

        learner.learn(cfg.total_timesteps, callback=Progress())
        self.ppo = learner.model
        self.policy = learner.policy
        return final

    # ---- persistence
    def _save_state(self, run_dir: Path) -> None:
        """`density.npz` (the features the KDEs hold, their timesteps); `policy/` if PPO ran."""
        if self.samples is None or self.sample_steps is None:
            raise RuntimeError("fit before save")
        np.savez(run_dir / "density.npz", samples=self.samples, steps=self.sample_steps)
        if self.ppo is not None:
            policy_dir = run_dir / "policy"
            write_policy_meta(policy_dir, "sb3", self.observation_space, self.action_space, file=MODEL_FILE, env_id=self.env_id)
            self.ppo.save(policy_dir / MODEL_FILE)

    def _load_state(self, run_dir: Path) -> None:
        with np.load(run_dir / "density.npz", allow_pickle=False) as data:
            self._fit_density(data["samples"], data["steps"])
        if (run_dir / "policy" / MODEL_FILE).exists():
            if self.env_id is None:
                raise DataError("a saved PPO policy needs the env it was trained in (env_id is null)", subject=run_dir)
            policy = load_sb3(run_dir / "policy" / MODEL_FILE, self.env_id)
            self.ppo, self.policy = policy.model, policy


def relabel(
    dataset: TrajectoryDataset,
    reward_fn: RewardFn | Callable[..., np.ndarray],
    dst: str | Path,
    *,
    overwrite: bool = False,
    reward_name: str = "learned",
) -> TrajectoryDataset:
    """Write a NEW dataset: `dataset`'s episodes with rewards `reward_fn(obs, acts, next_obs, t=...)`.

    One vectorised call over all transitions; the source is never modified.
    """
    import ildata
    from ildata.store import Provenance

    if dataset.path is not None and Path(dst).resolve() == Path(dataset.path).resolve():
        raise DataError(f"{dst}: relabelling writes a new dataset; give a destination other than the source")
    tr = dataset.transitions()
    rewards = np.asarray(reward_fn(tr.obs, tr.acts, tr.next_obs, t=run_positions(dataset.lengths)), dtype=np.float64)
    if rewards.shape != (len(tr),):
        raise DataError(f"reward function returned shape {rewards.shape} for {len(tr)} transitions")
    batch = dataset.to_batch()
    batch.rews = rewards
    return ildata.save(
        batch,
        dst,
        observation_space=dataset.observation_space,
        action_space=dataset.action_space,
        env_id=dataset.env_id,
        overwrite=overwrite,
        provenance=Provenance(source_path=str(dataset.path), source_format="ildata-relabel"),
        extra_info={"relabelled": {"source_fingerprint": dataset.fingerprint, "reward": reward_name}},
    )
