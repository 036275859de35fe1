"""RL learners behind one small interface, for every online imitation algorithm.

    learner = make_learner(config, venv, seed=0, log=log)   # PPOConfig | SACConfig | TRPOConfig | DQNConfig
    learner.learn(n_env_steps)      # takes at most n env steps; returns how many it took
    learner.policy(obs_batch)       # an `algos.policies.SB3Policy` (deterministic)
    learner.save(directory); Learner.load(directory, venv)

Configs are the typed dataclasses of `algos.online.learner_configs` (re-exported here), which a
recipe's `learner:` mapping fits key for key, in SB3's words (`rollout_steps` for `n_steps`).
How many env steps in all and in how many parallel envs are the algorithm's settings
(`total_timesteps`, `n_envs`), not the learner's. `normalize_reward` (not an SB3 argument)
scales the rewards the learner sees by a running std of returns (SB3's `VecNormalize`; its
statistics are not saved). `normalize_obs` (not an SB3 argument either) puts a fixed
`(obs - mean) / std` layer in front of the policy and value nets (`FixedObsNorm`), its statistics
the demonstrations' (`make_learner(..., obs_stats=...)`) and saved with the weights. An
off-policy learner on a learned reward gets `make_learner(..., relabel=...)`: every replay batch
it samples is paid the current reward (`algos.online.replay`). Budget contract: SB3 rounds
`learn(total_timesteps)` *up* to whole units (an on-policy rollout of `rollout_steps * n_envs`
env steps; an off-policy collection of `train_freq * n_envs`), so `learn(n)` runs the largest
whole number of units that fits in n (`plan(n)` says how many steps that is; a budget below one
unit takes no step and warns).
Persistence is a JSON config plus torch state dicts (`torch.load(weights_only=True)`): no
pickle, unlike SB3 zips. The replay buffer is not saved.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import KVWriter
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from torch import nn

from algos.base import LogFn, quiet_import
from algos.online.learner_configs import (
    CONFIGS,
    DQNConfig,
    LearnerConfig,
    PPOConfig,
    SACConfig,
    TRPOConfig,
    learner_config,
)
from algos.online.normalizer import RunningNorm
from algos.online.replay import Relabel, RelabelledReplayBuffer
from algos.online.vec_env import base_env, make_vec_env
from algos.policies import POLICY_LOADERS, PolicyMeta, SB3Policy, write_policy_meta
from ildata.episode import DataError
from ildata.fsutil import atomic_output
from ildata.spaces import space_to_dict

__all__ = [
    "CONFIGS",
    "DQNConfig",
    "FixedObsNorm",
    "Learner",
    "LearnerConfig",
    "PPOConfig",
    "SACConfig",
    "TRPOConfig",
    "learner_config",
    "make_learner",
]

META_FILE = "learner.json"
POLICY_KIND = "sb3-learner"  # policy.json kind: `algos.policies.load_policy(learner_dir)` works
PARAMS_FILE = "parameters.pt"


class _LogWriter(KVWriter):
    """An SB3 logger output that hands every dump's numeric values to `log(step, metrics)`."""

    def __init__(self, log: LogFn) -> None:
        self.log = log

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        metrics = {k: float(v) for k, v in key_values.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        if metrics:
            self.log(int(step), metrics)

    def close(self) -> None:
        pass


class LogForwarder(BaseCallback):
    """SB3 callback: forward what SB3 logs (`rollout/ep_rew_mean`, `train/...`) to a `LogFn`.

    SB3 builds a fresh logger on every `learn()` call, so the writer is added at each start;
    what SB3 recorded after its last dump (PPO's last update, SAC's updates since the last
    finished episode) is dumped when `learn()` ends, so every call reports its final metrics.
    """

    def __init__(self, log: LogFn) -> None:
        super().__init__()
        self.writer = _LogWriter(log)

    def _on_training_start(self) -> None:
        if self.writer not in self.model.logger.output_formats:
            self.model.logger.output_formats.append(self.writer)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.model.logger.dump(self.model.num_timesteps)


class Learner:
    """One SB3 (or sb3-contrib) model training in a `make_vec_env` stack."""

    sb3_class: ClassVar[tuple[str, str]] = ("", "")  # (module, class)

    def __init__(
        self,
        config: LearnerConfig,
        venv: VecEnv,
        *,
        seed: int = 0,
        log: LogFn | None = None,
        obs_stats: tuple[np.ndarray, np.ndarray] | None = None,
        relabel: Relabel | None = None,
    ) -> None:
        self.config = config
        self.venv = venv
        self.seed = seed
        self.log = log
        kwargs = {k: v for k, v in asdict(config).items() if k not in ("algo", "net_arch", "normalize_reward", "normalize_obs")}
        if "rollout_steps" in kwargs:
            kwargs["n_steps"] = kwargs.pop("rollout_steps")
        policy_kwargs: dict[str, Any] = {}
        if config.net_arch is not None:
            policy_kwargs["net_arch"] = list(config.net_arch)
        if getattr(config, "use_sde", False) and not isinstance(venv.action_space, gym.spaces.Box):
            raise DataError(f"learner.use_sde: gSDE needs continuous (Box) actions, the env has {venv.action_space}")
        if config.normalize_obs:
            if obs_stats is None:
                raise DataError("learner.normalize_obs: this algorithm has no demonstrations to take the statistics from")
            if not isinstance(venv.observation_space, gym.spaces.Box):
                raise DataError(f"learner.normalize_obs: needs Box observations, got {venv.observation_space}")
            policy_kwargs["features_extractor_class"] = FixedObsNorm
        if policy_kwargs:
            kwargs["policy_kwargs"] = policy_kwargs
        if relabel is not None:  # off-policy on a learned reward: every sampled batch relabelled
            if not isinstance(config, (SACConfig, DQNConfig)):
                raise DataError(f"learner.algo: {config.algo} keeps no replay buffer to relabel")
            kwargs.update(replay_buffer_class=RelabelledReplayBuffer, replay_buffer_kwargs={"relabel": relabel})
        module, name = self.sb3_class
        policy = "MultiInputPolicy" if isinstance(venv.observation_space, gym.spaces.Dict) else "MlpPolicy"
        if config.normalize_reward:  # the learner sees scaled rewards; the stack below is unchanged
            venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=config.gamma)
        self.model: BaseAlgorithm = getattr(quiet_import(module), name)(policy, venv, seed=seed, device="cpu", verbose=0, **kwargs)
        if obs_stats is not None and config.normalize_obs:
            for norm in (m for m in self.model.policy.modules() if isinstance(m, FixedObsNorm)):  # SAC: actor, critics, targets
                norm.set_statistics(*obs_stats)

    @property
    def unit(self) -> int:
        """Env steps SB3 takes as one indivisible piece of `learn()`."""
        per_env = self.config.rollout_steps if isinstance(self.config, (PPOConfig, TRPOConfig)) else self.config.train_freq
        return per_env * self.venv.num_envs

    def plan(self, n_env_steps: int) -> int:
        """The env steps `learn(n_env_steps)` will take: the largest whole number of units <= n."""
        return (max(n_env_steps, 0) // self.unit) * self.unit

    def learn(self, n_env_steps: int, *, callback: BaseCallback | None = None) -> int:
        """Train for at most `n_env_steps` env steps (see `plan`); return the steps taken.

        `callback`: an extra SB3 callback (an algorithm's own progress metrics)."""
        steps = self.plan(n_env_steps)
        if steps == 0:
            warnings.warn(
                f"learn({n_env_steps}): budget below one unit of {self.unit} env steps "
                f"({type(self.config).__name__}, {self.venv.num_envs} envs); no step taken",
                stacklevel=2,
            )
            return 0
        counter = base_env(self.venv)
        before = counter.steps
        callbacks: list[BaseCallback] = [c for c in (LogForwarder(self.log) if self.log is not None else None, callback) if c is not None]
        self.model.learn(
            total_timesteps=steps, callback=CallbackList(callbacks), reset_num_timesteps=False, log_interval=1, progress_bar=False
        )
        return counter.steps - before

    @property
    def policy(self) -> SB3Policy:
        """The current policy as an obs -> action callable (deterministic actions)."""
        return SB3Policy(self.model, deterministic=True)

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    # ---- persistence
    def _variables(self) -> dict[str, torch.Tensor]:
        """Tensors SB3 saves beside the state dicts (SAC's `log_ent_coef`), by attribute name."""
        _, names = self.model._get_torch_save_params()
        return {name: getattr(self.model, name) for name in names}

    def save(self, directory: str | Path, *, overwrite: bool = False) -> None:
        """`learner.json` (config, env, spaces, timesteps), `parameters.pt` (policy and optimisers)
        and `policy.json`, so `algos.policies.load_policy(directory)` loads the policy."""
        venv = base_env(self.venv)
        meta = {
            "config": asdict(self.config),
            "seed": self.seed,
            "env_id": venv.env_id,
            "num_timesteps": self.num_timesteps,
            "observation_space": space_to_dict(self.venv.observation_space),
            "action_space": space_to_dict(self.venv.action_space),
        }
        with atomic_output(directory, overwrite=overwrite) as tmp:
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
            torch.save({"state_dicts": self.model.get_parameters(), "variables": self._variables()}, tmp / PARAMS_FILE)
            write_policy_meta(tmp, POLICY_KIND, self.venv.observation_space, self.venv.action_space, env_id=venv.env_id)

    @staticmethod
    def load(directory: str | Path, venv: VecEnv | None = None, *, log: LogFn | None = None, relabel: Relabel | None = None) -> Learner:
        """Rebuild a saved learner in `venv` (default: one env of the saved env id); `relabel` as in `make_learner`."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / META_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise DataError(f"{directory}: not a saved learner ({exc})") from None
        saved_config = dict(meta["config"])
        if "obs_norm" in saved_config:  # a learner saved before the key was renamed
            saved_config["normalize_obs"] = saved_config.pop("obs_norm")
        config = learner_config(saved_config)
        if venv is None:
            venv = make_vec_env(meta["env_id"], 1, seed=int(meta["seed"]))
        dim = int(np.prod(venv.observation_space.shape or ()))
        placeholder = (np.zeros(dim), np.ones(dim)) if config.normalize_obs else None  # the saved statistics replace it
        learner = make_learner(config, venv, seed=int(meta["seed"]), log=log, obs_stats=placeholder, relabel=relabel)
        saved = torch.load(directory / PARAMS_FILE, weights_only=True)
        learner.model.set_parameters(saved["state_dicts"], exact_match=True, device="cpu")
        with torch.no_grad():
            for name, tensor in learner._variables().items():  # SAC's entropy coefficient
                tensor.copy_(saved["variables"][name])
        learner.model.num_timesteps = int(meta["num_timesteps"])
        return learner


class PPOLearner(Learner):
    sb3_class = ("stable_baselines3", "PPO")


class SACLearner(Learner):
    sb3_class = ("stable_baselines3", "SAC")


class TRPOLearner(Learner):
    sb3_class = ("sb3_contrib", "TRPO")


class DQNLearner(Learner):
    sb3_class = ("stable_baselines3", "DQN")


LEARNERS: dict[str, type[Learner]] = {"ppo": PPOLearner, "sac": SACLearner, "trpo": TRPOLearner, "dqn": DQNLearner}


def make_learner(
    config: LearnerConfig,
    venv: VecEnv,
    *,
    seed: int = 0,
    log: LogFn | None = None,
    obs_stats: tuple[np.ndarray, np.ndarray] | None = None,
    relabel: Relabel | None = None,
) -> Learner:
    """The learner for `config.algo`, training in `venv` (a `make_vec_env` stack); `obs_stats`
    (mean, std) for `config.normalize_obs`; `relabel` (off-policy learners): the rewards of every
    replay batch sampled, from the current learned reward (`algos.online.replay`)."""
    return LEARNERS[config.algo](config, venv, seed=seed, log=log, obs_stats=obs_stats, relabel=relabel)


class FixedObsNorm(BaseFeaturesExtractor):
    """SB3's features-extractor slot for the shared `RunningNorm` in its fixed mode: flatten, then
    `(obs - mean) / std` with the demonstrations' statistics, set once and saved with the weights.

    It exists because SB3 builds a policy's input layer only from a `BaseFeaturesExtractor`
    class. SB3's `VecNormalize` keeps running statistics in the env stack instead, which a saved
    policy would lose and which drift with the learner's own states. Without it, MountainCar's
    velocity (|v| < 0.07) reaches PPO's net at a hundredth of the position's scale."""

    def __init__(self, observation_space: gym.spaces.Box) -> None:
        dim = int(np.prod(observation_space.shape))
        super().__init__(observation_space, dim)
        self.norm = RunningNorm(dim, eps=0.0)
        self.norm.set_statistics(np.zeros(dim), np.ones(dim))
        self.register_load_state_dict_pre_hook(_rename_old_obs_norm_keys)

    @property
    def mean(self) -> torch.Tensor:
        return self.norm.mean

    @property
    def std(self) -> torch.Tensor:
        return self.norm.std

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.norm.set_statistics(mean, std)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.norm(observations.flatten(1))


def _rename_old_obs_norm_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Learners saved while `FixedObsNorm` held `mean`/`std` buffers of its own still load."""
    if prefix + "std" in state_dict:
        std = state_dict.pop(prefix + "std")
        state_dict[prefix + "norm.mean"] = state_dict.pop(prefix + "mean")
        state_dict[prefix + "norm.var"] = std * std
        state_dict[prefix + "norm.count"] = torch.ones((), dtype=torch.float64)


@POLICY_LOADERS.register(POLICY_KIND)
def load_learner_policy(policy_dir: Path, meta: PolicyMeta) -> SB3Policy:
    """The deterministic policy of a learner folder `Learner.save` wrote."""
    return Learner.load(policy_dir).policy
