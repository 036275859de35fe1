"""Finite-horizon tabular maximum causal entropy IRL (Ziebart 2010, chapters 9 and 10).

The tabular model, its soft Bellman backup and occupancy measures live in `algos.tabular_mdp`;
this module is the trainer: gradient ascent on the demonstrations' log-likelihood, whose gradient
with respect to a state's reward is the difference of the demonstrations' and the model's
discounted visit counts. The reward network sees the `observation_matrix` features, the policy
works on states, as in `imitation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from algos.base import Algorithm, LogFn, register
from algos.tabular_mdp import (
    TabularModel,
    TabularPolicy,
    demo_occupancy,
    expected_return,
    mce_occupancy_measures,
    mce_partition_fh,
    save_tabular_policy,
    states_from_obs,
    tabular_env,
)
from ildata.episode import DataError, Obs
from ildata.store import TrajectoryDataset

# ---------------------------------------------------------------------------------------------
# MCE IRL trainer


@dataclass
class MCEIRLConfig:
    """MCE IRL settings; a recipe's `config:` section maps onto these fields one-to-one."""

    RENAMED: ClassVar[dict[str, str]] = {"lr": "learning_rate", "max_iter": "n_gradient_steps"}

    hidden_sizes: list[int] = field(default_factory=list)  # [] = reward linear in the features
    discount: float = 1.0
    learning_rate: float = 0.05  # Adam
    n_gradient_steps: int = 1000  # at most: training stops early at linf_eps or grad_l2_eps
    linf_eps: float = 1e-3  # stop when max_s |Dcum_model - Dcum_demo| falls below this
    grad_l2_eps: float = 1e-5  # ... or when the gradient norm does
    log_interval: int = 25  # gradient steps between metric rows
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # for making the tabular env

    def __post_init__(self) -> None:
        for name in ("n_gradient_steps", "log_interval"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}: must be at least 1")
        if not self.learning_rate > 0:
            raise DataError("learning_rate: must be positive")


def _reward_net(in_dim: int, hidden_sizes: list[int]) -> Any:
    import torch

    layers: list[Any] = []
    for width in hidden_sizes:
        layers += [torch.nn.Linear(in_dim, width, dtype=torch.float64), torch.nn.ReLU()]
        in_dim = width
    last = torch.nn.Linear(in_dim, 1, dtype=torch.float64)
    # Zero output layer: the first iterate is the uniform soft policy, whatever the seed.
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return torch.nn.Sequential(*layers, last)


def normalized_l1(d_model: np.ndarray, d_demo: np.ndarray) -> float:
    """L1 distance between two occupancy measures, relative to the demonstrations' total mass."""
    return float(np.abs(d_model - d_demo).sum() / np.abs(d_demo).sum())


