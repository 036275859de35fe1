"""Preferences over trajectory fragments (Christiano et al. 2017): the parts preference comparisons needs.

- `fragment(batch, length, n, rng)`: fixed-length fragments drawn uniformly over *every* valid
  window of every long-enough episode (imitation's fragmenter under-samples the first and last
  steps and silently drops short episodes; here `Fragments.too_short` says how many were). The
  windows are gathered with one fancy index per column, so every fragment is a copy in its own
  array, never a view keeping a whole trajectory alive (imitation PR #842: OOM on Atari).
- `SyntheticGatherer`: Bradley-Terry labels over the env's true (discounted) fragment returns,
  with a temperature and a probability of random labels, from its own seeded generator.
  The temperature acts on raw returns, so the env's reward scale sets the label noise (#395).
- `RewardEnsemble`: one or more of the shared `RewardNet` MLPs; the reward is the members' mean.
  `train_preferences` minimises the Bradley-Terry loss over `[pairs, 2, length, features]`
  tensors: one forward over all fragments of a minibatch, no Python loop per pair.
- `PreferenceDataset`: fragment pairs and labels (1 = left preferred, 0 = right, 0.5 = equal,
  NaN = not answered yet) as one Parquet file that ildata, polars or pandas read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from algos.online.reward_nets import RewardNet, RewardNetConfig, RunningNorm, load_reward_net
from ildata.episode import DataError, EpisodeBatch
from ildata.fsutil import atomic_output
from ildata.spaces import space_from_dict, space_to_dict

PREFERENCES_FORMAT = 1
SIDES = ("left", "right")
ARRAYS = ("obs", "acts", "next_obs", "rews", "seeds", "starts")  # the per-fragment arrays of `Fragments`


# ---------------------------------------------------------------------------------------- fragments


@dataclass
class Fragments:
    """`n` fragments of `length` steps: obs/acts/next_obs/rews are `[n, length, ...]` arrays of their own.

    `seeds` and `starts` say where each came from (episode seed, first step), for replays and renders.
    `too_short` counts the episodes that had no window of `length` steps when they were drawn.
    """

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    rews: np.ndarray
    seeds: np.ndarray
    starts: np.ndarray
    too_short: int = 0

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    @property
    def length(self) -> int:
        return int(self.acts.shape[1])

    def take(self, rows: np.ndarray) -> Fragments:
        return Fragments(
            self.obs[rows], self.acts[rows], self.next_obs[rows], self.rews[rows], self.seeds[rows], self.starts[rows], self.too_short
        )


def concat_fragments(parts: Sequence[Fragments]) -> Fragments:
    """One `Fragments` holding `parts` in order (their `too_short` counts added)."""
    arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ARRAYS}
    return Fragments(
        arrays["obs"],
        arrays["acts"],
        arrays["next_obs"],
        arrays["rews"],
        arrays["seeds"],
        arrays["starts"],
        sum(p.too_short for p in parts),
    )


def fragment(batch: EpisodeBatch, length: int, n: int, rng: np.random.Generator) -> Fragments:
    """`n` fragments drawn uniformly over all windows of `length` steps (with replacement).

    Episodes shorter than `length` have no window; they are counted in `too_short`, not hidden.
    """
    if length < 1:
        raise DataError(f"fragment_length: must be at least 1, got {length}")
    if isinstance(batch.obs, dict):
        raise DataError("preference comparisons: dict observations are not supported")
    lengths = batch.lengths
    windows = np.maximum(lengths - length + 1, 0)
    too_short = int((windows == 0).sum())
    if n > 0 and windows.sum() == 0:
        raise DataError(f"no episode has {length} steps for a fragment ({too_short} episodes too short; lower fragment_length)")
    # A uniform draw over the concatenation of every episode's windows.
    ends = np.cumsum(windows)
    picks = rng.integers(0, int(ends[-1]) if len(ends) else 0, n) if n else np.zeros(0, np.int64)
    episode = np.searchsorted(ends, picks, side="right")
    start = picks - (ends[episode] - windows[episode])
    act_first = np.concatenate([[0], np.cumsum(lengths)[:-1]])[episode] + start
    obs_first = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])[episode] + start
    steps = np.arange(length)
    act_rows, obs_rows = act_first[:, None] + steps, obs_first[:, None] + steps  # fancy indexing: copies
    obs = np.asarray(batch.obs)
    rews = np.asarray(batch.rews, dtype=np.float64)[act_rows] if batch.rews is not None else np.full(act_rows.shape, np.nan)
    seeds = np.asarray(batch.seeds, dtype=np.int64)[episode] if batch.seeds is not None else np.full(n, -1, np.int64)
    return Fragments(obs[obs_rows], np.asarray(batch.acts)[act_rows], obs[obs_rows + 1], rews, seeds, start.astype(np.int64), too_short)


def discounted_returns(rews: np.ndarray, discount: float) -> np.ndarray:
    """Sum over the last axis of `rews * discount**t` (vectorised)."""
    return (rews * discount ** np.arange(rews.shape[-1])).sum(-1)


@dataclass
class SyntheticGatherer:
    """The oracle: P(left preferred) = sigmoid((R_left - R_right) / temperature) over true returns.

    `temperature` 0 gives the exact comparison (ties: 0.5); with probability `random_label_prob`
    a label is replaced by a fair coin. Labels are sampled (0/1) from the generator seeded by `seed`.
    """

    temperature: float = 1.0
    discount: float = 1.0
    random_label_prob: float = 0.0
    seed: int = 0
    equal_ties: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 <= self.random_label_prob <= 1 or not 0 < self.discount <= 1:
            raise DataError("synthetic gatherer: temperature >= 0, 0 <= random_label_prob <= 1, 0 < discount <= 1")
        self.rng = np.random.default_rng(self.seed)

    def return_differences(self, left: Fragments, right: Fragments) -> np.ndarray:
        diff = discounted_returns(left.rews, self.discount) - discounted_returns(right.rews, self.discount)
        if np.isnan(diff).any():
            raise DataError("synthetic preferences need the env's rewards in every fragment")
        return diff

    def probabilities(self, left: Fragments, right: Fragments) -> np.ndarray:
        diff = self.return_differences(left, right)
        if self.temperature == 0:
            return 0.5 * (1 + np.sign(diff))
        return 1.0 / (1.0 + np.exp(-np.clip(diff / self.temperature, -50, 50)))

    def __call__(self, left: Fragments, right: Fragments) -> np.ndarray:
        """0/1 labels drawn from `probabilities`; with `equal_ties`, exactly equal returns get 0.5
        ("equal", as a person would answer) instead of a coin flip (imitation's behaviour): on
        seals/CartPole most fragments of a fallen pole tie at 0, and coin flips there are pure noise."""
        p = self.probabilities(left, right)
        labels = (self.rng.random(len(p)) < p).astype(np.float64)
        if self.equal_ties:
            labels[self.return_differences(left, right) == 0] = 0.5
        coin = self.rng.random(len(p)) < self.random_label_prob
        labels[coin] = self.rng.integers(0, 2, int(coin.sum()))
        return labels


# --------------------------------------------------------------------------------------- dataset


@dataclass
class PreferenceDataset:
    """Fragment pairs and their labels (NaN: pending); `pair_ids` are stable across export/import."""

    left: Fragments
    right: Fragments
    labels: np.ndarray
    pair_ids: np.ndarray
    observation_space: gym.Space
    action_space: gym.Space
    env_id: str | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, rows: np.ndarray) -> PreferenceDataset:
        return PreferenceDataset(
            self.left.take(rows),
            self.right.take(rows),
            self.labels[rows],
            self.pair_ids[rows],
            self.observation_space,
            self.action_space,
            self.env_id,
        )

    def labelled(self) -> PreferenceDataset:
        return self.take(np.flatnonzero(~np.isnan(self.labels)))

    def extend(self, other: PreferenceDataset) -> PreferenceDataset:
        return PreferenceDataset(
            concat_fragments([self.left, other.left]),
            concat_fragments([self.right, other.right]),
            np.concatenate([self.labels, other.labels]),
            np.concatenate([self.pair_ids, other.pair_ids]),
            self.observation_space,
            self.action_space,
            self.env_id,
        )

    @staticmethod
    def empty(observation_space: gym.Space, action_space: gym.Space, length: int, env_id: str | None = None) -> PreferenceDataset:
        obs_shape, act_shape = tuple(observation_space.shape or ()), tuple(action_space.shape or ())

        def none() -> Fragments:
            obs = np.zeros((0, length, *obs_shape), observation_space.dtype)
            acts = np.zeros((0, length, *act_shape), action_space.dtype)
            return Fragments(obs, acts, obs.copy(), np.zeros((0, length)), np.zeros(0, np.int64), np.zeros(0, np.int64))

        return PreferenceDataset(none(), none(), np.zeros(0), np.zeros(0, np.int64), observation_space, action_space, env_id)

    # ---- Parquet: one row per pair; fragments as fixed-size lists, shapes in the schema metadata
    def to_table(self) -> pa.Table:
        columns: dict[str, pa.Array] = {"pair_id": pa.array(self.pair_ids, pa.int64()), "label": pa.array(self.labels, pa.float64())}
        for side, frags in zip(SIDES, (self.left, self.right), strict=True):
            for key in ("obs", "acts", "next_obs", "rews"):
                values = np.ascontiguousarray(getattr(frags, key))
                width = int(np.prod(values.shape[1:]))
                columns[f"{side}_{key}"] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)
            columns[f"{side}_seed"] = pa.array(frags.seeds, pa.int64())
            columns[f"{side}_start"] = pa.array(frags.starts, pa.int64())
        meta = {
            "format": PREFERENCES_FORMAT,
            "length": self.left.length,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "env_id": self.env_id,
        }
        return pa.table(columns).replace_schema_metadata({"ildata.preferences": json.dumps(meta)})

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write one Parquet file (atomically)."""
        path = Path(path)
        with atomic_output(path, overwrite=overwrite, folder=False) as tmp:
            pq.write_table(self.to_table(), tmp)
        return path

    @staticmethod
    def load(path: str | Path) -> PreferenceDataset:
        """Read a file `save` wrote; a one-line DataError naming the file otherwise."""
        path = Path(path)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"not a preference file ({exc})", subject=path) from None
        raw = (table.schema.metadata or {}).get(b"ildata.preferences")
        if raw is None:
            raise DataError("not a preference file (no ildata.preferences metadata)", subject=path)
        meta = json.loads(raw)
        if meta.get("format") != PREFERENCES_FORMAT:
            raise DataError(f"unsupported preference format {meta.get('format')!r}", subject=path)
        obs_space, act_space = space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
        n, length = table.num_rows, int(meta["length"])
        shapes = {
            "obs": (tuple(obs_space.shape or ()), obs_space.dtype),
            "next_obs": (tuple(obs_space.shape or ()), obs_space.dtype),
            "acts": (tuple(act_space.shape or ()), act_space.dtype),
            "rews": ((), np.float64),
        }

        def side(name: str) -> Fragments:
            arrays = {}
            for key, (shape, dtype) in shapes.items():
                values = table.column(f"{name}_{key}").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                arrays[key] = np.asarray(values, dtype=dtype).reshape(n, length, *shape)
            seeds = table.column(f"{name}_seed").to_numpy()
            return Fragments(
                arrays["obs"], arrays["acts"], arrays["next_obs"], arrays["rews"], seeds, table.column(f"{name}_start").to_numpy()
            )

        try:
            left, right = side("left"), side("right")
        except (KeyError, ValueError) as exc:
            raise DataError(f"damaged preference file ({exc})", subject=path) from None
        labels = table.column("label").to_numpy(zero_copy_only=False).astype(np.float64)
        return PreferenceDataset(left, right, labels, table.column("pair_id").to_numpy(), obs_space, act_space, meta.get("env_id"))


