"""Behavioural cloning, readable top to bottom (CleanRL style).

Same objective as imitation's `BC`:

    loss = neglogp - ent_weight * entropy + l2_weight * l2_norm,   l2_norm = sum ||w||^2 / 2

over minibatches of (obs, action) from a store, with a categorical head for Discrete actions
and a diagonal Gaussian (state-independent log std, as SB3's) or a deterministic head for Box
actions. The deterministic head is a Gaussian whose std is fixed to 1, so its neglogp is
0.5 * squared error + const: plain regression, reported with the same metrics.

`backend: d3rlpy` trains d3rlpy's `BC` / `DiscreteBC` on the same dataset instead.

This file is the algorithm (config, training loop, checkpoints, persistence); the network and the
closed-form loss terms are `algos.mlp_policy`, minibatches `algos.sampler`, the way to and from
d3rlpy `algos.d3rlpy_adapter`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import gymnasium as gym
import numpy as np
import torch

from algos.base import Algorithm, LogFn, quiet_import, register
from algos.d3rlpy_adapter import D3rlpyPolicy, bc_config, d3rlpy_observation, to_mdp_dataset
from algos.mlp_policy import WEIGHTS_FILE, MLPPolicy, PolicyNet, batch_terms, l2_norm, load_mlp_policy, resolve_head
from algos.policies import POLICY_LOADERS, PolicyMeta, evaluate, load_policy, write_policy_meta
from algos.sampler import Batch, TensorSampler, TransitionSampler, feature_dim, feature_moments, space_leaves, to_tensors
from ildata.episode import DataError
from ildata.store import TrajectoryDataset

# Names that moved to algos.mlp_policy, algos.sampler and algos.d3rlpy_adapter, importable from here as before.
__all__ = [
    "BC",
    "BCConfig",
    "D3rlpyPolicy",
    "MLPPolicy",
    "PolicyNet",
    "batch_terms",
    "d3rlpy_observation",
    "feature_moments",
    "l2_norm",
    "load_d3rlpy_policy",
    "load_mlp_policy",
    "resolve_head",
    "split_validation",
]

CHECKPOINT_DIR = "checkpoint"  # under `checkpoint_dir` (RUN.partial/): the last checkpoint (as DAgger's)
CHECKPOINT_FILE = "bc_state.pt"
METRIC_NAMES = ("loss", "neglogp", "entropy", "l2_norm", "prob_true_act")  # averaged over a row's steps
D3RLPY_FILE = "d3rlpy_model.pt"


# ----------------------------------------------------------------------------- configuration


@dataclass
class BCConfig:
    """Every knob a recipe's `config:` may set (defaults: imitation's BC)."""

    # Keys of earlier recipes -> their names now (a recipe using one gets told the new name).
    RENAMED: ClassVar[dict[str, str]] = {
        "n_steps": "n_gradient_steps",
        "hidden": "hidden_sizes",
        "lr": "learning_rate",
        "standardise": "normalize_obs",
    }

    backend: Literal["torch", "d3rlpy"] = "torch"
    hidden_sizes: list[int] = field(default_factory=lambda: [32, 32])  # imitation's default policy MLP
    activation: Literal["tanh", "relu"] = "tanh"  # SB3's ActorCriticPolicy default
    head: Literal["auto", "categorical", "gaussian", "deterministic"] = "auto"
    batch_size: int = 32
    n_gradient_steps: int = 5000
    learning_rate: float = 1e-3
    ent_weight: float = 1e-3
    l2_weight: float = 0.0
    normalize_obs: bool = False  # feed the network (features - mean) / std of the dataset's features
    log_interval: int = 500  # gradient steps between metric rows (metrics are averaged over them)
    rollout_interval: int = 0  # gradient steps between rollouts in the env during training; 0: none
    rollout_episodes: int = 5
    # Share of the dataset's episodes held out (an episode-level split seeded by the run's seed):
    # `val_loss` and `val_prob_true_act` on them are logged with every metrics row. 0: none.
    validation_fraction: float = 0.0
    # Gradient steps between checkpoints (`ildata train` saves them in RUN.partial/; `--resume RUN`
    # continues from the last one). 0: none.
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        for name in ("batch_size", "n_gradient_steps", "log_interval", "rollout_episodes"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise DataError(f"validation_fraction: must be in [0, 1), got {self.validation_fraction}")
        if self.checkpoint_every < 0:
            raise DataError("checkpoint_every: must be >= 0")
        if self.learning_rate <= 0:
            raise DataError("learning_rate: must be positive")
        if self.rollout_interval < 0:
            raise DataError("rollout_interval: must be >= 0")
        if any(h < 1 for h in self.hidden_sizes):
            raise DataError("hidden_sizes: layer sizes must be positive")


# ----------------------------------------------------------------------------- algorithm


@register("bc")
class BC(Algorithm):
    """Behavioural cloning from a store's transitions."""

    Config = BCConfig
    # How minibatches are drawn; a class attribute so the throughput benchmark can time or
    # swap it (benchmarks/bc_throughput.py) without a second copy of the training loop.
    sampler_cls: ClassVar[type[TransitionSampler]] = TensorSampler
    # Checkpoints every `checkpoint_every` steps in `checkpoint_dir`; `fit` continues from one.
    resumable: ClassVar[bool] = True

    config: BCConfig
    observation_space: gym.Space
    action_space: gym.Space

    def __init__(self, config: BCConfig, *, observation_space: gym.Space | None, action_space: gym.Space | None, seed: int = 0) -> None:
        if observation_space is None or action_space is None:
            raise DataError("BC needs the observation and action spaces")
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.head = resolve_head(config.head, action_space)
        self.out_dim = (
            int(cast(gym.spaces.Discrete, action_space).n) if self.head == "categorical" else int(np.prod(action_space.shape or ()))
        )
        self.in_dim = feature_dim(observation_space)
        torch.manual_seed(seed)  # the initial weights depend only on the seed
        self.net = PolicyNet(self.in_dim, list(config.hidden_sizes), config.activation, self.head, self.out_dim)
        self.net.normalize_obs = config.normalize_obs
        self.policy = MLPPolicy(self.net, observation_space, action_space, seed=seed)
        self.optimizer: torch.optim.Optimizer | None = None  # created by the first `train_steps`
        self._d3rlpy: Any = None
        self.validation: Batch | None = None  # held-out episodes' features and actions
        # Metric sums since the last row, and their count: kept across `train_steps` calls and
        # in checkpoints, so a resumed run logs the same rows as an uninterrupted one.
        self._sums: torch.Tensor | None = None
        self._count = 0
        self._rows: list[tuple[int, dict[str, float]]] = []
        self._sampler: TransitionSampler | None = None

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        if dataset is None:
            raise DataError("BC learns from a dataset")
        self.env_id = env_id or dataset.env_id
        if self.config.backend == "d3rlpy":
            return self._fit_d3rlpy(dataset, env_id=env_id, log=log)
        cfg = self.config
        if cfg.validation_fraction > 0:
            dataset, held_out = split_validation(dataset, cfg.validation_fraction, self.seed)
            val = held_out.transitions()
            self.validation = to_tensors(val.obs, np.asarray(val.acts), self.observation_space, self.action_space)
        transitions = dataset.transitions()
        if cfg.normalize_obs:
            mean, std = feature_moments(transitions.obs, self.observation_space)
            self.net.obs_mean.copy_(torch.from_numpy(mean))
            self.net.obs_std.copy_(torch.from_numpy(std))
        cls = self.sampler_cls
        if issubclass(cls, TensorSampler) and not TensorSampler.fits(transitions, self.observation_space):
            cls = TransitionSampler  # too big to hold as tensors: gather from the mapped store
        sampler = cls(transitions, self.observation_space, self.action_space, cfg.batch_size, self.seed)
        self._sampler = sampler
        done = self._restore(sampler, log)
        return self.train_steps(sampler, cfg.n_gradient_steps - done, env_id=env_id, log=log, first_step=done + 1)

    def train_steps(
        self, sampler: TransitionSampler, n_steps: int, *, env_id: str | None = None, log: LogFn | None = None, first_step: int = 1
    ) -> dict[str, float]:
        """`n_steps` gradient steps on `sampler`'s batches, logged as steps `first_step`, ...

        The optimizer persists between calls, so DAgger trains the same BC incrementally round
        after round (DAgger checkpoints `optimizer.state_dict()` with the weights).
        """
        cfg = self.config
        if self.optimizer is None:
            self.optimizer = self.new_optimizer()
        optimizer = self.optimizer
        params: list[torch.Tensor] = [p for p in self.net.parameters() if p.requires_grad]
        metrics: dict[str, float] = {}
        self.net.train()
        last = first_step + n_steps - 1
        for step in range(first_step, last + 1):
            batch = sampler.sample()
            log_prob, entropy = batch_terms(self.net, batch.obs, batch.acts)
            neglogp = -log_prob.mean()
            if cfg.l2_weight:
                l2 = l2_norm(self.net)
                loss = neglogp - cfg.ent_weight * entropy + cfg.l2_weight * l2
            else:
                loss = neglogp - cfg.ent_weight * entropy
            for p in params:  # what zero_grad() does, without its per-call profiler hooks
                p.grad = None
            loss.backward()
            with torch.no_grad():
                if not cfg.l2_weight:  # logged only: kept off the autograd graph
                    l2 = torch.stack(torch._foreach_norm(params)).square().sum() / 2
                # Sums stay tensors: one sync per metrics row, not one `.item()` per metric per step.
                stats = torch.stack((loss, neglogp, entropy, l2, log_prob.exp().mean()))
                self._sums = stats if self._sums is None else self._sums.add_(stats)
            self._count += 1
            optimizer.step()
            if step % cfg.log_interval == 0 or step == last:
                assert self._sums is not None
                means = (self._sums / self._count).tolist()
                self._sums, self._count = None, 0
                metrics = {"epoch": float(sampler.epoch), **dict(zip(METRIC_NAMES, means))}
                metrics.update(self.validation_metrics())
                if env_id and cfg.rollout_interval and (step % cfg.rollout_interval == 0 or step == last):
                    metrics.update(self._rollout_metrics(env_id))
                self._rows.append((step, metrics))
                if log is not None:
                    log(step, metrics)
            if self.checkpoint_dir is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step != last:
                self._checkpoint(step, sampler)
        self.net.eval()
        return metrics

    def new_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the trainable weights; fused: one kernel for all of them, not a Python loop per step."""
        return torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=self.config.learning_rate, fused=True)

    @torch.no_grad()
    def validation_metrics(self, chunk: int = 1 << 16) -> dict[str, float]:
        """The training objective (l2 term included) and prob_true_act on the held-out episodes."""
        if self.validation is None:
            return {}
        was_training = self.net.training
        self.net.eval()
        cfg = self.config
        n = self.validation.acts.shape[0]
        totals = torch.zeros(3, dtype=torch.float64)
        for start in range(0, n, chunk):
            obs, acts = self.validation.obs[start : start + chunk], self.validation.acts[start : start + chunk]
            log_prob, entropy = batch_terms(self.net, obs, acts)
            totals += torch.stack((-log_prob.sum(), entropy * len(acts), log_prob.exp().sum())).double()
        neglogp, entropy_mean, prob = (totals / n).tolist()
        l2 = float(l2_norm(self.net)) if cfg.l2_weight else 0.0
        self.net.train(was_training)
        return {"val_loss": neglogp - cfg.ent_weight * entropy_mean + cfg.l2_weight * l2, "val_prob_true_act": prob}

    # ------------------------------------------------------------------------- checkpoints

    def _checkpoint(self, step: int, sampler: TransitionSampler) -> None:
        """Weights, optimizer, sampler position and the metrics so far, atomically."""
        from ildata.fsutil import atomic_output

        assert self.checkpoint_dir is not None and self.optimizer is not None
        state = {
            "step": step,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": sampler.state_dict(),
            "sums": self._sums,
            "count": self._count,
            "rows": [[s, m] for s, m in self._rows],
        }
        with atomic_output(self.checkpoint_dir / CHECKPOINT_DIR, overwrite=True) as tmp:
            torch.save(state, tmp / CHECKPOINT_FILE)

    def _restore(self, sampler: TransitionSampler, log: LogFn | None) -> int:
        """Continue from the checkpoint in `checkpoint_dir`, if any: the gradient steps it had done."""
        path = self.checkpoint_dir / CHECKPOINT_DIR / CHECKPOINT_FILE if self.checkpoint_dir is not None else None
        if path is None or not path.is_file():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state["net"])
        self.optimizer = self.new_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        self._sums, self._count = state["sums"], int(state["count"])
        self._rows = [(int(s), {k: float(v) for k, v in m.items()}) for s, m in state["rows"]]
        for s, m in self._rows:  # the rows before the checkpoint, for the run's metrics.csv
            if log is not None:
                log(s, m)
        return int(state["step"])

    def _rollout_metrics(self, env_id: str) -> dict[str, float]:
        """Return of the current policy in the env (fixed seeds, so runs stay reproducible)."""
        assert self.policy is not None
        self.net.eval()
        result = evaluate(self.policy, env_id, self.config.rollout_episodes, seed=self.seed + 1_000_000)
        self.net.train()
        return {"rollout_return_mean": result["mean"], "rollout_return_std": result["std"]}

    # ------------------------------------------------------------------------- d3rlpy backend

    def _d3rlpy_config(self) -> Any:
        """d3rlpy's own BC config with the recipe's batch size, learning rate and MLP widths."""
        cfg = self.config
        return bc_config(self.head, list(cfg.hidden_sizes), cfg.batch_size, cfg.learning_rate)

    def _fit_d3rlpy(self, dataset: TrajectoryDataset, *, env_id: str | None, log: LogFn | None) -> dict[str, float]:
        d3rlpy = quiet_import("d3rlpy")
        d3rlpy.seed(self.seed)
        mdp = to_mdp_dataset(dataset)
        self._d3rlpy = self._d3rlpy_config().create(device="cpu:0")
        cfg = self.config
        metrics: dict[str, float] = {}
        step = 0
        for epoch, epoch_metrics in self._d3rlpy.fitter(
            mdp,
            n_steps=cfg.n_gradient_steps,
            n_steps_per_epoch=min(cfg.log_interval, cfg.n_gradient_steps),
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            show_progress=False,
        ):
            step = min(epoch * cfg.log_interval, cfg.n_gradient_steps)
            # d3rlpy's time_* entries are wall-clock: leaving them out keeps metrics.csv reproducible.
            losses = {k: float(v) for k, v in epoch_metrics.items() if not k.startswith("time_")}
            metrics = {"epoch": float(epoch), **losses}
            self.policy = D3rlpyPolicy(self._d3rlpy, self.observation_space, self.action_space)
            if env_id and cfg.rollout_interval and (step % cfg.rollout_interval == 0 or step == cfg.n_gradient_steps):
                result = evaluate(self.policy, env_id, cfg.rollout_episodes, seed=self.seed + 1_000_000)
                metrics.update(rollout_return_mean=result["mean"], rollout_return_std=result["std"])
            if log is not None:
                log(step, metrics)
        return metrics

    # ------------------------------------------------------------------------- persistence

    def _save_state(self, run_dir: Path) -> None:
        """The policy under `policy/`: torch weights, or the d3rlpy model (both loadable alone)."""
        policy_dir = run_dir / "policy"
        policy_dir.mkdir(parents=True, exist_ok=True)
        if self._d3rlpy is not None:
            self._d3rlpy.save_model(str(policy_dir / D3RLPY_FILE))
            write_policy_meta(policy_dir, "d3rlpy", self.observation_space, self.action_space, config=asdict(self.config))
            return
        torch.save(self.net.state_dict(), policy_dir / WEIGHTS_FILE)
        write_policy_meta(
            policy_dir,
            "mlp",
            self.observation_space,
            self.action_space,
            architecture={
                "in_dim": self.in_dim,
                "hidden_sizes": list(self.config.hidden_sizes),
                "activation": self.config.activation,
                "head": self.head,
                "out_dim": self.out_dim,
            },
        )

    def _load_state(self, run_dir: Path) -> None:
        if self.config.backend == "d3rlpy":
            policy = load_policy(run_dir)
            assert isinstance(policy, D3rlpyPolicy)
            self._d3rlpy, self.policy = policy.model, policy
            return
        state = torch.load(run_dir / "policy" / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()


def split_validation(dataset: TrajectoryDataset, fraction: float, seed: int) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """(training, held-out) episodes: whole episodes, so no held-out state has a neighbour in training."""
    train, held_out = dataset.split(1.0 - fraction, seed=seed)
    if len(held_out) == 0 or len(train) == 0:
        raise DataError(
            f"validation_fraction: {fraction} of {len(dataset)} episodes leaves "
            f"{len(train)} for training and {len(held_out)} for validation (each needs at least one)"
        )
    return train, held_out


@POLICY_LOADERS.register("d3rlpy")
def load_d3rlpy_policy(policy_dir: Path, meta: PolicyMeta) -> D3rlpyPolicy:
    """Rebuild the d3rlpy model from its BC config, then load its state dicts (torch weights only)."""
    from algos.recipe import build_dataclass

    config = build_dataclass(BCConfig, meta["config"], "config")
    algo = BC(config, observation_space=meta["observation_space"], action_space=meta["action_space"])
    model = algo._d3rlpy_config().create(device="cpu:0")
    action_size = algo.out_dim
    shapes = [tuple(leaf.shape) for _, leaf in space_leaves(meta["observation_space"])]
    model.create_impl(shapes[0] if len(shapes) == 1 else shapes, action_size)
    model.load_model(str(policy_dir / D3RLPY_FILE))
    return D3rlpyPolicy(model, meta["observation_space"], meta["action_space"])
