"""Behavioural cloning, readable top to bottom (CleanRL style).

Same objective as imitation's `BC`:

    loss = neglogp - ent_weight * entropy + l2_weight * l2_norm,   l2_norm = sum ||w||^2 / 2

over minibatches of (obs, action) from a store, with a categorical head for Discrete actions
and a diagonal Gaussian (state-independent log std, as SB3's) or a deterministic head for Box
actions. The deterministic head is a Gaussian whose std is fixed to 1, so its neglogp is
0.5 * squared error + const: plain regression, reported with the same metrics.

`backend: d3rlpy` trains d3rlpy's `BC` / `DiscreteBC` on the same dataset instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from algos.base import Algorithm, LogFn, quiet_import, register
from algos.policies import POLICY_LOADERS, Policy, PolicyMeta, evaluate, load_policy, write_policy_meta
from algos.sampler import TransitionSampler, feature_dim, obs_features, space_leaves
from ildata.episode import DataError, Obs, flatten_obs
from ildata.store import TrajectoryDataset

WEIGHTS_FILE = "weights.pt"
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
        "normalize_obs": "standardise",
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
    standardise: bool = False  # standardise features with the dataset's mean/std
    log_interval: int = 500  # gradient steps between metric rows (metrics are averaged over them)
    rollout_interval: int = 0  # gradient steps between rollouts in the env during training; 0: none
    rollout_episodes: int = 5

    def __post_init__(self) -> None:
        for name in ("batch_size", "n_gradient_steps", "log_interval", "rollout_episodes"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1")
        if self.learning_rate <= 0:
            raise DataError("learning_rate: must be positive")
        if self.rollout_interval < 0:
            raise DataError("rollout_interval: must be >= 0")
        if any(h < 1 for h in self.hidden_sizes):
            raise DataError("hidden_sizes: layer sizes must be positive")


# ----------------------------------------------------------------------------- network

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def resolve_head(head: str, action_space: gym.Space) -> str:
    """`auto` -> categorical for Discrete actions, gaussian for Box; reject mismatches."""
    from gymnasium import spaces

    discrete = isinstance(action_space, spaces.Discrete)
    if not discrete and not isinstance(action_space, spaces.Box):
        raise DataError(f"head: BC supports Discrete and Box actions, not {action_space}")
    if head == "auto":
        return "categorical" if discrete else "gaussian"
    if (head == "categorical") != discrete:
        raise DataError(f"head: {head} does not fit action space {action_space}")
    return head


class PolicyNet(nn.Module):
    """MLP from features to logits (categorical) or action means (Gaussian)."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(self, in_dim: int, hidden_sizes: list[int], activation: str, head: str, out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)
        self.head = head
        # SB3's DiagGaussian: one learned log std per action dimension, not state-dependent.
        self.log_std = nn.Parameter(torch.zeros(out_dim), requires_grad=head == "gaussian")
        self.register_buffer("obs_mean", torch.zeros(in_dim))
        self.register_buffer("obs_std", torch.ones(in_dim))

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        out = self.mlp((features - self.obs_mean) / self.obs_std)
        if self.head == "categorical":
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Independent(torch.distributions.Normal(out, self.log_std.exp()), 1)


def l2_norm(net: nn.Module) -> torch.Tensor:
    """imitation's l2 term: half the sum of squared trainable weights."""
    return sum((p.square().sum() for p in net.parameters() if p.requires_grad), torch.zeros(())) / 2


# ----------------------------------------------------------------------------- policy


class MLPPolicy(Policy):
    """A trained `PolicyNet` as a callable: mode of the distribution, or a seeded sample."""

    def __init__(
        self, net: PolicyNet, observation_space: gym.Space, action_space: gym.Space, deterministic: bool = True, seed: int = 0
    ) -> None:
        super().__init__(observation_space, action_space, deterministic)
        self.net = net.eval()
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, obs: Obs) -> np.ndarray:
        features = torch.from_numpy(obs_features(obs, self.observation_space))
        if self.deterministic:
            # The mode straight from the network: building a distribution object per call cost
            # more than the forward pass itself in DAgger's per-step loop.
            out = self.net.mlp((features - self.net.obs_mean) / self.net.obs_std)
            if self.net.head == "categorical":
                space = cast(gym.spaces.Discrete, self.action_space)
                return out.argmax(1).numpy().astype(space.dtype) + space.start
            box = cast(gym.spaces.Box, self.action_space)
            return np.clip(out.numpy().reshape((-1, *box.shape)).astype(box.dtype), box.low, box.high)
        dist = self.net.distribution(features)
        if self.net.head == "categorical":
            space = cast(gym.spaces.Discrete, self.action_space)
            probs = cast(torch.distributions.Categorical, dist).probs
            idx = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
            return idx.numpy().astype(space.dtype) + space.start
        box = cast(gym.spaces.Box, self.action_space)
        base = cast(torch.distributions.Independent, dist).base_dist
        action = base.loc
        if self.net.head == "gaussian":
            action = action + base.scale * torch.randn(action.shape, generator=self.generator)
        out = action.numpy().reshape((-1, *box.shape)).astype(box.dtype)
        return np.clip(out, box.low, box.high)