# ---------------------------------------------------------------------------------- reward model


class RewardEnsemble(nn.Module):
    """`size` independently initialised `RewardNet`s; the reward is their mean, disagreement their spread."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: RewardNetConfig, size: int = 1) -> None:
        super().__init__()
        if size < 1:
            raise DataError(f"ensemble_size: must be at least 1, got {size}")
        self.members = nn.ModuleList([RewardNet(observation_space, action_space, config) for _ in range(size)])
        self.observation_space, self.action_space = observation_space, action_space

    def encode(self, frags: Fragments) -> torch.Tensor:
        """The members' input (the used parts of state, action, next state) of `[n, length]` steps: `[n, length, dim]`."""
        n, length = len(frags), frags.length
        flat = lambda x: x.reshape(n * length, *x.shape[2:])  # noqa: E731
        net = self.net(0)
        feats = net.encode(flat(frags.obs), flat(frags.acts), flat(frags.next_obs), np.zeros(n * length, np.float32))[:3]
        cfg = net.config
        used = [f for f, on in zip(feats, (cfg.use_state, cfg.use_action, cfg.use_next_state), strict=True) if on]
        return torch.cat(used, dim=1).reshape(n, length, -1)

    def net(self, member: int) -> RewardNet:
        return cast(RewardNet, self.members[member])

    def step_rewards(self, member: int, x: torch.Tensor) -> torch.Tensor:
        """Member's per-step reward of inputs shaped `[..., dim]` -> `[...]`: one forward, any leading shape."""
        net = self.net(member)
        return net.mlp(net.norm(x)).squeeze(-1)

    def fit_normalizers(self, x: torch.Tensor) -> None:
        """Input statistics from all of `x` at once, then frozen: minibatch order cannot move them."""
        for k in range(len(self.members)):
            norm = self.net(k).norm
            if isinstance(norm, RunningNorm):
                norm.mean.zero_()
                norm.var.fill_(1.0)
                norm.count.zero_()
                norm.update(x.reshape(-1, x.shape[-1]))

    @torch.no_grad()
    def predict(self, obs: Any, acts: Any, next_obs: Any) -> np.ndarray:
        """Mean member reward of a numpy batch of transitions (each member's numpy path)."""
        terms = np.zeros(len(acts), np.float32)
        return np.mean([self.net(k).predict(obs, acts, next_obs, terms) for k in range(len(self.members))], axis=0)

    @torch.inference_mode()
    def pair_probabilities(self, left: Fragments, right: Fragments) -> np.ndarray:
        """`[members, pairs]` P(left preferred) under each member's Bradley-Terry model."""
        self.eval()
        lf, rf = self.encode(left), self.encode(right)
        out = [torch.sigmoid(self.step_rewards(k, lf).sum(-1) - self.step_rewards(k, rf).sum(-1)) for k in range(len(self.members))]
        return torch.stack(out).numpy()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for k in range(len(self.members)):
            self.net(k).save(directory / f"member-{k}", overwrite=True)

    @staticmethod
    def load(directory: Path, size: int) -> RewardEnsemble:
        members = [load_reward_net(directory / f"member-{k}") for k in range(size)]
        ensemble = RewardEnsemble(members[0].observation_space, members[0].action_space, members[0].config, size)
        ensemble.members = nn.ModuleList(members)
        return ensemble


