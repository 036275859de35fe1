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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from algos.base import Algorithm, LogFn, quiet_import, register
from algos.policies import Policy, evaluate, write_policy_meta
from algos.sampler import TransitionSampler, feature_dim, obs_features, space_leaves
from ildata.episode import DataError, Obs, flatten_obs

WEIGHTS_FILE = "weights.pt"
D3RLPY_FILE = "d3rlpy_model.pt"


# ----------------------------------------------------------------------------- configuration


@dataclass
class BCConfig:
    """Every knob a recipe's `config:` may set (defaults: imitation's BC)."""

    backend: Literal["torch", "d3rlpy"] = "torch"
    hidden: list[int] = field(default_factory=lambda: [32, 32])  # imitation's default policy MLP
    activation: Literal["tanh", "relu"] = "tanh"  # SB3's ActorCriticPolicy default
    head: Literal["auto", "categorical", "gaussian", "deterministic"] = "auto"
    batch_size: int = 32
    n_steps: int = 5000  # gradient steps
    lr: float = 1e-3
    ent_weight: float = 1e-3
    l2_weight: float = 0.0
    normalize_obs: bool = False  # standardise features with the dataset's mean/std
    log_interval: int = 500  # steps between metric rows (metrics are averaged over them)
    rollout_interval: int = 0  # steps between rollouts in the env during training; 0: none
    rollout_episodes: int = 5

    def __post_init__(self) -> None:
        for name in ("batch_size", "n_steps", "log_interval", "rollout_episodes"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1")
        if self.lr <= 0:
            raise DataError("lr: must be positive")
        if self.rollout_interval < 0:
            raise DataError("rollout_interval: must be >= 0")
        if any(h < 1 for h in self.hidden):
            raise DataError("hidden: layer sizes must be positive")


# ----------------------------------------------------------------------------- network

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def resolve_head(head: str, action_space: Any) -> str:
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

    def __init__(self, in_dim: int, hidden: list[int], activation: str, head: str, out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
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
    return sum(p.square().sum() for p in net.parameters() if p.requires_grad) / 2


# ----------------------------------------------------------------------------- policy


class MLPPolicy(Policy):
    """A trained `PolicyNet` as a callable: mode of the distribution, or a seeded sample."""

    def __init__(self, net: PolicyNet, observation_space: Any, action_space: Any, deterministic: bool = True, seed: int = 0) -> None:
        super().__init__(observation_space, action_space, deterministic)
        self.net = net.eval()
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, obs: Obs) -> np.ndarray:
        features = torch.from_numpy(obs_features(obs, self.observation_space))
        dist = self.net.distribution(features)
        if self.net.head == "categorical":
            probs = dist.probs
            idx = probs.argmax(1) if self.deterministic else torch.multinomial(probs, 1, generator=self.generator)[:, 0]
            return idx.numpy().astype(self.action_space.dtype) + self.action_space.start
        base = dist.base_dist
        action = base.loc
        if not self.deterministic and self.net.head == "gaussian":
            action = action + base.scale * torch.randn(action.shape, generator=self.generator)
        action = action.numpy().reshape((-1, *self.action_space.shape)).astype(self.action_space.dtype)
        return np.clip(action, self.action_space.low, self.action_space.high)


def load_mlp_policy(policy_dir: Path, meta: dict[str, Any]) -> MLPPolicy:
    """Rebuild a saved BC policy from `policy.json` + `weights.pt` (a plain state dict)."""
    arch = meta["architecture"]
    net = PolicyNet(arch["in_dim"], arch["hidden"], arch["activation"], arch["head"], arch["out_dim"])
    state = torch.load(policy_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return MLPPolicy(net, meta["observation_space"], meta["action_space"])


# ----------------------------------------------------------------------------- training


def feature_moments(obs: Obs, observation_space: Any, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
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

    def __init__(self, config: BCConfig, *, observation_space: Any, action_space: Any, seed: int = 0) -> None:
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.head = resolve_head(config.head, action_space)
        self.out_dim = int(action_space.n) if self.head == "categorical" else int(np.prod(action_space.shape))
        self.in_dim = feature_dim(observation_space)
        torch.manual_seed(seed)  # the initial weights depend only on the seed
        self.net = PolicyNet(self.in_dim, list(config.hidden), config.activation, self.head, self.out_dim)
        self.policy = MLPPolicy(self.net, observation_space, action_space, seed=seed)
        self._d3rlpy: Any = None

    def fit(self, dataset: Any, *, env_id: str | None = None, log: LogFn | None = None) -> dict[str, float]:
        if self.config.backend == "d3rlpy":
            return self._fit_d3rlpy(dataset, env_id=env_id, log=log)
        cfg = self.config
        transitions = dataset.transitions()
        if cfg.normalize_obs:
            mean, std = feature_moments(transitions.obs, self.observation_space)
            self.net.obs_mean.copy_(torch.from_numpy(mean))
            self.net.obs_std.copy_(torch.from_numpy(std))
        sampler = self.sampler_cls(transitions, self.observation_space, self.action_space, cfg.batch_size, self.seed)
        optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=cfg.lr)
        sums: dict[str, float] = {}
        count = 0
        metrics: dict[str, float] = {}
        self.net.train()
        for step in range(1, cfg.n_steps + 1):
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
            if step % cfg.log_interval == 0 or step == cfg.n_steps:
                metrics = {"epoch": float(sampler.epoch), **{k: v / count for k, v in sums.items()}}
                sums, count = {}, 0
                if env_id and cfg.rollout_interval and (step % cfg.rollout_interval == 0 or step == cfg.n_steps):
                    metrics.update(self._rollout_metrics(env_id))
                if log is not None:
                    log(step, metrics)
        self.net.eval()
        return metrics

    def _rollout_metrics(self, env_id: str) -> dict[str, float]:
        """Return of the current policy in the env (fixed seeds, so runs stay reproducible)."""
        self.net.eval()
        result = evaluate(self.policy, env_id, self.config.rollout_episodes, seed=self.seed + 1_000_000)
        self.net.train()
        return {"rollout_return_mean": result["mean"], "rollout_return_std": result["std"]}

    # ------------------------------------------------------------------------- d3rlpy backend

    def _d3rlpy_config(self) -> Any:
        """d3rlpy's own BC config with the recipe's batch size, learning rate and MLP widths."""
        d3rlpy = quiet_import("d3rlpy")

        encoder = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=list(self.config.hidden))
        common = dict(batch_size=self.config.batch_size, learning_rate=self.config.lr, encoder_factory=encoder)
        if self.head == "categorical":
            return d3rlpy.algos.DiscreteBCConfig(**common)
        policy_type = "deterministic" if self.head == "deterministic" else "stochastic"
        return d3rlpy.algos.BCConfig(policy_type=policy_type, **common)

    def _fit_d3rlpy(self, dataset: Any, *, env_id: str | None, log: LogFn | None) -> dict[str, float]:
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
            n_steps=cfg.n_steps,
            n_steps_per_epoch=min(cfg.log_interval, cfg.n_steps),
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            show_progress=False,
        ):
            step = min(epoch * cfg.log_interval, cfg.n_steps)
            # d3rlpy's time_* entries are wall-clock: leaving them out keeps metrics.csv reproducible.
            losses = {k: float(v) for k, v in epoch_metrics.items() if not k.startswith("time_")}
            metrics = {"epoch": float(epoch), **losses}
            self.policy = D3rlpyPolicy(self._d3rlpy, self.observation_space, self.action_space)
            if env_id and cfg.rollout_interval and (step % cfg.rollout_interval == 0 or step == cfg.n_steps):
                result = evaluate(self.policy, env_id, cfg.rollout_episodes, seed=self.seed + 1_000_000)
                metrics.update(rollout_return_mean=result["mean"], rollout_return_std=result["std"])
            if log is not None:
                log(step, metrics)
        return metrics

    # ------------------------------------------------------------------------- persistence

    def save(self, run_dir: Path) -> None:
        policy_dir = Path(run_dir) / "policy"
        policy_dir.mkdir(parents=True, exist_ok=True)
        if self._d3rlpy is not None:
            self._d3rlpy.save_model(str(policy_dir / D3RLPY_FILE))
            cfg = self.config
            write_policy_meta(
                policy_dir,
                "d3rlpy",
                self.observation_space,
                self.action_space,
                config={"hidden": list(cfg.hidden), "batch_size": cfg.batch_size, "lr": cfg.lr, "head": self.head},
            )
            return
        torch.save(self.net.state_dict(), policy_dir / WEIGHTS_FILE)
        write_policy_meta(
            policy_dir,
            "mlp",
            self.observation_space,
            self.action_space,
            architecture={
                "in_dim": self.in_dim,
                "hidden": list(self.config.hidden),
                "activation": self.config.activation,
                "head": self.head,
                "out_dim": self.out_dim,
            },
        )

    @classmethod
    def load(cls, run_dir: Path) -> BC:
        from algos.policies import load_policy

        policy = load_policy(run_dir)
        algo = cls.__new__(cls)
        Algorithm.__init__(algo, None, observation_space=policy.observation_space, action_space=policy.action_space)
        algo.policy = policy
        return algo


