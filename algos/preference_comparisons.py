"""Preference comparisons (Christiano et al. 2017): learn a reward from preferences between trajectory
fragments, and train an RL learner on it, on the online layer (`algos.online`).

One run, top to bottom (`fit`):

1. Initial sampling: the untrained learner acts (stochastically) for `initial_sampling_frac` of
   the budget; its finished episodes are recorded (`EpisodeRecorder`, true rewards).
2. Exactly `iterations` rounds. Round k: draw fragment pairs from the freshest episodes
   (`algos.preferences.fragment`: uniform over every window, copies, short episodes counted),
   optionally keep the pairs the reward ensemble disagrees on most (`active_selection`), label
   them (the synthetic Bradley-Terry oracle), add them to the preference dataset, train the
   reward (batched Bradley-Terry), then one learner phase on the learned reward, whose episodes
   feed round k+1. imitation runs one extra learner phase; here there are `iterations`, no more.
3. Comparisons: `initial_comparison_frac * comparisons` in round 0; the rest spread over rounds
   1.. by the query schedule (constant, hyperbolic 1/(1+t), inverse_quadratic 1/(1+t^2) at
   t = k / iterations), rounded so they sum to exactly `comparisons`.

Budget: every env step (initial sampling, learner phases) is taken on one `SeededVecEnv`, whose
counter is checked against `total_timesteps` at the end (`StepBudget.check`). An off-policy
learner (SAC, DQN) gets every replay batch relabelled with the current reward
(`algos.online.replay.RelabelledReplayBuffer`), so transitions stored under an older reward
model are never trained on with stale rewards.

Resume (`ildata train --resume`) is exact: every finished round is checkpointed
(`algos.preferences.checkpoint`), and a resumed run logs exactly the metrics of a run never
interrupted. The preference dataset is saved in the run folder as `preferences.parquet`
(`algos.preferences.PreferenceDataset`; `ildata prefs export/import` read and write the same format).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
import numpy as np

from algos.base import Algorithm, LogFn, register
from algos.online.learner_configs import LearnerConfig, PPOConfig, learner_config
from ildata.episode import DataError, EpisodeBatch, Obs
from ildata.fsutil import atomic_output

if TYPE_CHECKING:
    import torch
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    from algos.online.learners import Learner
    from algos.online.recorder import EpisodeRecorder
    from algos.preferences import PreferenceDataset, RewardEnsemble, SyntheticGatherer
    from ildata.store import TrajectoryDataset

PREFERENCES_FILE = "preferences.parquet"
REWARD_DIR = "reward_net"
POLICY_DIR = "policy"
STATE_FILE = "preference_comparisons.json"
CHECKPOINT_DIR = "checkpoint"  # under `checkpoint_dir`: the last finished round (`ildata train --resume`)

SCHEDULES = {
    "constant": lambda t: 1.0,
    "hyperbolic": lambda t: 1.0 / (1.0 + t),
    "inverse_quadratic": lambda t: 1.0 / (1.0 + t**2),
}


@dataclass
class PreferenceComparisonsConfig:
    """A recipe's `config:` for `algo: preference_comparisons` (see the module doc for the schedule)."""

    RENAMED: ClassVar[dict[str, str]] = {"reward_normalization": "normalize_reward"}

    total_timesteps: int = 100_000  # every env step, fragment sampling included (an upper bound)
    n_envs: int = 1
    iterations: int = 5  # learner phases, exactly
    comparisons: int = 300  # labelled pairs in all
    initial_comparison_frac: float = 0.1
    query_schedule: Literal["constant", "hyperbolic", "inverse_quadratic"] = "hyperbolic"
    initial_sampling_frac: float = 0.05  # of total_timesteps, the untrained policy's rollouts
    fragment_length: int = 50
    # The synthetic oracle: Bradley-Terry over true discounted fragment returns.
    temperature: float = 1.0
    discount: float = 1.0
    random_label_prob: float = 0.0
    equal_ties: bool = False  # exactly equal fragment returns labelled "equal" (0.5), not a coin flip
    # The reward model.
    ensemble_size: int = 1
    active_selection: bool = False  # keep the candidate pairs the ensemble disagrees on most
    active_oversample: int = 5  # candidates drawn per kept pair
    reward_hidden: list[int] = field(default_factory=lambda: [64, 64])
    reward_use_action: bool = True
    reward_use_next_state: bool = False
    reward_epochs: int = 3  # passes over the whole preference dataset per round
    initial_reward_epochs: int = 20  # in round 0 (imitation's default multiplies reward_epochs by 200)
    reward_batch_size: int = 32
    reward_learning_rate: float = 1e-3
    reward_weight_decay: float = 0.0
    # The learned reward the learner is paid: standardised (`standard`), scaled (`scale`) or as is
    # (`off`), by its mean and std over the preference fragments' transitions after each round.
    normalize_reward: Literal["standard", "scale", "off"] = "standard"
    # The RL learner, `{algo: ppo | sac | trpo | dqn, ...}` in SB3's words (`algos.online.learner_configs`).
    learner: LearnerConfig = field(default_factory=PPOConfig)
    # Scores only: the policy whose return is the normalised score's 1 (expert:NAME, a run folder,
    # an SB3 zip). None: the shipped expert trained in the env, if there is one.
    reference_expert: str | None = field(default=None, metadata={"path": "if-exists"})

    def __post_init__(self) -> None:
        if isinstance(self.learner, Mapping):  # built in code from a mapping, not through a recipe
            self.learner = learner_config(self.learner)
        for name in (
            "total_timesteps",
            "n_envs",
            "iterations",
            "fragment_length",
            "ensemble_size",
            "active_oversample",
            "reward_batch_size",
        ):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("comparisons", "reward_epochs", "initial_reward_epochs"):
            if getattr(self, name) < 0:
                raise DataError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("initial_comparison_frac", "initial_sampling_frac", "random_label_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise DataError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.query_schedule not in SCHEDULES:
            raise DataError(f"query_schedule: must be one of {', '.join(SCHEDULES)}, got {self.query_schedule!r}")
        if self.active_selection and self.ensemble_size < 2:
            raise DataError("active_selection: needs ensemble_size >= 2 (disagreement between members)")
        if self.temperature < 0 or not 0 < self.discount <= 1:
            raise DataError("temperature: must be >= 0; discount: in (0, 1]")
        self.reward_hidden = list(self.reward_hidden)
        if self.learner.normalize_reward:
            raise DataError("learner.normalize_reward: the reward is learned; use config.normalize_reward instead")


def query_schedule(config: PreferenceComparisonsConfig) -> list[int]:
    """Comparisons per round (`iterations` entries, summing to `comparisons`)."""
    total, rounds = config.comparisons, config.iterations
    initial = total if rounds == 1 else int(round(config.initial_comparison_frac * total))
    weights = np.array([SCHEDULES[config.query_schedule](k / rounds) for k in range(1, rounds)])
    rest = total - initial
    if rounds == 1 or rest == 0:
        return [initial] + [0] * (rounds - 1)
    share = rest * weights / weights.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(-(share - counts))[: rest - counts.sum()]] += 1  # largest remainders
    return [initial, *counts.tolist()]


