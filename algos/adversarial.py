"""The one adversarial imitation trainer GAIL (`algos.gail`) and AIRL (`algos.airl`) stand on.

A discriminator learns to tell expert transitions (from any ildata dataset) from the learner's
own, and the learner (PPO, TRPO or SAC from `algos.online.learners`) trains on a reward made
from its logit, through the online layer: `make_vec_env` (seeded episodes, the step counter
every budget is checked against) and `RewardVecEnvWrapper` (one batched reward call per vector
step; the env's own reward stays in `info["env_reward"]`). Subclasses say only what differs:
the net (`build_net`), the discriminator logit (`disc_logits`) and the reward the learner sees
(`policy_reward`), and the reward kept after training (`reward_test`).

Rounds (on-policy learners; one round is `gen_steps_per_round` env steps, whole rollouts):
- `round_order: disc_first` (imitation PR #731): collect -> train the discriminator on the
  round's transitions -> relabel the collected rewards with it -> the learner's update.
- `round_order: learner_first` (imitation 1.0.1): collect -> learner update on the rewards of
  the discriminator as it was -> train the discriminator.
Off-policy (SAC, DAC-style): the discriminator trains every round on replay samples vs demos,
and every replay batch the learner samples is relabelled with the current discriminator.

Horizons (ONLINE-NOTES, "Survival bias"): variable-horizon demonstrations or a learner episode
that terminates raise `VariableHorizonError` unless `allow_variable_horizon: true` or
`absorbing: true` (DAC's fix: demonstration and learner episodes continue to the env's horizon
in a flagged absorbing state the discriminator sees; the learner is paid the discounted reward
of the absorbing steps it enters by terminating).

Reward normalisation (`reward_normalization`) is applied to the reward the learner sees (imitation
1.0.1's GAIL path bypassed its normaliser): running statistics of the learner's raw rewards,
updated once per round, frozen in between, saved with the run. A fresh learner on a saved reward
(`reward_from`) is paid it normalised the same way (running statistics, updated every step). The discriminator's *input*
normaliser (`disc_input_norm`) holds the demonstrations' statistics by default: running statistics
of the learner's own states (which drift without bound on seals/CartPole once the pole falls)
squeeze every expert state into one point and made GAIL collapse (RESULTS-adversarial.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
import numpy as np

from algos.base import Algorithm, LogFn, seed_everything
from ildata.episode import DataError, Obs
from ildata.horizon import VariableHorizonError, check_fixed_horizon
from ildata.store import TrajectoryDataset

if TYPE_CHECKING:
    import torch

    from algos.online.learners import Learner
    from algos.online.reward_nets import RewardNet, RunningNorm

STATE_FILE = "adversarial.json"
REWARD_DIR = "reward_net"
POLICY_DIR = "policy"


def default_learner() -> dict[str, Any]:
    # Tuned on seals/CartPole-v0 (benchmarks/RESULTS-adversarial.md; ONLINE-NOTES' PPO settings).
    return {"algo": "ppo", "rollout_steps": 256, "batch_size": 256, "n_epochs": 10, "learning_rate": 5e-4, "gamma": 0.97, "ent_coef": 0.0}


@dataclass
class AdversarialConfig:
    """Settings shared by GAIL and AIRL; a recipe's `config:` maps onto the subclass one-to-one."""

    total_timesteps: int = 200_000  # env steps in all: an upper bound, checked on the step counter
    n_envs: int = 8
    # Env steps per round; a whole number of learner units (rollouts); None: one rollout.
    gen_steps_per_round: int | None = None
    disc_updates_per_round: int = 8
    demo_batch_size: int = 256  # expert transitions per discriminator update (as many learner ones)
    disc_learning_rate: float = 1e-3
    disc_weight_decay: float = 0.0
    disc_hidden: list[int] = field(default_factory=lambda: [32, 32])
    gradient_penalty: float = 0.0  # coefficient of a WGAN-GP-style penalty (DAC); 0: off
    round_order: Literal["disc_first", "learner_first"] = "disc_first"
    reward_normalization: Literal["standard", "scale", "off"] = "standard"
    # The discriminator's input normaliser: the demonstrations' statistics, frozen ("expert"), or
    # running statistics of every batch it trains on ("running": the learner's drifting states,
    # e.g. a CartPole cart pushed one way for 500 steps, inflate the scale until expert states
    # all look alike; RESULTS-adversarial.md, GAIL seed 2).
    disc_input_norm: Literal["expert", "running"] = "expert"
    # With disc_input_norm expert: clip the net's state inputs to the demonstrations' mean +- this
    # many stds (None: no clip), so states far from any demonstration (a fallen pole, a cart
    # hundreds of metres away) do not reach an unbounded extrapolation of the net (AIRL's f).
    disc_input_clip: float | None = None
    allow_variable_horizon: bool = False
    absorbing: bool = False  # DAC's absorbing-state fix for terminating envs / demonstrations
    bc_warm_start_steps: int = 0  # gradient steps of BC on the demonstrations before training; 0: off
    # Train a fresh learner on the saved reward of this run folder (a gail/airl run), no adversary.
    # A sweep's configuration folder (`ildata sweep ... --out DIR`: DIR/<config>/) works too: each
    # seed takes the reward its own seed learned (`seed-<n>/`).
    reward_from: str | None = field(default=None, metadata={"path": True})
    # `{algo: ppo | trpo | sac, ...}` in SB3's words (`rollout_steps` for n_steps), see algos.online.learners
    learner: dict[str, Any] = field(default_factory=default_learner)

    def __post_init__(self) -> None:
        from algos.online.learners import learner_config

        for name in ("total_timesteps", "n_envs", "disc_updates_per_round", "demo_batch_size"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.gen_steps_per_round is not None and self.gen_steps_per_round < 1:
            raise DataError(f"gen_steps_per_round: must be at least 1, got {self.gen_steps_per_round}")
        if self.bc_warm_start_steps < 0:
            raise DataError("bc_warm_start_steps: must be >= 0")
        if not self.disc_learning_rate > 0:
            raise DataError("disc_learning_rate: must be positive")
        if self.gradient_penalty < 0:
            raise DataError("gradient_penalty: must be >= 0")
        self.disc_hidden = list(self.disc_hidden)
        cfg = learner_config(self.learner)  # checked now, before anything trains
        if cfg.normalize_reward:
            raise DataError("learner.normalize_reward: the rewards are relabelled; use config.reward_normalization instead")
        if self.absorbing and cfg.algo == "sac":
            raise DataError("absorbing: implemented for on-policy learners (ppo, trpo); use learner.algo: ppo")


class RunningMoments:
    """Mean and variance of every value seen (Chan's parallel merge); a numpy scalar normaliser."""

    def __init__(self, mean: float = 0.0, var: float = 1.0, count: float = 0.0) -> None:
        self.mean, self.var, self.count = mean, var, count

    def update(self, x: np.ndarray) -> None:
        n = x.size
        if n == 0:
            return
        total = self.count + n
        delta = float(x.mean()) - self.mean
        self.var = (self.var * self.count + float(x.var()) * n + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    def apply(self, x: np.ndarray, mode: str) -> np.ndarray:
        if mode == "off" or self.count == 0:
            return x
        std = np.sqrt(self.var) + 1e-8
        return (x - self.mean) / std if mode == "standard" else x / std


@dataclass
class TransitionBatch:
    """Numpy transitions: raw observations/actions (for the policy's log-probabilities) and the
    discriminator's features. `weights` (None: 1 each) count how many absorbing rows a row stands for."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    absorbing: np.ndarray  # 1 on absorbing -> absorbing rows
    next_absorbing: np.ndarray  # 1 where the next state is the absorbing one (a termination, fix on)
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    def take(self, rows: np.ndarray) -> TransitionBatch:
        return TransitionBatch(
            self.obs[rows], self.acts[rows], self.next_obs[rows], self.terminated[rows], self.absorbing[rows], self.next_absorbing[rows]
        )


def concat(batches: list[TransitionBatch]) -> TransitionBatch:
    keys = ("obs", "acts", "next_obs", "terminated", "absorbing", "next_absorbing")
    parts = {k: np.concatenate([getattr(b, k) for b in batches]) for k in keys}
    if any(b.weights is not None for b in batches):
        parts["weights"] = np.concatenate([b.weights if b.weights is not None else np.ones(len(b)) for b in batches])
    return TransitionBatch(**parts)


class AdversarialTrainer(Algorithm):
    """Shared trainer; subclasses: `build_net`, `disc_logits`, `policy_reward`, `reward_test`."""

    config: AdversarialConfig
    observation_space: gym.Space
    action_space: gym.Space
    uses_log_prob: ClassVar[bool] = False  # AIRL's discriminator needs log pi(a|s)

    def __init__(self, config: Any, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        if observation_space is None or action_space is None:
            raise DataError("adversarial imitation needs the observation and action spaces")
        if not isinstance(observation_space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise DataError(f"adversarial imitation supports Box or Discrete observations, not {type(observation_space).__name__}")
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        from algos.online.learners import learner_config

        self.learner_cfg = learner_config(config.learner)
        self.net: RewardNet = self._seeded_net()
        self.moments = RunningMoments()
        self.learner: Learner | None = None
        self.horizon: int | None = None  # the env's horizon (absorbing fix)
        self.rng = np.random.default_rng(seed)
        self.state_bounds: tuple[list[float], list[float]] | None = None  # disc_input_clip's box
        self.reward = self.saved_reward

    def _seeded_net(self) -> RewardNet:
        """The discriminator, initialised from `seed` alone (not from whatever ran before in the process)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self.build_net(self._disc_obs_space(), self.action_space)

    # ------------------------------------------------------------------ what subclasses define
    def build_net(self, observation_space: gym.Space, action_space: gym.Space) -> RewardNet:
        raise NotImplementedError

    def disc_logits(self, feats: tuple[torch.Tensor, ...], log_pi: torch.Tensor | None) -> torch.Tensor:
        """Logit of 'expert' for encoded transitions (state, action, next_state, terminated)."""
        raise NotImplementedError

    def policy_reward(self, raw: np.ndarray, log_pi: np.ndarray | None) -> np.ndarray:
        """The learner's reward from the net's output on its transitions (before normalisation)."""
        raise NotImplementedError

    def reward_test(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The reward kept after training (relabelling, training a fresh learner)."""
        raise NotImplementedError

    @property
    def reward_uses_log_prob(self) -> bool:
        """Whether the learner's reward (not only the discriminator) needs log pi: a policy forward
        pass on every env step, skipped when it does not."""
        return self.uses_log_prob

    # ------------------------------------------------------------------ features
    def _disc_obs_space(self) -> gym.Space:
        """The net's observation space: the env's, or its features plus an absorbing flag."""
        if not self.config.absorbing:
            return self.observation_space
        from algos.sampler import feature_dim

        dim = feature_dim(self.observation_space) + 1
        return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def _net_obs(self, obs: np.ndarray, absorbing: np.ndarray) -> np.ndarray:
        """What the net takes as observations: `obs` as is, or features + flag (absorbing rows zeroed)."""
        if not self.config.absorbing:
            return obs
        from algos.sampler import obs_features

        feats = obs_features(obs, self.observation_space) * (1 - absorbing[:, None])
        return np.concatenate([feats, absorbing[:, None]], axis=1).astype(np.float32)

    def encode(self, batch: TransitionBatch) -> tuple[torch.Tensor, ...]:
        import torch

        state, action, next_state, terminated = self.net.encode(
            self._net_obs(batch.obs, batch.absorbing),
            batch.acts,
            self._net_obs(batch.next_obs, np.maximum(batch.absorbing, batch.next_absorbing)),
            batch.terminated,
        )
        action = action * torch.from_numpy(1 - batch.absorbing[:, None].astype(np.float32))  # DAC: no action when absorbing
        if self.state_bounds is not None:
            low, high = (torch.tensor(b) for b in self.state_bounds)
            state, next_state = torch.clamp(state, low, high), torch.clamp(next_state, low, high)
        return state, action, next_state, terminated

    def log_prob(self, batch: TransitionBatch) -> np.ndarray | None:
        """log pi(a|s) of the current learner (0 on absorbing rows); None unless the discriminator uses it."""
        if not self.uses_log_prob or self.learner is None:
            return None
        import torch

        with torch.no_grad():
            log_pi = self.policy_log_prob(batch.obs, batch.acts)
        return log_pi.numpy().reshape(-1) * (1 - batch.absorbing)

    def policy_log_prob(self, obs: np.ndarray, acts: np.ndarray) -> torch.Tensor:
        """log pi(a|s) of the learner's policy for env-unit actions, differentiable: PPO/TRPO's
        `evaluate_actions`; SAC's squashed Gaussian on the action scaled to [-1, 1] (tanh-corrected)."""
        import torch

        assert self.learner is not None
        policy = self.learner.model.policy
        obs_t, _ = policy.obs_to_tensor(obs)
        if self.learner_cfg.algo == "sac":
            scaled = np.clip(policy.scale_action(acts), -1 + 1e-6, 1 - 1e-6)
            mean, log_std, kwargs = policy.actor.get_action_dist_params(obs_t)  # type: ignore[union-attr,operator]
            dist = policy.actor.action_dist.proba_distribution(mean, log_std, **kwargs)  # type: ignore[union-attr,operator]
            return dist.log_prob(torch.as_tensor(scaled, dtype=torch.float32))
        _, log_pi, _ = policy.evaluate_actions(obs_t, torch.as_tensor(acts))  # type: ignore[operator]
        return log_pi

    def raw_output(self, batch: TransitionBatch) -> np.ndarray:
        """The net's output (GAIL: the logit; AIRL: f) on numpy transitions, through its numpy path."""
        state, action, next_state, terminated = (t.numpy() for t in self.encode(batch))
        compiled = self.net._compiled()
        if compiled is None:
            raise RuntimeError("the reward net must live on the CPU")
        return self.net._numpy_forward(compiled, state, action, next_state, terminated)

    def learner_rewards(self, batch: TransitionBatch, t: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw, seen): the learner's reward before normalisation and the one it is paid."""
        raw = self.policy_reward(self.raw_output(batch), self.log_prob(batch) if self.reward_uses_log_prob else None)
        seen = self.moments.apply(raw, self.config.reward_normalization)
        if self.config.absorbing and t is not None and batch.next_absorbing.any():
            seen = seen + self._absorbing_bonus(t) * batch.next_absorbing
        return raw, seen

    def _absorbing_bonus(self, t: np.ndarray) -> np.ndarray:
        """Discounted reward of the absorbing steps left to the horizon after terminating at step t."""
        assert self.horizon is not None
        n = len(t)
        absorbing_row = TransitionBatch(
            np.zeros((1, *(self.observation_space.shape or ())), self.observation_space.dtype),
            np.zeros((1, *(self.action_space.shape or ())), self.action_space.dtype),
            np.zeros((1, *(self.observation_space.shape or ())), self.observation_space.dtype),
            np.zeros(1),
            np.ones(1),
            np.ones(1),
        )
        r_abs = float(
            self.moments.apply(self.policy_reward(self.raw_output(absorbing_row), np.zeros(1)), self.config.reward_normalization)[0]
        )
        gamma = self.learner_cfg.gamma
        left = np.maximum(self.horizon - np.asarray(t).reshape(n) - 1, 0)
        return r_abs * gamma * (1 - gamma**left) / (1 - gamma)

    # ------------------------------------------------------------------ demonstrations
    def demonstrations(self, dataset: TrajectoryDataset) -> TransitionBatch:
        """Expert transitions; with the absorbing fix, one weighted absorbing row for all padding."""
        tr = dataset.transitions()
        obs, next_obs = np.asarray(tr.obs), np.asarray(tr.next_obs)
        n = len(tr)
        terminated = np.asarray(tr.terminated, dtype=np.float32)
        zeros = np.zeros(n, dtype=np.float32)
        if not self.config.absorbing:
            return TransitionBatch(obs, np.asarray(tr.acts), next_obs, terminated, zeros, zeros)
        demos = TransitionBatch(obs, np.asarray(tr.acts), next_obs, np.zeros(n, np.float32), zeros, terminated.copy())
        assert self.horizon is not None
        pad = int(np.maximum(self.horizon - dataset.lengths, 0)[np.asarray(dataset.episode_column("terminated"), dtype=bool)].sum())
        if pad == 0:
            return demos
        absorbing = TransitionBatch(
            obs[:1] * 0, np.asarray(tr.acts)[:1] * 0, obs[:1] * 0, np.zeros(1), np.ones(1), np.ones(1), np.array([float(pad)])
        )
        return concat([demos, absorbing])

    def check_horizons(self, dataset: TrajectoryDataset) -> None:
        """VariableHorizonError for variable-horizon demonstrations unless the recipe chose."""
        cfg = self.config
        if cfg.allow_variable_horizon or cfg.absorbing:
            return
        try:
            check_fixed_horizon(dataset.lengths, what=type(self).__name__)
        except VariableHorizonError as exc:
            raise VariableHorizonError(f"config.allow_variable_horizon: demonstrations have a {exc} {_HORIZON_FIX}") from None
        if np.asarray(dataset.episode_column("terminated"), dtype=bool).any():
            raise VariableHorizonError(f"config.allow_variable_horizon: demonstrations end by termination. {_HORIZON_FIX}")

    def check_inputs(self, dataset: TrajectoryDataset | None, env_id: str | None) -> None:
        """Before training: the reward run to load, demonstrations' horizons, and the env's (a probe)."""
        cfg = self.config
        if cfg.reward_from is not None:
            load_reward(cfg.reward_from, self.observation_space, self.action_space, seed=self.seed)
            return
        if dataset is None:
            raise DataError("dataset: adversarial imitation learns from demonstrations")
        if self.uses_log_prob and not isinstance(self.action_space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise DataError("dataset: AIRL needs Discrete or Box actions")
        self.check_horizons(dataset)
        if env_id is not None and not (cfg.allow_variable_horizon or cfg.absorbing) and env_terminates(env_id, self.seed):
            raise VariableHorizonError(f"env: {env_id} terminates episodes (a variable horizon). {_HORIZON_FIX}")

    # ------------------------------------------------------------------ training
    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Adversarial training for at most `total_timesteps` env steps (or a fresh learner on `reward_from`)."""
        from algos.online.budget import StepBudget
        from algos.online.learners import make_learner
        from algos.online.reward_wrapper import RewardVecEnvWrapper
        from algos.online.vec_env import make_vec_env

        cfg = self.config
        self.env_id = env_id or (dataset.env_id if dataset is not None else None) or self.env_id
        if self.env_id is None:
            raise DataError("env: adversarial imitation trains in an env")
        # The same metrics for the same seed whatever ran before: SB3 and the gradient penalty draw
        # from the global RNGs, and the sampler's generator restarts from the seed.
        seed_everything(self.seed)
        self.rng = np.random.default_rng(self.seed)
        venv = make_vec_env(self.env_id, cfg.n_envs, seed=self.seed)
        budget = StepBudget(venv, cfg.total_timesteps)
        if cfg.reward_from is not None:
            return self._fit_reward_from(venv, budget, log, dataset)
        if dataset is None:
            raise DataError("dataset: adversarial imitation learns from demonstrations")
        self.check_horizons(dataset)
        spec = gym.spec(self.env_id)
        self.horizon = spec.max_episode_steps or int(dataset.lengths.max())
        self.demos = self.demonstrations(dataset)
        if cfg.disc_input_norm == "expert":
            self._fit_input_norms(self.demos)
        self.pending: list[TransitionBatch] = []  # the round's learner transitions so far
        self.pending_t: list[np.ndarray] = []
        self.pending_rewards: list[np.ndarray] = []
        wrapped = RewardVecEnvWrapper(venv, self._wrapper_reward, timesteps=True)
        real = self.demos.obs[self.demos.absorbing == 0] if self.learner_cfg.obs_norm else None
        self.learner = make_learner(self.learner_cfg, wrapped, seed=self.seed, obs_stats=None if real is None else obs_statistics(real))
        self.optimizer = self._make_optimizer()
        metrics: dict[str, float] = {"env_steps": 0.0}
        if cfg.bc_warm_start_steps:
            metrics.update(self.bc_warm_start())
        self.policy = self.learner.policy
        if self.learner.unit > cfg.total_timesteps:  # not one rollout fits the budget
            if log is not None:
                log(0, metrics)
            return metrics
        default_round = self.learner.unit if self.learner_cfg.algo != "sac" else -(-1000 // self.learner.unit) * self.learner.unit
        per_round = cfg.gen_steps_per_round or default_round
        if per_round % self.learner.unit:
            raise DataError(f"gen_steps_per_round: must be a multiple of {self.learner.unit} (learner.rollout_steps x n_envs)")
        self.rollouts_per_round = per_round // self.learner.unit
        if log is not None:
            log(0, dict(metrics))
        self.venv, self.budget, self.log_fn, self.last = venv, budget, log, metrics
        if self.learner_cfg.algo == "sac":
            self._patch_replay_buffer()
        self.learner.learn(cfg.total_timesteps, callback=_RoundCallback(self))
        if self.learner_cfg.algo != "sac" and cfg.round_order == "learner_first" and self.pending:
            self.train_disc(concat(self.pending))
        budget.check()  # never more env steps than total_timesteps
        self.policy = self.learner.policy
        self.last["env_steps"] = float(budget.used)
        return dict(self.last)

    def _wrapper_reward(self, obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The reward wrapper's call: record the transitions, pay the learner."""
        cfg = self.config
        term = np.asarray(terminated, dtype=np.float32)
        if term.any() and not (cfg.allow_variable_horizon or cfg.absorbing):
            raise VariableHorizonError(f"config.allow_variable_horizon: a learner episode in {self.env_id} terminated. {_HORIZON_FIX}")
        zeros = np.zeros(len(term), np.float32)
        if cfg.absorbing:
            batch = TransitionBatch(np.array(obs), np.array(acts), np.array(next_obs), zeros, zeros, term)
        else:
            batch = TransitionBatch(np.array(obs), np.array(acts), np.array(next_obs), term, zeros, zeros)
        _, seen = self.learner_rewards(batch, t)
        self.pending.append(batch)
        self.pending_t.append(np.asarray(t))
        self.pending_rewards.append(seen)
        return seen

    def learner_pool(self) -> TransitionBatch:
        """The round's learner transitions; with the fix, plus their absorbing rows (weighted)."""
        batch = concat(self.pending)
        if not self.config.absorbing or not batch.next_absorbing.any():
            return batch
        assert self.horizon is not None
        t = np.concatenate(self.pending_t)
        pad = float(np.maximum(self.horizon - t - 1, 0)[batch.next_absorbing > 0].sum())
        if pad == 0:
            return batch
        absorbing = TransitionBatch(
            batch.obs[:1] * 0, batch.acts[:1] * 0, batch.obs[:1] * 0, np.zeros(1), np.ones(1), np.ones(1), np.array([pad])
        )
        return concat([batch, absorbing])

    def end_round(self, rollout_buffer: Any = None, last_values: Any = None, dones: Any = None) -> None:
        """Train the discriminator on the round; with a rollout buffer, relabel it (disc_first)."""
        pool = self.learner_pool()
        self.train_disc(pool)
        if rollout_buffer is not None:
            n_steps = rollout_buffer.buffer_size
            batch, t = concat(self.pending[-n_steps:]), np.concatenate(self.pending_t[-n_steps:])
            _, seen = self.learner_rewards(batch, t)
            old = np.concatenate(self.pending_rewards[-n_steps:])
            rollout_buffer.rewards += (seen - old).reshape(rollout_buffer.rewards.shape)
            rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        self.pending, self.pending_t, self.pending_rewards = [], [], []

    def _input_norms(self) -> list[RunningNorm]:
        from algos.online.reward_nets import RunningNorm

        return [m for m in self.net.modules() if isinstance(m, RunningNorm)]

    def _fit_input_norms(self, demos: TransitionBatch, min_var: float = 1e-4) -> None:
        """Set the net's input normalisers to the demonstrations' statistics (one forward pass with
        only the normalisers in training mode), variances floored so a feature constant in the
        demonstrations does not blow up."""
        import torch

        norms = self._input_norms()
        self.net.eval()
        self.state_bounds = None
        with torch.no_grad():
            if self.config.disc_input_clip is not None:
                state = self.encode(demos)[0]
                mean, std = state.mean(0), state.std(0).clamp(min=min_var**0.5)
                k = self.config.disc_input_clip
                self.state_bounds = ((mean - k * std).tolist(), (mean + k * std).tolist())
            for norm in norms:
                norm.mean.zero_()
                norm.var.fill_(1.0)
                norm.count.zero_()
                norm.train()
            self.net(*self.encode(demos))
            for norm in norms:
                norm.eval()
                norm.var.clamp_(min=min_var)
                norm.frozen = True  # the demonstrations' statistics all run

    def _make_optimizer(self) -> torch.optim.Optimizer:
        import torch

        cfg = self.config
        return torch.optim.Adam(self.net.parameters(), lr=cfg.disc_learning_rate, weight_decay=cfg.disc_weight_decay)

    def _sample(self, pool: TransitionBatch, n: int) -> TransitionBatch:
        if pool.weights is None:
            return pool.take(self.rng.integers(0, len(pool), n))
        p = pool.weights / pool.weights.sum()
        return pool.take(self.rng.choice(len(pool), n, p=p))

    def train_disc(self, gen_pool: TransitionBatch) -> dict[str, float]:
        """`disc_updates_per_round` logistic-regression steps, expert (1) vs learner (0); logs loss/accuracy."""
        import torch
        import torch.nn.functional as F

        cfg = self.config
        n = cfg.demo_batch_size
        self.net.train()
        stats: dict[str, float] = {}
        for _ in range(cfg.disc_updates_per_round):
            expert, gen = self._sample(self.demos, n), self._sample(gen_pool, n)
            both = concat([expert, gen])
            log_pi = self.log_prob(both)
            feats = self.encode(both)
            logits = self.disc_logits(feats, None if log_pi is None else torch.from_numpy(log_pi.astype(np.float32)))
            labels = torch.cat([torch.ones(n), torch.zeros(n)])
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            total = loss + (cfg.gradient_penalty * self._gradient_penalty(feats, n) if cfg.gradient_penalty else 0.0)
            self.optimizer.zero_grad()
            total.backward()
            self.optimizer.step()
            with torch.no_grad():
                right = ((logits > 0).float() == labels).float()
                stats = {
                    "disc_loss": float(loss),
                    "disc_acc": float(right.mean()),
                    "disc_acc_expert": float(right[:n].mean()),
                    "disc_acc_gen": float(right[n:].mean()),
                }
        self.net.eval()
        real = gen_pool if gen_pool.weights is None else gen_pool.take(np.flatnonzero(gen_pool.absorbing == 0))
        raw_rewards = self.policy_reward(self.raw_output(real), self.log_prob(real) if self.reward_uses_log_prob else None)
        self.moments.update(raw_rewards)
        stats["learned_reward_mean"] = float(raw_rewards.mean())
        self.last.update(stats)
        return stats

    def _gradient_penalty(self, feats: tuple[torch.Tensor, ...], n: int) -> torch.Tensor:
        """(||d logit / d x|| - 1)^2 at random mixes of expert and learner inputs (DAC, WGAN-GP)."""
        import torch

        alpha = torch.rand(n, 1)
        mixed = [(alpha * x[:n] + (1 - alpha) * x[n:]).requires_grad_(True) for x in feats[:3]]
        norms = [(norm, norm.frozen) for norm in self._input_norms()]
        for norm, _ in norms:
            norm.frozen = True  # interpolations are not data: running statistics skip them
        try:
            out = self.net(*mixed, feats[3][n:])
        finally:
            for norm, was in norms:
                norm.frozen = was
        grads = torch.autograd.grad(out.sum(), mixed, create_graph=True, allow_unused=True)  # unused: inputs the net ignores
        norm = torch.cat([g.reshape(n, -1) for g in grads if g is not None], dim=1).norm(dim=1)
        return ((norm - 1) ** 2).mean()

    def round_metrics(self) -> None:
        """Log the round: env steps, the env's true return (Monitor), the discriminator's stats."""
        model = self.learner.model if self.learner is not None else None
        if model is not None and model.ep_info_buffer:
            self.last["episode_return_mean"] = float(np.mean([e["r"] for e in model.ep_info_buffer]))
        self.last["env_steps"] = float(self.budget.used)
        if self.log_fn is not None:
            self.log_fn(int(self.budget.used), dict(self.last))

    # ------------------------------------------------------------------ off-policy (DAC-style)
    def _patch_replay_buffer(self) -> None:
        """Every replay batch SAC samples gets its rewards from the current discriminator."""
        import torch

        assert self.learner is not None
        buffer = self.learner.model.replay_buffer  # type: ignore[attr-defined]
        sample = buffer.sample

        def relabelled(batch_size: int, env: Any = None) -> Any:
            data = sample(batch_size, env)
            obs, acts, next_obs = (x.numpy() for x in (data.observations, data.actions, data.next_observations))
            term = data.dones.numpy().reshape(-1)
            acts = self.learner.model.policy.unscale_action(acts) if isinstance(self.action_space, gym.spaces.Box) else acts  # type: ignore[union-attr]
            zeros = np.zeros(len(term), np.float32)
            _, seen = self.learner_rewards(TransitionBatch(obs, acts.astype(np.float32), next_obs, term, zeros, zeros))
            return data._replace(rewards=torch.as_tensor(seen, dtype=torch.float32).reshape(-1, 1))

        buffer.sample = relabelled

    def replay_pool(self) -> TransitionBatch:
        """The SAC replay buffer's transitions so far (the discriminator's learner side)."""
        assert self.learner is not None
        buf = self.learner.model.replay_buffer  # type: ignore[attr-defined]
        end = buf.buffer_size if buf.full else buf.pos
        obs = buf.observations[:end].reshape(-1, *buf.obs_shape)
        next_obs = buf.next_observations[:end].reshape(-1, *buf.obs_shape)
        acts = buf.actions[:end].reshape(-1, buf.action_dim)
        if isinstance(self.action_space, gym.spaces.Box):
            acts = self.learner.model.policy.unscale_action(acts)
        term = (buf.dones[:end] * (1 - buf.timeouts[:end])).reshape(-1).astype(np.float32)
        zeros = np.zeros(len(term), np.float32)
        return TransitionBatch(obs, acts.astype(np.float32), next_obs, term, zeros, zeros)

    # ------------------------------------------------------------------ BC warm start
    def bc_warm_start(self) -> dict[str, float]:
        """Maximise the learner policy's log-likelihood of the demonstrations' actions."""
        import torch

        assert self.learner is not None
        policy = self.learner.model.policy
        opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
        demos = self.demos if self.demos.weights is None else self.demos.take(np.flatnonzero(self.demos.absorbing == 0))
        loss = torch.zeros(())
        for _ in range(self.config.bc_warm_start_steps):
            batch = self._sample(demos, min(256, len(demos)))
            loss = -self.policy_log_prob(batch.obs, batch.acts).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"bc_warm_start_loss": float(loss.detach())}

    # ------------------------------------------------------------------ a fresh learner on a saved reward
    def _fit_reward_from(self, venv: Any, budget: Any, log: LogFn | None, dataset: TrajectoryDataset | None) -> dict[str, float]:
        """Train a fresh learner from scratch on the `reward_test` of the run in `reward_from`."""
        from algos.online.learners import make_learner
        from algos.online.reward_wrapper import RewardVecEnvWrapper

        assert self.config.reward_from is not None
        reward = load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)
        self.reward = reward
        last: dict[str, float] = {}

        def forward(step: int, metrics: dict[str, float]) -> None:
            last.update(metrics, env_steps=float(budget.used))
            if "rollout/ep_rew_mean" in metrics:
                last["episode_return_mean"] = metrics["rollout/ep_rew_mean"]
            if log is not None:
                log(int(budget.used), dict(last))

        # Paid normalised as the adversarial learner was (`reward_normalization`; running moments of
        # the paid reward, updated every step as SB3's VecNormalize does). Raw, AIRL's g is -10 to
        # -1000s on the states a fresh PPO visits first (a fallen pole, a drifting cart): the value
        # loss on such returns dominates the gradient-norm clip SB3's PPO applies to policy and value
        # together, and the policy barely moves (seals/CartPole: 0.03 normalised after 200k env
        # steps raw, 1.00 normalised; RESULTS-adversarial.md).
        moments = RunningMoments()

        def paid(obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray) -> np.ndarray:
            raw = np.asarray(reward(obs, acts, next_obs), dtype=np.float64)
            moments.update(raw)
            return moments.apply(raw, self.config.reward_normalization).astype(np.float32)

        stats = obs_statistics(np.asarray(dataset.transitions().obs)) if dataset is not None and self.learner_cfg.obs_norm else None
        self.learner = make_learner(self.learner_cfg, RewardVecEnvWrapper(venv, paid), seed=self.seed, log=forward, obs_stats=stats)
        self.learner.learn(self.config.total_timesteps)
        budget.check()
        self.policy = self.learner.policy
        last["env_steps"] = float(budget.used)
        if log is not None and not last.get("episode_return_mean"):
            log(int(budget.used), dict(last))
        return last

    # ------------------------------------------------------------------ the saved reward
    def saved_reward(self, obs: Obs, acts: Any = None, next_obs: Any = None, *, t: Any = None) -> np.ndarray:
        """`reward_test` on a batch of transitions (a `RewardFn`: relabelling, fresh learners)."""
        import torch

        if acts is None or next_obs is None:
            raise DataError("the adversarial reward needs actions and next observations")
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        zeros = np.zeros(len(obs), np.float32)
        batch = TransitionBatch(obs, np.asarray(acts), next_obs, zeros, zeros, zeros)
        with torch.no_grad():
            self.net.eval()
            return self.reward_test(self.encode(batch)).numpy().astype(np.float64)

    # ------------------------------------------------------------------ persistence
    def _save_state(self, run_dir: Path) -> None:
        """`policy/` (a layer learner folder), `reward_net/` and `adversarial.json` (normaliser, horizon)."""
        if self.learner is not None:
            self.learner.save(run_dir / POLICY_DIR)
        self.net.save(run_dir / REWARD_DIR)
        state = {
            "moments": [self.moments.mean, self.moments.var, self.moments.count],
            "horizon": self.horizon,
            "state_bounds": self.state_bounds,
        }
        (run_dir / STATE_FILE).write_text(json.dumps(state))

    def _load_state(self, run_dir: Path) -> None:
        from algos.online.learners import Learner
        from algos.online.reward_nets import load_reward_net

        self.net = load_reward_net(run_dir / REWARD_DIR)
        state = json.loads((run_dir / STATE_FILE).read_text())
        self.moments = RunningMoments(*state["moments"])
        self.horizon = state["horizon"]
        bounds = state.get("state_bounds")
        self.state_bounds = None if bounds is None else (bounds[0], bounds[1])
        if (run_dir / POLICY_DIR).is_dir():
            self.learner = Learner.load(run_dir / POLICY_DIR)
            self.policy = self.learner.policy
        if self.config.reward_from is not None:
            self.reward = load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)


_HORIZON_FIX = (
    "Episode ends leak reward to adversarial imitation (a reward positive everywhere pays the learner to "
    "survive): use a fixed-horizon env (seals/...) and data, or set config.absorbing: true (DAC's "
    "absorbing-state fix), or config.allow_variable_horizon: true if you accept the bias"
)


def env_terminates(env_id: str, seed: int, episodes: int = 3) -> bool:
    """Whether random actions end an episode of `env_id` by termination (a cheap probe; seals/ envs never do)."""
    if env_id.startswith("seals/"):
        return False
    from ildata.envs import make_env

    env = make_env(env_id)
    try:
        env.action_space.seed(seed)
        for k in range(episodes):
            env.reset(seed=seed + k)
            while True:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated:
                    return True
                if truncated:
                    break
    finally:
        env.close()
    return False


class _RoundCallback:
    """Built lazily as an SB3 callback (the module stays importable without SB3 at import time)."""

    def __new__(cls, trainer: AdversarialTrainer) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        class RoundCallback(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.rollouts = 0
                self.since = 0

            def _on_step(self) -> bool:
                if trainer.learner_cfg.algo == "sac":  # off-policy: a round every gen_steps_per_round env steps
                    self.since += trainer.venv.num_envs
                    if self.since >= trainer.learner.unit * trainer.rollouts_per_round and trainer.learner.model.replay_buffer.size() > 0:  # type: ignore[union-attr]
                        self.since = 0
                        trainer.pending = []
                        trainer.pending_t, trainer.pending_rewards = [], []
                        trainer.train_disc(trainer.replay_pool())
                        trainer.round_metrics()
                return True

            def _on_rollout_start(self) -> None:
                if trainer.config.round_order == "learner_first" and self.rollouts and self.rollouts % trainer.rollouts_per_round == 0:
                    trainer.end_round()
                    trainer.round_metrics()

            def _on_rollout_end(self) -> None:
                if trainer.learner_cfg.algo == "sac":
                    return
                self.rollouts += 1
                if trainer.config.round_order == "disc_first" and self.rollouts % trainer.rollouts_per_round == 0:
                    trainer.end_round(self.model.rollout_buffer, self.locals["values"], self.locals["dones"])  # type: ignore[attr-defined]
                    trainer.round_metrics()

        return RoundCallback()


def obs_statistics(obs: np.ndarray, min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (floored: a feature constant in the demonstrations) for `learner.obs_norm`."""
    flat = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
    return flat.mean(0), np.maximum(flat.std(0), min_std)


def load_reward(run_dir: str | Path, observation_space: gym.Space, action_space: gym.Space, *, seed: int | None = None) -> Any:
    """The saved reward of a run folder (`algos.base.load_algorithm(run_dir).reward`), spaces checked.
    With `seed`, a sweep's configuration folder holding `seed-<seed>/` stands for that run."""
    from algos.base import load_algorithm
    from ildata.spaces import space_to_dict

    if seed is not None and (Path(run_dir) / f"seed-{seed}").is_dir():
        run_dir = Path(run_dir) / f"seed-{seed}"
    try:
        algo = load_algorithm(run_dir)
    except DataError as exc:
        raise DataError(f"config.reward_from: {exc}") from None
    if algo.reward is None:
        raise DataError(f"config.reward_from: {run_dir} holds algorithm {algo.name!r}, which learned no reward")
    for name, mine, theirs in (("observation", observation_space, algo.observation_space), ("action", action_space, algo.action_space)):
        if theirs is None or space_to_dict(theirs) != space_to_dict(mine):
            raise DataError(f"config.reward_from: the reward in {run_dir} was learned for another {name} space")
    return algo.reward


def relabel_with_run(run_dir: str | Path, dataset: TrajectoryDataset, dst: str | Path, *, overwrite: bool = False) -> TrajectoryDataset:
    """A NEW dataset: `dataset` with rewards from the learned reward saved in `run_dir` (source untouched)."""
    from algos.density import relabel

    reward = load_reward(run_dir, dataset.observation_space, dataset.action_space)
    return relabel(dataset, reward, dst, overwrite=overwrite, reward_name=f"learned:{Path(run_dir).name}")