def pair_tensor(ensemble: RewardEnsemble, data: PreferenceDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The members' inputs stacked as `[pairs, 2, length, dim]`, and the labels."""
    x = torch.stack([ensemble.encode(data.left), ensemble.encode(data.right)], dim=1).contiguous()
    return x, torch.as_tensor(data.labels, dtype=torch.float32)


def bradley_terry_loss(ensemble: RewardEnsemble, member: int, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of P(left) = sigmoid(R_left - R_right) over `[pairs, 2, length, dim]` inputs."""
    returns = ensemble.step_rewards(member, x).sum(-1)  # [pairs, 2]
    return nn.functional.binary_cross_entropy_with_logits(returns[:, 0] - returns[:, 1], labels)


def _fast_returns(layers: Sequence[nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """Fragment returns `[pairs, 2]` of already-normalised `[pairs, 2, length, dim]` inputs.

    The same operations, in the same order, as `step_rewards(...).sum(-1)` (so results are
    bit-identical to the module's forward) without the normaliser (applied once per training call)
    or the module call overhead. In-place ReLUs were tried: their backward was 1.5-2x slower on CPU.
    """
    h = x
    for layer in layers[:-1]:
        h = torch.relu(nn.functional.linear(h, layer.weight, layer.bias))
    last = layers[-1]
    return nn.functional.linear(h, last.weight, last.bias).squeeze(-1).sum(-1)


def _module_returns(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`_fast_returns` for an MLP of another shape: its own forward."""
    return cast(torch.Tensor, mlp(x)).squeeze(-1).sum(-1)


def _linear_relu_layers(mlp: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a Linear-ReLU-...-Linear `nn.Sequential` (`reward_nets.mlp`); [] for anything else."""
    modules = list(mlp.children())
    shape_ok = len(modules) % 2 == 1 and all(isinstance(m, nn.Linear) if i % 2 == 0 else type(m) is nn.ReLU for i, m in enumerate(modules))
    return [cast(nn.Linear, m) for m in modules[::2]] if shape_ok else []


def train_preferences(
    ensemble: RewardEnsemble,
    data: PreferenceDataset,
    *,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    rng: np.random.Generator,
    optimizers: Sequence[torch.optim.Optimizer] | None = None,
) -> dict[str, float]:
    """`epochs` passes of minibatch Adam on the Bradley-Terry loss; every member sees its own shuffles.

    Pending (NaN) labels are left out. Returns the last epoch's mean loss and training accuracy.
    Speed (benchmarks/preference_training.py): the frozen normaliser is applied once per call, not
    per minibatch; each epoch gathers its shuffled order once, so a minibatch is a contiguous view;
    the loss is summed as a tensor (no per-step `.item()`); the training accuracy is the last
    epoch's, from the minibatches' own forwards. The arithmetic is the module forward's and plain
    Adam's, so results are bit-identical to the straightforward loop (fused Adam rounds differently, and that
    alone moved the Pendulum quality test's held-out accuracy on seed 0 from 0.959 to 0.879).
    """
    data = data.labelled()
    if len(data) == 0 or epochs == 0:
        return {}
    x, labels = pair_tensor(ensemble, data)
    opts = optimizers or make_optimizers(ensemble, learning_rate, weight_decay)
    ensemble.fit_normalizers(x)
    ensemble.eval()  # the normalisers stay frozen; the MLPs have no train-only layers
    n = len(data)
    steps = -(-n // batch_size)
    total = torch.zeros(())
    probabilities = torch.zeros(n)
    for k, opt in enumerate(opts):
        net = ensemble.net(k)
        with torch.no_grad():
            xk = net.norm(x)
        layers = _linear_relu_layers(net.mlp)
        forward: Callable[[torch.Tensor], torch.Tensor] = partial(_fast_returns, layers) if layers else partial(_module_returns, net.mlp)
        for epoch in range(epochs):
            order = torch.from_numpy(rng.permutation(n))
            xs, ys = xk[order], labels[order]
            for first in range(0, n, batch_size):
                xb, yb = xs[first : first + batch_size], ys[first : first + batch_size]
                returns = forward(xb)
                logits = returns[:, 0] - returns[:, 1]
                loss = nn.functional.binary_cross_entropy_with_logits(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if epoch == epochs - 1:  # the last epoch's loss and accuracy (as each minibatch came)
                    total += loss.detach()
                    probabilities[order[first : first + batch_size]] += torch.sigmoid(logits.detach())
    p = probabilities.numpy() / len(opts)
    decided = (data.labels == 0) | (data.labels == 1)
    accuracy = float(((p > 0.5) == (data.labels == 1))[decided].mean()) if decided.any() else math.nan
    return {"reward_loss": float(total) / (len(opts) * steps), "reward_train_accuracy": accuracy}


def make_optimizers(ensemble: RewardEnsemble, learning_rate: float = 1e-3, weight_decay: float = 0.0) -> list[torch.optim.Optimizer]:
    """One Adam per member (not fused: see `train_preferences`)."""
    return [torch.optim.Adam(m.parameters(), lr=learning_rate, weight_decay=weight_decay) for m in ensemble.members]


def preference_accuracy(ensemble: RewardEnsemble, data: PreferenceDataset) -> float:
    """Share of decided pairs (label 0 or 1) whose preferred side the mean model rates higher."""
    decided = data.take(np.flatnonzero((data.labels == 0) | (data.labels == 1)))
    if len(decided) == 0:
        return math.nan
    p = ensemble.pair_probabilities(decided.left, decided.right).mean(0)
    return float(((p > 0.5) == (decided.labels == 1)).mean())


def held_out_metrics(
    ensemble: RewardEnsemble, batch: EpisodeBatch, length: int, rng: np.random.Generator, pairs: int = 500
) -> dict[str, float]:
    """How well the learned reward matches the true one on episodes it was never trained on.

    `heldout_reward_pearson`: Pearson correlation of learned and true reward over every transition
    of `batch` (the benchmark bar: >= 0.8); `heldout_pref_accuracy`: `preference_accuracy` on
    `pairs` fresh fragment pairs of `length` steps from `batch`, labelled by the exact oracle.
    NaN where `batch` has no reward, no variation, or no episode of `length` steps.
    """
    from ildata.store import split_obs

    out = {"heldout_transitions": float(batch.num_transitions), "heldout_reward_pearson": math.nan, "heldout_pref_accuracy": math.nan}
    if batch.rews is None or batch.num_transitions < 2 or isinstance(batch.obs, dict):
        return out
    obs, next_obs = split_obs(np.asarray(batch.obs), batch.lengths)
    learned, true = ensemble.predict(obs, batch.acts, next_obs).astype(np.float64), np.asarray(batch.rews, np.float64)
    if learned.std() > 0 and true.std() > 0:
        out["heldout_reward_pearson"] = float(np.corrcoef(learned, true)[0, 1])
    if (batch.lengths >= length).any():
        frags = fragment(batch, length, 2 * pairs, rng)
        left, right = frags.take(np.arange(pairs)), frags.take(np.arange(pairs, 2 * pairs))
        labels = SyntheticGatherer(temperature=0.0)(left, right)
        held_out = PreferenceDataset(left, right, labels, np.arange(pairs), ensemble.observation_space, ensemble.action_space)
        out["heldout_pref_accuracy"] = preference_accuracy(ensemble, held_out)
    return out


def disagreement(ensemble: RewardEnsemble, left: Fragments, right: Fragments) -> np.ndarray:
    """Per pair, the std over members of P(left preferred): high where the ensemble is unsure."""
    return ensemble.pair_probabilities(left, right).std(0)


# ------------------------------------------------------------------------------ human preferences

LABELS = {"left": 1.0, "right": 0.0, "equal": 0.5}  # `skip` (or an empty label): no preference given
LABEL_WORDS = (*LABELS, "skip")
QUERIES_FILE = "queries.parquet"


def write_label_sheet(pair_ids: np.ndarray, path: Path) -> None:
    """An unfilled label sheet: CSV (`pair_id,label`) or JSONL (`{"pair_id": 0, "label": ""}` per line)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"pair_id": int(i), "label": ""}) + "\n" for i in pair_ids))
    else:
        path.write_text("pair_id,label\n" + "".join(f"{int(i)},\n" for i in pair_ids))