@register("preference_comparisons")
class PreferenceComparisons(Algorithm):
    """Reward from fragment preferences (synthetic oracle) + an RL learner on it; see the module doc."""

    Config = PreferenceComparisonsConfig
    config: PreferenceComparisonsConfig
    needs_dataset = False
    resumable: ClassVar[bool] = True
    observation_space: gym.Space
    action_space: gym.Space

    def __init__(self, config: Any, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        if observation_space is None or action_space is None:
            raise DataError("preference comparisons needs the observation and action spaces")
        if isinstance(observation_space, gym.spaces.Dict):
            raise DataError("preference comparisons: dict observations are not supported")
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        from algos.online.reward_nets import RewardNetConfig
        from algos.preferences import PreferenceDataset, RewardEnsemble

        self.learner_cfg = config.learner
        net_cfg = RewardNetConfig(
            use_action=config.reward_use_action, use_next_state=config.reward_use_next_state, hidden=tuple(config.reward_hidden)
        )
        self.ensemble: RewardEnsemble = RewardEnsemble(observation_space, action_space, net_cfg, config.ensemble_size)
        self.preferences: PreferenceDataset = PreferenceDataset.empty(observation_space, action_space, config.fragment_length)
        self.moments = (0.0, 1.0)  # the learned reward's mean and std on the fragments' transitions
        self.learner: Learner | None = None
        self.rng = np.random.default_rng(seed)
        self.reward = self.saved_reward

    # ------------------------------------------------------------------ scores
    def _reference_spec(self, env_id: str) -> str | None:
        from algos.policies import EXPERT_PREFIX, policy_env_id, shipped_experts

        if self.config.reference_expert is not None:
            return self.config.reference_expert
        shipped = [f"{EXPERT_PREFIX}{name}" for name in shipped_experts()]
        return next((spec for spec in shipped if policy_env_id(spec) == env_id), None)

    def check_inputs(self, dataset: TrajectoryDataset | None, env_id: str | None) -> None:
        """A configured `reference_expert` is loaded and checked against the env before training."""
        if self.config.reference_expert is not None and env_id is not None:
            from algos.policies import load_policy

            try:
                load_policy(self.config.reference_expert, env_id=env_id)
            except DataError as exc:
                raise DataError(f"config.reference_expert: {exc}") from None

    def reference_returns(self, env_id: str, episodes: int, seed: int) -> dict[str, float | None]:
        """The reference expert's and a random policy's mean returns on the evaluation's seeds
        (as DAgger scores against its expert); none when the env has no expert to score against."""
        from algos.policies import load_policy, measured_reference_returns

        spec = self._reference_spec(env_id)
        if spec is None:
            return super().reference_returns(env_id, episodes, seed)
        expert = load_policy(spec, env_id=env_id, deterministic=True)
        return measured_reference_returns(expert, env_id, episodes, seed, self.observation_space, self.action_space)

    # ------------------------------------------------------------------ the learned reward
    def saved_reward(self, obs: Obs, acts: Any = None, next_obs: Any = None, *, t: Any = None) -> np.ndarray:
        """The ensemble's mean reward, normalised as the learner saw it (a `RewardFn`)."""
        if acts is None:
            raise DataError("the preference reward needs actions")
        next_obs = obs if next_obs is None else next_obs
        mean, std = self.moments
        raw = self.ensemble.predict(obs, acts, next_obs)
        mode = self.config.normalize_reward
        return raw if mode == "off" else (raw - mean) / std if mode == "standard" else raw / std

    def _update_moments(self) -> None:
        pairs = self.preferences
        if len(pairs) == 0:
            return
        frags = [pairs.left, pairs.right]
        obs = np.concatenate([f.obs.reshape(-1, *f.obs.shape[2:]) for f in frags])
        acts = np.concatenate([f.acts.reshape(-1, *f.acts.shape[2:]) for f in frags])
        next_obs = np.concatenate([f.next_obs.reshape(-1, *f.next_obs.shape[2:]) for f in frags])
        raw = self.ensemble.predict(obs, acts, next_obs)
        self.moments = (float(raw.mean()), float(raw.std()) + 1e-8)

    # ------------------------------------------------------------------ queries
    def query(self, batch: EpisodeBatch | None, n: int, gatherer: SyntheticGatherer) -> dict[str, float]:
        """Draw `n` pairs from the episodes in `batch`, label them, add them to the dataset.

        With no episode of `fragment_length` steps the queries are deferred (a warning), never
        silently dropped; episodes too short for a fragment are counted in `fragments_too_short`."""
        from algos.preferences import PreferenceDataset, disagreement, fragment

        cfg = self.config
        too_short = 0 if batch is None else int((batch.lengths < cfg.fragment_length).sum())
        if n == 0 or batch is None or too_short == batch.num_episodes:
            if n:
                warnings.warn(
                    f"{n} queries deferred: no finished episode of {cfg.fragment_length} steps yet "
                    f"({too_short} too short); lower fragment_length or raise initial_sampling_frac",
                    stacklevel=2,
                )
            return {"queries": 0.0, "fragments_too_short": float(too_short)}
        candidates = n * (cfg.active_oversample if cfg.active_selection else 1)
        frags = fragment(batch, cfg.fragment_length, 2 * candidates, self.rng)
        left, right = frags.take(np.arange(candidates)), frags.take(np.arange(candidates, 2 * candidates))
        if cfg.active_selection:
            keep = np.argsort(-disagreement(self.ensemble, left, right), kind="stable")[:n]
            left, right = left.take(keep), right.take(keep)
        labels = gatherer(left, right)
        first = int(self.preferences.pair_ids.max()) + 1 if len(self.preferences) else 0
        new = PreferenceDataset(left, right, labels, np.arange(first, first + n), self.observation_space, self.action_space, self.env_id)
        self.preferences = self.preferences.extend(new)
        return {"queries": float(n), "fragments_too_short": float(frags.too_short)}

    # ------------------------------------------------------------------ training
    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        """`iterations` rounds of query -> reward training -> learner phase within `total_timesteps`.

        With a `checkpoint_dir` (`ildata train`), every finished round is saved there and a run
        that finds a checkpoint continues exactly where it was, with the budget left after it."""
        from algos.online.budget import StepBudget
        from algos.online.learners import Learner, make_learner
        from algos.online.recorder import EpisodeRecorder
        from algos.online.reward_wrapper import RewardVecEnvWrapper
        from algos.online.vec_env import make_vec_env
        from algos.preferences import SyntheticGatherer, held_out_metrics, make_optimizers, train_preferences
        from algos.preferences.checkpoint import load_batch, read_counters, restore_round

        cfg = self.config
        self.env_id = env_id or (dataset.env_id if dataset is not None else None) or self.env_id
        if self.env_id is None:
            raise DataError("env: preference comparisons trains in an env")
        self.preferences.env_id = self.env_id
        checkpoint = self.checkpoint_dir / CHECKPOINT_DIR if self.checkpoint_dir is not None else None
        state = None
        if checkpoint is not None and (checkpoint / "round.json").is_file():
            self._load_reward(checkpoint)
            state = read_counters(checkpoint)
        done = int(state["env_steps"]) if state else 0  # env steps of the rounds before a resume
        venv = make_vec_env(self.env_id, cfg.n_envs, seed=self.seed)
        budget = StepBudget(venv, cfg.total_timesteps - done)
        recorder = EpisodeRecorder(venv)
        wrapped = RewardVecEnvWrapper(recorder, lambda o, a, o2, term: self.saved_reward(o, a, o2).astype(np.float32))
        relabel = self._relabel_replay if self.learner_cfg.algo in ("sac", "dqn") else None
        if checkpoint is not None and state:
            self.learner = learner = Learner.load(checkpoint / POLICY_DIR, wrapped, relabel=relabel)
        else:
            self.learner = learner = make_learner(self.learner_cfg, wrapped, seed=self.seed, relabel=relabel)
        gatherer = SyntheticGatherer(cfg.temperature, cfg.discount, cfg.random_label_prob, seed=self.seed + 1, equal_ties=cfg.equal_ties)
        optimizers = make_optimizers(self.ensemble, cfg.reward_learning_rate, cfg.reward_weight_decay)
        rows: list[tuple[int, dict[str, float]]] = []

        def record(step: int, metrics: dict[str, float]) -> None:
            rows.append((step, dict(metrics)))
            if log is not None:
                log(step, dict(metrics))

        if checkpoint is not None and state:
            running_obs = restore_round(checkpoint, learner, recorder, optimizers, state)
            wrapped.continue_from(running_obs, recorder.running_state()["pos"])
            gatherer.rng.bit_generator.state = state["gatherer_rng"]
            self.rng.bit_generator.state = state["rng"]
            first_round, owed, batch = int(state["round"]), int(state["owed"]), load_batch(checkpoint)
            for step, m in state["rows"]:  # metrics.csv of the resumed run holds every round
                record(int(step), {k: float(v) for k, v in m.items()})
            metrics = dict(rows[-1][1])
        else:
            metrics = {"env_steps": 0.0, "comparisons": 0.0}
            record(0, metrics)
            # 1. initial sampling with the untrained learner's stochastic policy (counted like any step)
            n = venv.num_envs
            sampling = (int(cfg.initial_sampling_frac * cfg.total_timesteps) // n) * n
            obs = wrapped.reset()
            for _ in range(sampling // n):
                actions, _ = learner.model.predict(obs, deterministic=False)
                obs, _, _, _ = wrapped.step(actions)
            batch = recorder.pop_batch()  # the learner's first learn() resets the env (partial episodes dropped)
            first_round, owed = 0, 0  # owed: queries deferred because no episode was long enough yet

        # 2. exactly `iterations` rounds
        schedule = query_schedule(cfg)
        for k in range(first_round, cfg.iterations):
            owed += schedule[k]
            made = self.query(batch, owed, gatherer)
            owed -= int(made["queries"])
            metrics.update(made, queries_deferred=float(owed))
            epochs = cfg.initial_reward_epochs if k == 0 else cfg.reward_epochs
            metrics.update(
                train_preferences(
                    self.ensemble,
                    self.preferences,
                    epochs=epochs,
                    batch_size=cfg.reward_batch_size,
                    rng=self.rng,
                    optimizers=optimizers,
                )
            )
            self._update_moments()
            metrics["comparisons"] = float(len(self.preferences))
            units_left = budget.remaining // learner.unit  # whole rollouts / train_freq collections
            phase_units = max(units_left // (cfg.iterations - k), min(units_left, 1))
            if phase_units:
                learner.learn(phase_units * learner.unit)
                metrics["learner_phases"] = metrics.get("learner_phases", 0.0) + 1
            batch = recorder.pop_batch()
            if batch is not None and batch.rews is not None:
                metrics["episode_return_mean"] = float(np.add.reduceat(batch.rews, np.r_[0, np.cumsum(batch.lengths)[:-1]]).mean())
            metrics["env_steps"] = float(done + budget.used)
            metrics["iteration"] = float(k + 1)
            if k == cfg.iterations - 1 and batch is not None:
                # The last phase's episodes were never queried: the learned reward's held-out check.
                metrics.update(held_out_metrics(self.ensemble, batch, cfg.fragment_length, np.random.default_rng([self.seed, 2])))
            if checkpoint is not None:
                rows_after = [*rows, (done + budget.used, dict(metrics))]
                counters = {"round": k + 1, "owed": owed, "env_steps": done + budget.used, "rows": [[st, m] for st, m in rows_after]}
                self._checkpoint(checkpoint, learner, recorder, optimizers, gatherer, batch, counters)
            record(done + budget.used, metrics)
        budget.check()  # every env step, fragment sampling included, within total_timesteps
        self.policy = learner.policy
        return dict(metrics)

    def _relabel_replay(self, data: ReplayBufferSamples) -> np.ndarray:
        """An off-policy learner's replay batches are paid the current learned reward (`algos.online.replay`)."""
        assert self.learner is not None
        obs, acts, next_obs = (x.numpy() for x in (data.observations, data.actions, data.next_observations))
        box = isinstance(self.action_space, gym.spaces.Box)
        acts = self.learner.model.policy.unscale_action(acts) if box else acts.reshape(-1).astype(np.int64)
        return self.saved_reward(obs, acts, next_obs)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(
        self,
        path: Path,
        learner: Learner,
        recorder: EpisodeRecorder,
        optimizers: list[torch.optim.Optimizer],
        gatherer: SyntheticGatherer,
        batch: EpisodeBatch | None,
        counters: dict[str, Any],
    ) -> None:
        """The run state (`_save_state`) and the round's (`algos.preferences.checkpoint`), atomically."""
        from algos.preferences.checkpoint import save_round

        with atomic_output(path, overwrite=True) as tmp:
            self._save_state(tmp)
            counters = {**counters, "rng": self.rng.bit_generator.state, "gatherer_rng": gatherer.rng.bit_generator.state}
            save_round(tmp, learner, recorder, optimizers, batch, counters)

    # ------------------------------------------------------------------ persistence
    def _save_state(self, run_dir: Path) -> None:
        """`policy/` (a learner folder), `reward_net/member-K/`, `preferences.parquet`, the normaliser."""
        if self.learner is not None:
            self.learner.save(run_dir / POLICY_DIR, overwrite=True)
        self.ensemble.save(run_dir / REWARD_DIR)
        self.preferences.save(run_dir / PREFERENCES_FILE, overwrite=True)
        (run_dir / STATE_FILE).write_text(json.dumps({"moments": list(self.moments)}))

    def _load_state(self, run_dir: Path) -> None:
        self._load_reward(run_dir)
        if (run_dir / POLICY_DIR).is_dir():
            from algos.online.learners import Learner

            self.learner = Learner.load(run_dir / POLICY_DIR)
            self.policy = self.learner.policy

    def _load_reward(self, run_dir: Path) -> None:
        from algos.preferences import PreferenceDataset, RewardEnsemble

        self.ensemble = RewardEnsemble.load(run_dir / REWARD_DIR, self.config.ensemble_size)
        self.preferences = PreferenceDataset.load(run_dir / PREFERENCES_FILE)
        mean, std = json.loads((run_dir / STATE_FILE).read_text())["moments"]
        self.moments = (float(mean), float(std))