class D3rlpyPolicy(Policy):
    """A d3rlpy BC/DiscreteBC model's `predict` (always its deterministic action)."""

    def __init__(self, model: Any, observation_space: Any, action_space: Any) -> None:
        super().__init__(observation_space, action_space, deterministic=True)
        self.model = model

    def act(self, obs: Obs) -> np.ndarray:
        action = np.asarray(self.model.predict(d3rlpy_observation(obs, self.observation_space)))
        if hasattr(self.action_space, "n"):
            return action.astype(self.action_space.dtype) + self.action_space.start
        action = action.reshape((-1, *self.action_space.shape)).astype(self.action_space.dtype)
        return np.clip(action, self.action_space.low, self.action_space.high)


def d3rlpy_observation(obs: Obs, space: Any) -> Any:
    """Observations as `algos.d3rlpy_adapter` gives them to d3rlpy: one array, or one per leaf."""
    flat = flatten_obs(obs)
    arrays = [np.asarray(flat[key], dtype=np.float32) for key, _ in space_leaves(space)]
    return arrays[0] if len(arrays) == 1 else arrays


def load_d3rlpy_policy(policy_dir: Path, meta: dict[str, Any]) -> D3rlpyPolicy:
    """Rebuild the d3rlpy model from its config, then load its state dicts (torch weights only)."""
    fields = meta["config"]
    config = BCConfig(backend="d3rlpy", hidden=fields["hidden"], batch_size=fields["batch_size"], lr=fields["lr"], head=fields["head"])
    algo = BC(config, observation_space=meta["observation_space"], action_space=meta["action_space"])
    model = algo._d3rlpy_config().create(device="cpu:0")
    action_size = int(meta["action_space"].n) if fields["head"] == "categorical" else int(np.prod(meta["action_space"].shape))
    shapes = [tuple(leaf.shape) for _, leaf in space_leaves(meta["observation_space"])]
    model.create_impl(shapes[0] if len(shapes) == 1 else shapes, action_size)
    model.load_model(str(policy_dir / D3RLPY_FILE))
    return D3rlpyPolicy(model, meta["observation_space"], meta["action_space"])
