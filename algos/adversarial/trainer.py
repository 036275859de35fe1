"""`AdversarialTrainer`: one GAIL/AIRL run, top to bottom (the package doc says what a round is).

`fit` checks the horizons, turns the demonstrations into a `TransitionBatch`, builds the learner
on an env whose every vector step is paid by `_wrapper_reward` (which also records the round's
transitions in the `RoundState`), and hands `learn` a `RoundCallback` that calls `end_round`:
train the discriminator (`algos.adversarial.discriminator`), relabel the rollout, log the row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np

from algos.adversarial.config import AdversarialConfig
from algos.adversarial.discriminator import fit_input_norms, make_optimizer, train_discriminator
from algos.adversarial.horizons import HORIZON_FIX, check_demonstration_horizons, env_terminates
from algos.adversarial.transitions import TransitionBatch, absorbing_rows, concat, demonstrations, plain_batch, sample
from algos.base import Algorithm, LogFn, seed_everything
from algos.online.normalizer import RewardMoments, obs_statistics
from algos.saved_reward import load_reward
from ildata.episode import DataError, Obs
from ildata.horizon import VariableHorizonError
from ildata.store import TrajectoryDataset

if TYPE_CHECKING:
    import torch
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    from algos.adversarial.rounds import RoundState
    from algos.online.budget import StepBudget
    from algos.online.learners import Learner
    from algos.online.reward_nets import RewardNet

STATE_FILE = "adversarial.json"
REWARD_DIR = "reward_net"
POLICY_DIR = "policy"


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
        self.learner_cfg = config.learner
        self.net: RewardNet = self._seeded_net()
        self.moments = RewardMoments()  # of the learner's raw rewards, updated once per round
        self.learner: Learner | None = None
        self.horizon: int | None = None  # the env's horizon (absorbing fix)
        self.rng = np.random.default_rng(seed)
        self.state_bounds: tuple[list[float], list[float]] | None = None  # disc_input_clip's box
        self.state: RoundState | None = None  # set up by `fit`
        self.reward = self.saved_reward

    def _seeded_net(self) -> RewardNet:
        """The discriminator, initialised from `seed` alone (not from whatever ran before in the process)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self.build_net(self._disc_obs_space(), self.action_space)

    @property
    def budget(self) -> StepBudget:
        """The env-step budget of the last `fit`."""
        assert self.state is not None, "fit first"
        return self.state.budget

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

    # ------------------------------------------------------------------ the net's inputs
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

    # ------------------------------------------------------------------ the learner's policy
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

    def bc_warm_start(self, demos: TransitionBatch) -> dict[str, float]:
        """Maximise the learner policy's log-likelihood of the demonstrations' actions."""
        import torch

        assert self.learner is not None
        opt = torch.optim.Adam(self.learner.model.policy.parameters(), lr=1e-3)
        real = demos.real()
        loss = torch.zeros(())
        for _ in range(self.config.bc_warm_start_steps):
            batch = sample(real, min(256, len(real)), self.rng)
            loss = -self.policy_log_prob(batch.obs, batch.acts).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"bc_warm_start_loss": float(loss.detach())}

    # ------------------------------------------------------------------ the learner's reward
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
        seen = self.moments.apply(raw, self.config.normalize_reward)
        if self.config.absorbing and t is not None and batch.next_absorbing.any():
            seen = seen + self._absorbing_bonus(t) * batch.next_absorbing
        return raw, seen

    def _absorbing_bonus(self, t: np.ndarray) -> np.ndarray:
        """Discounted reward of the absorbing steps left to the horizon after terminating at step t."""
        assert self.horizon is not None
        n = len(t)
        obs_zero = np.zeros((1, *(self.observation_space.shape or ())), self.observation_space.dtype)
        absorbing_row = TransitionBatch(
            obs_zero,
            np.zeros((1, *(self.action_space.shape or ())), self.action_space.dtype),
            obs_zero.copy(),
            np.zeros(1),
            np.ones(1),
            np.ones(1),
        )
        raw = self.policy_reward(self.raw_output(absorbing_row), np.zeros(1))
        r_abs = float(self.moments.apply(raw, self.config.normalize_reward)[0])
        gamma = self.learner_cfg.gamma
        left = np.maximum(self.horizon - np.asarray(t).reshape(n) - 1, 0)
        return r_abs * gamma * (1 - gamma**left) / (1 - gamma)

    def _relabel_replay(self, data: ReplayBufferSamples) -> np.ndarray:
        """SAC's replay batches are paid by the current discriminator (`algos.online.replay`)."""
        assert self.learner is not None
        obs, acts, next_obs = (x.numpy() for x in (data.observations, data.actions, data.next_observations))
        if isinstance(self.action_space, gym.spaces.Box):
            acts = self.learner.model.policy.unscale_action(acts)
        term = data.dones.numpy().reshape(-1)
        return self.learner_rewards(plain_batch(obs, acts.astype(np.float32), next_obs, term))[1]

    # ------------------------------------------------------------------ before training
    def check_horizons(self, dataset: TrajectoryDataset) -> None:
        """VariableHorizonError for variable-horizon demonstrations unless the recipe chose."""
        if not (self.config.allow_variable_horizon or self.config.absorbing):
            check_demonstration_horizons(dataset, type(self).__name__)

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
            raise VariableHorizonError(f"env: {env_id} terminates episodes (a variable horizon). {HORIZON_FIX}")

    # ------------------------------------------------------------------ training
    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """Adversarial training for at most `total_timesteps` env steps (or a fresh learner on `reward_from`)."""
        from algos.adversarial.rounds import RoundCallback, RoundState
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
            return self._fit_on_saved_reward(venv, budget, log, dataset)
        if dataset is None:
            raise DataError("dataset: adversarial imitation learns from demonstrations")
        # 1. the demonstrations, checked, as the discriminator's expert side
        self.check_horizons(dataset)
        self.horizon = gym.spec(self.env_id).max_episode_steps or int(dataset.lengths.max())
        demos = demonstrations(dataset, absorbing=cfg.absorbing, horizon=self.horizon)
        if cfg.disc_normalize_obs == "expert":
            fit_input_norms(self, demos)
        # 2. the learner, paid by `_wrapper_reward` on every vector step
        wrapped = RewardVecEnvWrapper(venv, self._wrapper_reward, timesteps=True)
        stats = obs_statistics(demos.obs[demos.absorbing == 0]) if self.learner_cfg.normalize_obs else None
        relabel = self._relabel_replay if self.learner_cfg.algo == "sac" else None
        self.learner = make_learner(self.learner_cfg, wrapped, seed=self.seed, obs_stats=stats, relabel=relabel)
        self.state = state = RoundState(venv, budget, log, demos, make_optimizer(self), {"env_steps": 0.0})
        if cfg.bc_warm_start_steps:
            state.metrics.update(self.bc_warm_start(demos))
        self.policy = self.learner.policy
        if self.learner.unit > cfg.total_timesteps:  # not one rollout fits the budget
            if log is not None:
                log(0, state.metrics)
            return state.metrics
        # 3. the rounds, ended from inside `learn` by the callback
        state.rollouts_per_round = self._rollouts_per_round()
        if log is not None:
            log(0, dict(state.metrics))
        self.learner.learn(cfg.total_timesteps, callback=RoundCallback(self))
        if self.learner_cfg.algo != "sac" and cfg.round_order == "learner_first" and state.pending:
            self.train_disc(concat(state.pending))
        budget.check()  # never more env steps than total_timesteps
        self.policy = self.learner.policy
        state.metrics["env_steps"] = float(budget.used)
        return dict(state.metrics)

    def _rollouts_per_round(self) -> int:
        """Learner units per round: `steps_per_round` (a multiple of the unit), or one rollout
        (on-policy) or about 1000 env steps (SAC)."""
        assert self.learner is not None
        unit = self.learner.unit
        default_round = unit if self.learner_cfg.algo != "sac" else -(-1000 // unit) * unit
        per_round = self.config.steps_per_round or default_round
        if per_round % unit:
            raise DataError(f"steps_per_round: must be a multiple of {unit} (learner.rollout_steps x n_envs)")
        return per_round // unit

    def _fit_on_saved_reward(self, venv: Any, budget: StepBudget, log: LogFn | None, dataset: TrajectoryDataset | None) -> dict[str, float]:
        """`reward_from`: the plain RL algorithm's loop (`algos.expert.train_on_saved_reward`)."""
        from algos.expert import train_on_saved_reward

        assert self.config.reward_from is not None
        self.reward = load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)
        self.learner, metrics = train_on_saved_reward(
            self.config, self.learner_cfg, venv, budget, self.reward, seed=self.seed, log=log, dataset=dataset
        )
        self.policy = self.learner.policy
        return metrics

    def _wrapper_reward(self, obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The reward wrapper's call: record the transitions, pay the learner."""
        cfg = self.config
        assert self.state is not None
        term = np.asarray(terminated, dtype=np.float32)
        if term.any() and not (cfg.allow_variable_horizon or cfg.absorbing):
            raise VariableHorizonError(f"config.allow_variable_horizon: a learner episode in {self.env_id} terminated. {HORIZON_FIX}")
        zeros = np.zeros(len(term), np.float32)
        if cfg.absorbing:
            batch = TransitionBatch(np.array(obs), np.array(acts), np.array(next_obs), zeros, zeros, term)
        else:
            batch = TransitionBatch(np.array(obs), np.array(acts), np.array(next_obs), term, zeros, zeros)
        _, seen = self.learner_rewards(batch, t)
        self.state.record(batch, t, seen)
        return seen

    def learner_pool(self) -> TransitionBatch:
        """The round's learner transitions; with the fix, plus their absorbing rows (weighted)."""
        assert self.state is not None
        batch = concat(self.state.pending)
        if not self.config.absorbing or not batch.next_absorbing.any():
            return batch
        assert self.horizon is not None
        t = np.concatenate(self.state.pending_t)
        pad = float(np.maximum(self.horizon - t - 1, 0)[batch.next_absorbing > 0].sum())
        if pad == 0:
            return batch
        return concat([batch, absorbing_rows(batch, pad)])

    def end_round(self, rollout_buffer: Any = None, last_values: Any = None, dones: Any = None) -> None:
        """Train the discriminator on the round; with a rollout buffer, relabel it (disc_first)."""
        assert self.state is not None
        state = self.state
        self.train_disc(self.learner_pool())
        if rollout_buffer is not None:
            n_steps = rollout_buffer.buffer_size
            batch, t = concat(state.pending[-n_steps:]), np.concatenate(state.pending_t[-n_steps:])
            _, seen = self.learner_rewards(batch, t)
            old = np.concatenate(state.pending_rewards[-n_steps:])
            rollout_buffer.rewards += (seen - old).reshape(rollout_buffer.rewards.shape)
            rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        state.clear()

    def train_disc(self, gen_pool: TransitionBatch) -> dict[str, float]:
        """One round of discriminator training against `gen_pool` (`algos.adversarial.discriminator`)."""
        return train_discriminator(self, gen_pool)

    def round_metrics(self) -> None:
        """Log the round: env steps, the env's true return (Monitor), the discriminator's stats."""
        assert self.state is not None
        state = self.state
        model = self.learner.model if self.learner is not None else None
        if model is not None and model.ep_info_buffer:
            state.metrics["episode_return_mean"] = float(np.mean([e["r"] for e in model.ep_info_buffer]))
        state.metrics["env_steps"] = float(state.budget.used)
        if state.log is not None:
            state.log(int(state.budget.used), dict(state.metrics))

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
        return plain_batch(obs, acts.astype(np.float32), next_obs, term)

    # ------------------------------------------------------------------ the saved reward
    def saved_reward(self, obs: Obs, acts: Any = None, next_obs: Any = None, *, t: Any = None) -> np.ndarray:
        """`reward_test` on a batch of transitions (a `RewardFn`: relabelling, fresh learners)."""
        import torch

        if acts is None or next_obs is None:
            raise DataError("the adversarial reward needs actions and next observations")
        batch = plain_batch(np.asarray(obs), np.asarray(acts), np.asarray(next_obs))
        with torch.no_grad():
            self.net.eval()
            return self.reward_test(self.encode(batch)).numpy().astype(np.float64)

    # ------------------------------------------------------------------ persistence
    def _save_state(self, run_dir: Path) -> None:
        """`policy/` (a layer learner folder), `reward_net/` and `adversarial.json` (normaliser, horizon)."""
        if self.learner is not None:
            self.learner.save(run_dir / POLICY_DIR)
        self.net.save(run_dir / REWARD_DIR)
        state = {"moments": self.moments.to_list(), "horizon": self.horizon, "state_bounds": self.state_bounds}
        (run_dir / STATE_FILE).write_text(json.dumps(state))

    def _load_state(self, run_dir: Path) -> None:
        from algos.online.learners import Learner
        from algos.online.reward_nets import load_reward_net

        self.net = load_reward_net(run_dir / REWARD_DIR)
        state = json.loads((run_dir / STATE_FILE).read_text())
        self.moments = RewardMoments(*state["moments"])
        self.horizon = state["horizon"]
        bounds = state.get("state_bounds")
        self.state_bounds = None if bounds is None else (bounds[0], bounds[1])
        if (run_dir / POLICY_DIR).is_dir():
            self.learner = Learner.load(run_dir / POLICY_DIR)
            self.policy = self.learner.policy
        if self.config.reward_from is not None:
            self.reward = load_reward(self.config.reward_from, self.observation_space, self.action_space, seed=self.seed)
