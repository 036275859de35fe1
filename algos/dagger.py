"""DAgger (Ross et al. 2011): roll out a mixture of expert and learner, label every visited state
with the expert's action, train BC on everything labelled so far; repeat.

Read top to bottom: config, the mixture (one batched expert call per vector step), the round loop,
checkpoints, persistence. Differences from imitation's `SimpleDAggerTrainer`:

- `total_timesteps` is an upper bound on the env steps taken (the vec env's counter decides);
- a round's labelled episodes become one new shard of ONE store (`rollouts/` in the run folder,
  `algos.online.growing_store`): no file per episode, no re-flattening of earlier rounds, and BC
  samples from an in-memory buffer that only grows by the new round (`algos.sampler.GrowingSampler`,
  amortised O(new data));
- the same BC (network and optimizer) trains on round after round (`bc_from_scratch` restarts it);
- with a checkpoint folder (`ildata train`), every finished round is saved, and an interrupted
  run resumes from the last one (`ildata train RECIPE --resume RUN`) exactly: it logs the same
  metrics as a run that was never interrupted (the episodes running at the checkpoint are
  replayed from their seeds, `algos.dagger_rollouts`).

Episodes continue across rounds (the vec env is not reset between rounds), so no step is wasted
on episodes cut at a round's end; a round's data is the episodes that finished during it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch

from algos.base import Algorithm, LogFn, register
from algos.bc import BC, BCConfig
from algos.policies import Policy, load_policy
from algos.sampler import GrowingSampler
from ildata.episode import DataError, EpisodeBatch, Obs, flatten_obs, unflatten_obs
from ildata.fsutil import atomic_output
from ildata.store import TrajectoryDataset

if TYPE_CHECKING:
    from algos.dagger_rollouts import RolloutEnv  # imported when training: it needs stable-baselines3

ROLLOUTS_DIR = "rollouts"  # the growing store of labelled rounds, inside the run folder
CHECKPOINT_DIR = "checkpoint"  # the last finished round (removed when the run finishes)


@dataclass
class DAggerConfig:
    """A recipe's `config:` for `algo: dagger`."""

    # Keys of earlier recipes -> their names now (a recipe using one gets told the new name).
    RENAMED: ClassVar[dict[str, str]] = {"num_envs": "n_envs"}

    expert: str = field(
        default="expert:cartpole-ppo", metadata={"path": "if-exists"}
    )  # expert:NAME (shipped), an SB3 zip, or an ildata run folder
    demonstrations: str | None = field(default=None, metadata={"path": True})  # warm-start dataset
    rounds: int = 10
    steps_per_round: int = 2000  # env steps (all sub-envs together)
    total_timesteps: int = 20_000  # upper bound on env steps over all rounds
    n_envs: int = 8
    # beta = probability that the expert's action is executed, per env per step.
    beta_schedule: Literal["linear", "exponential", "constant"] = "linear"
    beta_rampdown_rounds: int = 15  # linear: beta = max(0, 1 - round / beta_rampdown_rounds) (imitation's)
    beta_decay: float = 0.5  # exponential: beta = beta_decay ** round
    beta_value: float = 0.5  # constant: beta = beta_value
    bc: BCConfig = field(default_factory=lambda: BCConfig(n_gradient_steps=1000, log_interval=1000))  # per round
    bc_from_scratch: bool = False  # retrain BC from its initial weights every round

    def __post_init__(self) -> None:
        for name in ("rounds", "steps_per_round", "total_timesteps", "n_envs", "beta_rampdown_rounds"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1")
        for name in ("beta_decay", "beta_value"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DataError(f"{name}: must be within [0, 1]")
        if self.bc.backend != "torch":
            raise DataError("bc.backend: DAgger trains the torch BC incrementally")
        if not self.expert:
            raise DataError("expert: required")

    def beta(self, round_index: int) -> float:
        """The schedule's beta for round `round_index` (0-based)."""
        if self.beta_schedule == "linear":
            return float(min(1.0, max(0.0, 1.0 - round_index / self.beta_rampdown_rounds)))
        if self.beta_schedule == "exponential":
            return float(self.beta_decay**round_index)
        return float(self.beta_value)


# ----------------------------------------------------------------------------- data


def transition_obs(batch: EpisodeBatch) -> Obs:
    """The T observations of every episode that have an action (the final one dropped)."""
    from ildata.store import split_obs

    return unflatten_obs({k: split_obs(v, batch.lengths)[0] for k, v in flatten_obs(batch.obs).items()})


# ----------------------------------------------------------------------------- the mixture


def load_expert(spec: str, env_id: str) -> Policy:
    """The expert as a policy, checked against the env's spaces; DataError names `config.expert`."""
    try:
        return load_policy(spec, env_id=env_id, deterministic=True)
    except DataError as exc:
        raise DataError(f"config.expert: {exc}") from None


class Mixture:
    """Per env per step: execute the expert's action with probability beta, else the learner's.

    Returns the expert's actions (the labels); the executed ones go to `actions_out.executed`
    (`algos.dagger_rollouts.LabelledActions` hands them to the env).
    One batched expert call and at most one batched learner call per vector step.
    """

    def __init__(self, expert: Policy, learner: Policy, actions_out: Any, rng: np.random.Generator) -> None:
        self.expert, self.learner, self.out, self.rng = expert.act, learner, actions_out, rng
        self.beta = 1.0

    def __call__(self, obs: Obs) -> np.ndarray:
        labels = np.asarray(self.expert(obs))
        use_expert = self.rng.random(len(labels)) < self.beta
        if use_expert.all():
            self.out.executed = labels
        else:
            mine = np.asarray(self.learner.act(obs)).astype(labels.dtype, copy=False)
            self.out.executed = np.where(use_expert.reshape((-1,) + (1,) * (labels.ndim - 1)), labels, mine)
        return labels


# ----------------------------------------------------------------------------- algorithm


@register("dagger")
class DAgger(Algorithm):
    """DAgger with the torch BC as its learner; `policy` is the BC policy."""

    Config = DAggerConfig
    needs_dataset = False  # a recipe's `dataset:` is an optional warm start, as `demonstrations`
    resumable: ClassVar[bool] = True
    config: DAggerConfig
    observation_space: gym.Space
    action_space: gym.Space

    def __init__(self, config: DAggerConfig, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        if observation_space is None or action_space is None:
            raise DataError("DAgger needs the observation and action spaces")
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        try:
            self.bc = BC(config.bc, observation_space=observation_space, action_space=action_space, seed=seed)
        except DataError as exc:
            raise DataError(f"bc.{exc}") from None
        self.policy = self.bc.policy
        self.expert: Policy | None = None
        self.demonstrations: TrajectoryDataset | None = None
        self.store_dir: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------------- inputs

    def check_inputs(self, dataset: TrajectoryDataset | None, env_id: str | None) -> None:
        """Load the expert and the warm-start data and check both against the env, before training."""
        import ildata
        from algos.policies import check_env_spaces

        if env_id is None:
            raise DataError("env: DAgger rolls out in an env")
        self.expert = load_expert(self.config.expert, env_id)
        if self.config.demonstrations is not None:
            if dataset is not None:
                raise DataError("config.demonstrations: the recipe already gives a dataset (use one of the two)")
            try:
                dataset = ildata.load(self.config.demonstrations)
            except DataError as exc:
                raise DataError(f"config.demonstrations: {exc}") from None
        if dataset is not None:
            key = "config.demonstrations" if self.config.demonstrations is not None else "dataset"
            if dataset.env_id is not None and dataset.env_id != env_id:
                raise DataError(f"{key}: recorded in {dataset.env_id}, not in the env {env_id}")
            try:
                check_env_spaces(dataset.observation_space, dataset.action_space, env_id, what=key)
            except DataError as exc:
                raise DataError(str(exc)) from None
        self.demonstrations = dataset
        self.env_id = env_id

    def reference_returns(self, env_id: str, episodes: int, seed: int) -> dict[str, float | None]:
        """The expert's and a random policy's mean returns, on the evaluation's seeds."""
        from algos.policies import measured_reference_returns

        expert = self.expert or load_expert(self.config.expert, env_id)
        return measured_reference_returns(expert, env_id, episodes, seed, self.observation_space, self.action_space)

    # ------------------------------------------------------------------------- training

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        from algos.dagger_rollouts import RolloutEnv
        from algos.online.budget import StepBudget
        from algos.online.growing_store import GrowingStore

        cfg = self.config
        env_id = env_id or self.env_id or (dataset.env_id if dataset is not None else None)
        if self.expert is None or self.env_id != env_id:
            self.check_inputs(dataset, env_id)
        assert self.expert is not None and env_id is not None
        work = self.checkpoint_dir
        if work is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dagger-")
            work = Path(self._tmp.name)
        store = GrowingStore(work / ROLLOUTS_DIR)
        self.store_dir = store.root

        sampler = GrowingSampler(self.observation_space, self.action_space, cfg.bc.batch_size, self.seed)
        if self.demonstrations is not None:
            tr = self.demonstrations.transitions()
            sampler.extend(tr.obs, np.asarray(tr.acts))
        rng = np.random.default_rng([self.seed, 1])
        envs = RolloutEnv(env_id, cfg.n_envs, self.seed)
        state = self._restore(work, store, sampler, rng, envs, log)
        budget = StepBudget(envs.recorder, cfg.total_timesteps - state["env_steps"])
        assert self.bc.policy is not None
        mixture = Mixture(self.expert, self.bc.policy, envs.labelled, rng)
        metrics: dict[str, float] = state["rows"][-1][1] if state["rows"] else {}
        for round_index in range(state["round"], cfg.rounds):
            allowed = budget.allow(cfg.steps_per_round)
            if allowed < cfg.n_envs:
                break
            mixture.beta = cfg.beta(round_index)
            self.bc.net.eval()
            envs.run(mixture, allowed)
            batch = envs.recorder.pop_batch()
            metrics = {"round": float(round_index), "beta": mixture.beta}
            if batch is not None:
                store.append(batch, observation_space=self.observation_space, action_space=self.action_space, env_id=env_id)
                sampler.extend(transition_obs(batch), batch.acts)
                metrics["rollout_return_mean"] = float(np.mean(np.asarray(batch.returns())))
                metrics["episodes"] = float(batch.num_episodes)
            if sampler.n:
                metrics.update(self._train_round(sampler))
            state["env_steps"] += budget.used - state["budget_used"]
            state["budget_used"] = budget.used
            metrics["env_steps"] = float(state["env_steps"])
            metrics["labelled_steps"] = float(store.num_transitions)
            metrics["bc_samples"] = float(sampler.n)
            state["round"] = round_index + 1
            state["rows"].append((state["env_steps"], metrics))
            if self.checkpoint_dir is not None:
                self._checkpoint(work, store, sampler, rng, envs, state)
            if log is not None:
                log(state["env_steps"], metrics)
        budget.check()
        envs.close()
        return metrics

    def _train_round(self, sampler: GrowingSampler) -> dict[str, float]:
        """BC on everything labelled so far: `bc.n_gradient_steps` more steps, their mean losses."""
        cfg = self.config.bc
        if self.config.bc_from_scratch:
            fresh = BC(cfg, observation_space=self.observation_space, action_space=self.action_space, seed=self.seed)
            self.bc.net.load_state_dict(fresh.net.state_dict())
            self.bc.optimizer = None
        if cfg.normalize_obs:
            mean, std = sampler.moments()
            self.bc.net.obs_mean.copy_(torch.from_numpy(mean))
            self.bc.net.obs_std.copy_(torch.from_numpy(std))
        sums: dict[str, float] = {}
        rows = 0

        def collect(step: int, m: dict[str, float]) -> None:
            nonlocal rows
            rows += 1
            for k in ("loss", "neglogp", "prob_true_act"):
                sums[k] = sums.get(k, 0.0) + m[k]

        self.bc.train_steps(sampler, cfg.n_gradient_steps, env_id=None, log=collect)
        return {f"bc_{k}": v / rows for k, v in sums.items()}

    # ------------------------------------------------------------------------- checkpoints

    def _checkpoint(
        self, work: Path, store: Any, sampler: GrowingSampler, rng: np.random.Generator, envs: RolloutEnv, state: dict[str, Any]
    ) -> None:
        """Save the finished round atomically: everything a resumed run needs to go on as this one will.

        BC's weights and optimizer, the sampler's place in its epoch, the mixture's RNG, the
        episodes running in the envs, the metrics so far, and the store's meta files.
        """
        with atomic_output(work / CHECKPOINT_DIR, overwrite=True) as tmp:
            torch.save(self.bc.net.state_dict(), tmp / "bc.pt")
            if self.bc.optimizer is not None:
                torch.save(self.bc.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(sampler.state_dict(), tmp / "sampler.pt")
            envs.save(tmp)
            if store.exists:
                store.snapshot_meta(tmp / "store")
            saved = {
                **{k: v for k, v in state.items() if k != "rows"},
                "rows": [[step, m] for step, m in state["rows"]],
                "mixture_rng": rng.bit_generator.state,
            }
            (tmp / "state.json").write_text(json.dumps(saved))

    def _restore(
        self, work: Path, store: Any, sampler: GrowingSampler, rng: np.random.Generator, envs: RolloutEnv, log: LogFn | None
    ) -> dict[str, Any]:
        """The state after the last finished round in `work` (a fresh one when there is none)."""
        from algos.dagger_rollouts import UNFINISHED_FILE

        fresh: dict[str, Any] = {"round": 0, "env_steps": 0, "budget_used": 0, "rows": []}
        checkpoint = work / CHECKPOINT_DIR
        if self.checkpoint_dir is None or not (checkpoint / "state.json").is_file():
            store.restore_meta(None)  # rounds of an interrupted first round are dropped
            return fresh
        if not (checkpoint / UNFINISHED_FILE).is_file():
            raise DataError(
                "--resume: the checkpoint lacks the episodes that were running (an older ildata wrote it): train again with --overwrite",
                subject=checkpoint,
            )
        import ildata

        saved = json.loads((checkpoint / "state.json").read_text())
        store.restore_meta(checkpoint / "store" if (checkpoint / "store").is_dir() else None)
        if store.exists:
            tr = ildata.load(store.root).transitions()  # once per resume
            sampler.extend(tr.obs, np.asarray(tr.acts))
        sampler.load_state_dict(torch.load(checkpoint / "sampler.pt", map_location="cpu", weights_only=True))
        self.bc.net.load_state_dict(torch.load(checkpoint / "bc.pt", map_location="cpu", weights_only=True))
        if (checkpoint / "optimizer.pt").is_file():
            self.bc.optimizer = self.bc.new_optimizer()
            self.bc.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))
        rng.bit_generator.state = saved["mixture_rng"]
        envs.restore(checkpoint)
        rows = [(int(step), {k: float(v) for k, v in m.items()}) for step, m in saved["rows"]]
        for step, m in rows:
            if log is not None:
                log(step, m)
        return {**{k: saved[k] for k in fresh if k != "rows"}, "budget_used": 0, "rows": rows}

    # ------------------------------------------------------------------------- persistence

    def _save_state(self, run_dir: Path) -> None:
        """BC's policy under `policy/`, and the labelled rounds as a store under `rollouts/`."""
        self.bc._save_state(run_dir)
        target = run_dir / ROLLOUTS_DIR
        if self.store_dir is not None and self.store_dir.exists() and self.store_dir.resolve() != target.resolve():
            shutil.copytree(self.store_dir, target, dirs_exist_ok=True)

    def _load_state(self, run_dir: Path) -> None:
        self.bc._load_state(run_dir)
        self.policy = self.bc.policy
        if (run_dir / ROLLOUTS_DIR).is_dir():
            self.store_dir = run_dir / ROLLOUTS_DIR