@register("mce_irl")
class MCEIRL(Algorithm):
    """Learns a state reward whose soft-optimal policy visits states like the demonstrations.

    Gradient ascent on the demonstrations' log-likelihood: its gradient with respect to the
    reward of state s is `Dcum_demo[s] - Dcum_model[s]`, back-propagated through the reward net
    (a linear map or an MLP over `observation_matrix`).
    """

    Config = MCEIRLConfig
    config: MCEIRLConfig

    def __init__(
        self,
        config: MCEIRLConfig,
        *,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(config, observation_space=observation_space, action_space=action_space, seed=seed)
        self.model: TabularModel | None = None
        self.net: Any = None
        self.reward_vector: np.ndarray | None = None
        self.pi: np.ndarray | None = None
        self.demo_om: np.ndarray | None = None

    def _setup(self, env_id: str | None) -> TabularModel:
        import torch

        if env_id is None:
            raise DataError("MCE IRL needs the tabular env: give env_id (recipe `env`) or a dataset that names one")
        self.env_id = env_id
        self.model, self.observation_space, self.action_space = tabular_env(env_id, self.config.env_kwargs)
        torch.manual_seed(self.seed)
        n_features = np.asarray(self.model.observation_matrix).shape[1]
        self.net = _reward_net(n_features, list(self.config.hidden_sizes))
        return self.model

    def fit(
        self, dataset: TrajectoryDataset | np.ndarray | None, *, env_id: str | None = None, log: LogFn | None = None
    ) -> dict[str, float]:
        """Fit to a dataset of full-horizon episodes, or to an occupancy measure (array (S,))."""
        import torch

        cfg = self.config
        if isinstance(dataset, np.ndarray):
            model = self._setup(env_id)
            demo_om = np.asarray(dataset, dtype=np.float64)
            if demo_om.shape != (model.transition_matrix.shape[0],):
                raise DataError(f"occupancy measure must have shape ({model.transition_matrix.shape[0]},), got {demo_om.shape}")
        elif dataset is None:
            raise DataError("MCE IRL learns from demonstrations: give a dataset")
        else:
            model = self._setup(env_id or dataset.env_id)
            batch = dataset.to_batch()
            if not isinstance(batch.obs, np.ndarray):
                raise DataError("MCE IRL needs state ids or feature vectors, not Dict observations")
            demo_om = demo_occupancy(model, batch.obs, batch.lengths, cfg.discount)
        self.demo_om = demo_om
        features = torch.as_tensor(np.asarray(model.observation_matrix), dtype=torch.float64)
        params = list(self.net.parameters())
        optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
        metrics: dict[str, float] = {}
        for it in range(cfg.n_gradient_steps):
            optimizer.zero_grad()
            reward = self.net(features).squeeze(1)
            _, visits = mce_occupancy_measures(model, reward=reward.detach().numpy(), discount=cfg.discount)
            # A surrogate whose gradient is the negative log-likelihood's: E_model[grad r] - E_demo[grad r].
            torch.dot(torch.as_tensor(visits - demo_om), reward).backward()
            optimizer.step()
            grad_norm = float(torch.sqrt(sum((p.grad**2).sum() for p in params)))
            linf = float(np.abs(visits - demo_om).max())
            metrics = {
                "linf_delta": linf,
                "normalized_l1": normalized_l1(visits, demo_om),
                "grad_norm": grad_norm,
                "weight_norm": float(torch.sqrt(sum((p.detach() ** 2).sum() for p in params))),
            }
            done = linf <= cfg.linf_eps or grad_norm <= cfg.grad_l2_eps
            last = done or it == cfg.n_gradient_steps - 1
            if last:  # the train loop reports a run that hit its iteration limit unconverged
                metrics["converged"] = float(done)
            if log is not None and (it % cfg.log_interval == 0 or last):
                log(it, metrics)
            if done:
                break
        with torch.no_grad():
            self._set_reward(self.net(features).squeeze(1).numpy().copy())
        assert self.pi is not None
        _, visits = mce_occupancy_measures(model, pi=self.pi, discount=cfg.discount)
        metrics.update(
            iterations=float(it + 1),
            normalized_l1=normalized_l1(visits, demo_om),
            linf_delta=float(np.abs(visits - demo_om).max()),
            expected_return=expected_return(model, self.pi, cfg.discount),
            converged=float(done),
        )
        return metrics

    def _set_reward(self, reward_vector: np.ndarray) -> None:
        """Set the learned state reward, its soft-optimal policy and the callables exposing them."""
        model = self.model
        if model is None or self.observation_space is None or self.action_space is None:
            raise RuntimeError("set up the tabular env first")
        self.reward_vector = reward_vector
        _, _, self.pi = mce_partition_fh(model, reward=reward_vector, discount=self.config.discount)
        self.policy = TabularPolicy(self.pi, model, self.observation_space, self.action_space)

        def reward(obs: Obs, acts: Any = None, next_obs: Any = None, *, t: Any = None) -> np.ndarray:
            """State-only reward: actions, next observations and timesteps are accepted and ignored."""
            return reward_vector[states_from_obs(model, np.asarray(obs))]

        self.reward = reward

    def _save_state(self, run_dir: Path) -> None:
        """`policy/` (the soft-optimal policy), `reward_net.pt`, `reward.npy`, `demo_occupancy.npy`."""
        import torch

        if self.pi is None or self.env_id is None or self.reward_vector is None or self.demo_om is None:
            raise RuntimeError("fit before save")
        save_tabular_policy(run_dir / "policy", self.pi, self.env_id, self.config.env_kwargs)
        torch.save(self.net.state_dict(), run_dir / "reward_net.pt")
        np.save(run_dir / "reward.npy", self.reward_vector)
        np.save(run_dir / "demo_occupancy.npy", self.demo_om)

    def _load_state(self, run_dir: Path) -> None:
        import torch

        self._setup(self.env_id)
        self.net.load_state_dict(torch.load(run_dir / "reward_net.pt", weights_only=True))
        self.demo_om = np.load(run_dir / "demo_occupancy.npy", allow_pickle=False)
        self._set_reward(np.load(run_dir / "reward.npy", allow_pickle=False))