def read_label_sheet(path: Path) -> list[tuple[int, object, object]]:
    """(row number, pair_id, label) of a filled CSV or JSONL sheet; a DataError names the file and row."""
    import csv

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the label file ({exc})", subject=path) from None
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"row {number}: not JSON ({exc.msg})", subject=path) from None
            if not isinstance(item, dict) or "pair_id" not in item or "label" not in item:
                raise DataError(f"row {number}: needs the keys pair_id and label", subject=path)
            rows.append((number, item["pair_id"], item["label"]))
        return rows
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in ("pair_id", "label") if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (the header must be pair_id,label)", subject=path)
    return [(number, row["pair_id"], row["label"]) for number, row in enumerate(reader, 1)]


def apply_labels(queries: PreferenceDataset, path: Path) -> PreferenceDataset:
    """`queries` with the labels of the sheet at `path`; skipped and unanswered pairs are left out."""
    row_of = {int(pid): i for i, pid in enumerate(queries.pair_ids)}
    labels = np.full(len(queries), np.nan)
    seen: set[int] = set()
    for number, raw_id, raw_label in read_label_sheet(path):
        try:
            pair_id = int(str(raw_id).strip())
        except ValueError:
            raise DataError(f"row {number}: pair_id {raw_id!r} is not an integer", subject=path) from None
        if pair_id not in row_of:
            raise DataError(f"row {number}: unknown pair_id {pair_id} (not among the exported queries)", subject=path)
        if pair_id in seen:
            raise DataError(f"row {number}: pair_id {pair_id} is labelled twice", subject=path)
        seen.add(pair_id)
        label = "" if raw_label is None else str(raw_label).strip().lower()
        if label not in (*LABEL_WORDS, ""):
            raise DataError(f"row {number}: label {raw_label!r} is not one of {', '.join(LABEL_WORDS)}", subject=path)
        if label in LABELS:
            labels[row_of[pair_id]] = LABELS[label]
    answered = queries.take(np.arange(len(queries)))
    answered.labels = labels
    return answered.labelled()