@POLICY_LOADERS.register("mlp")
def load_mlp_policy(policy_dir: Path, meta: PolicyMeta) -> MLPPolicy:
    """Rebuild a saved BC policy from `policy.json` + `weights.pt` (a plain state dict)."""
    arch = meta["architecture"]
    net = PolicyNet(arch["in_dim"], arch["hidden_sizes"], arch["activation"], arch["head"], arch["out_dim"])
    state = torch.load(policy_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return MLPPolicy(net, meta["observation_space"], meta["action_space"])


# ----------------------------------------------------------------------------- training


def feature_moments(obs: Obs, observation_space: gym.Space, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the feature matrix, in chunks so a 2M-step store is never copied whole."""
    n = len(next(iter(flatten_obs(obs).values())))
    total = np.zeros(feature_dim(observation_space))
    squares = np.zeros_like(total)
    for start in range(0, n, chunk):
        part = obs_features({k: v[start : start + chunk] for k, v in flatten_obs(obs).items()}, observation_space)
        total += part.sum(0, dtype=np.float64)
        squares += np.square(part, dtype=np.float64).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
    return mean, np.where(std < 1e-6, 1.0, std)


@register("bc")
class BC(Algorithm):
    """Behavioural cloning from a store's transitions."""

    Config = BCConfig
    # How minibatches are drawn; a class attribute so the throughput benchmark can time or
    # swap it (benchmarks/bc_throughput.py) without a second copy of the training loop.
    sampler_cls: ClassVar[type[TransitionSampler]] = TransitionSampler

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
        self.policy = MLPPolicy(self.net, observation_space, action_space, seed=seed)
        self.optimizer: torch.optim.Optimizer | None = None  # created by the first `train_steps`
        self._d3rlpy: Any = None

    def fit(self, dataset: TrajectoryDataset | None, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        if dataset is None:
            raise DataError("BC learns from a dataset")
        self.env_id = env_id or dataset.env_id
        if self.config.backend == "d3rlpy":
            return self._fit_d3rlpy(dataset, env_id=env_id, log=log)
        cfg = self.config
        transitions = dataset.transitions()
        if cfg.standardise:
            mean, std = feature_moments(transitions.obs, self.observation_space)
            self.net.obs_mean.copy_(torch.from_numpy(mean))
            self.net.obs_std.copy_(torch.from_numpy(std))
        sampler = self.sampler_cls(transitions, self.observation_space, self.action_space, cfg.batch_size, self.seed)
        return self.train_steps(sampler, cfg.n_gradient_steps, env_id=env_id, log=log)

    def train_steps(
        self, sampler: TransitionSampler, n_steps: int, *, env_id: str | None = None, log: LogFn | None = None, first_step: int = 1
    ) -> dict[str, float]:
        """`n_steps` gradient steps on `sampler`'s batches, logged as steps `first_step`, ...

        The optimizer persists between calls, so DAgger trains the same BC incrementally round
        after round (DAgger checkpoints `optimizer.state_dict()` with the weights).
        """
        cfg = self.config
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=cfg.learning_rate)
        optimizer = self.optimizer
        sums: dict[str, float] = {}
        count = 0
        metrics: dict[str, float] = {}
        self.net.train()
        last = first_step + n_steps - 1
        for step in range(first_step, last + 1):
            batch = sampler.sample()
            dist = self.net.distribution(batch.obs)
            log_prob = dist.log_prob(batch.acts)
            neglogp = -log_prob.mean()
            entropy = dist.entropy().mean()
            l2 = l2_norm(self.net)
            loss = neglogp - cfg.ent_weight * entropy + cfg.l2_weight * l2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            with torch.no_grad():
                values = {
                    "loss": loss.item(),
                    "neglogp": neglogp.item(),
                    "entropy": entropy.item(),
                    "l2_norm": l2.item(),
                    "prob_true_act": log_prob.exp().mean().item(),
                }
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if step % cfg.log_interval == 0 or step == last:
                metrics = {"epoch": float(sampler.epoch), **{k: v / count for k, v in sums.items()}}
                sums, count = {}, 0
                if env_id and cfg.rollout_interval and (step % cfg.rollout_interval == 0 or step == last):
                    metrics.update(self._rollout_metrics(env_id))
                if log is not None:
                    log(step, metrics)
        self.net.eval()
        return metrics

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
        d3rlpy = quiet_import("d3rlpy")

        encoder = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=list(self.config.hidden_sizes))
        common = dict(batch_size=self.config.batch_size, learning_rate=self.config.learning_rate, encoder_factory=encoder)
        if self.head == "categorical":
            return d3rlpy.algos.DiscreteBCConfig(**common)
        policy_type = "deterministic" if self.head == "deterministic" else "stochastic"
        return d3rlpy.algos.BCConfig(policy_type=policy_type, **common)

    def _fit_d3rlpy(self, dataset: TrajectoryDataset, *, env_id: str | None, log: LogFn | None) -> dict[str, float]:
        d3rlpy = quiet_import("d3rlpy")

        from algos.d3rlpy_adapter import to_mdp_dataset

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


class D3rlpyPolicy(Policy):
    """A d3rlpy BC/DiscreteBC model's `predict` (always its deterministic action)."""

    def __init__(self, model: Any, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(observation_space, action_space, deterministic=True)
        self.model = model

    def act(self, obs: Obs) -> np.ndarray:
        action = np.asarray(self.model.predict(d3rlpy_observation(obs, self.observation_space)))
        if isinstance(self.action_space, gym.spaces.Discrete):
            return action.astype(self.action_space.dtype) + self.action_space.start
        box = cast(gym.spaces.Box, self.action_space)
        action = action.reshape((-1, *box.shape)).astype(box.dtype)
        return np.clip(action, box.low, box.high)


def d3rlpy_observation(obs: Obs, space: gym.Space) -> np.ndarray | list[np.ndarray]:
    """Observations as `algos.d3rlpy_adapter` gives them to d3rlpy: one array, or one per leaf."""
    flat = flatten_obs(obs)
    arrays = [np.asarray(flat[key], dtype=np.float32) for key, _ in space_leaves(space)]
    return arrays[0] if len(arrays) == 1 else arrays


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
