"""Bradley-Terry reward training throughput (pairs/s) at fragment length 50: batched vs a per-pair loop.

    python benchmarks/preference_training.py [--pairs 4096] [--length 50] [--epochs 3] [--threads 1]

`algos.preferences.train_preferences` runs one forward over `[batch, 2, length, features]` per
minibatch; the naive baseline (imitation 1.0.1's shape: one forward per fragment in a Python loop,
about 1,100 pairs/s on a 2-core machine per ONLINE-NOTES) runs in the same process on the same
data, net and batch size. The issue's bar: >= 20,000 pairs/s. Pendulum-shaped data (3 obs, 1 action).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from algos.base import seed_everything
from algos.online.reward_nets import RewardNetConfig
from algos.preferences import Fragments, PreferenceDataset, RewardEnsemble, pair_tensor, train_preferences


def synthetic_pairs(n: int, length: int, rng: np.random.Generator) -> PreferenceDataset:
    def side() -> Fragments:
        obs = rng.normal(size=(n, length + 1, 3)).astype(np.float32)
        acts = rng.uniform(-2, 2, (n, length, 1)).astype(np.float32)
        rews = -(obs[:, :-1] ** 2).sum(-1) - 0.001 * acts[..., 0] ** 2
        return Fragments(obs[:, :-1].copy(), acts, obs[:, 1:].copy(), rews.astype(np.float64), np.zeros(n, np.int64), np.zeros(n, np.int64))

    left, right = side(), side()
    labels = (left.rews.sum(1) > right.rews.sum(1)).astype(np.float64)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    return PreferenceDataset(left, right, labels, np.arange(n), obs_space, gym.spaces.Box(-2.0, 2.0, (1,), np.float32))


def naive_epoch(ensemble: RewardEnsemble, data: PreferenceDataset, batch_size: int, opt: torch.optim.Optimizer) -> None:
    """One epoch the per-pair way: a forward per fragment, losses summed in Python per minibatch."""
    x, labels = pair_tensor(ensemble, data)
    net = ensemble.net(0)
    for first in range(0, len(data), batch_size):
        losses = []
        for i in range(first, min(first + batch_size, len(data))):
            r = [net.mlp(net.norm(x[i, s])).sum() for s in (0, 1)]
            losses.append(torch.nn.functional.binary_cross_entropy_with_logits(r[0] - r[1], labels[i]))
        loss = torch.stack(losses).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--naive-pairs", type=int, default=512, help="pairs the (slow) per-pair loop trains on")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    seed_everything(0, threads=args.threads)
    rng = np.random.default_rng(0)
    data = synthetic_pairs(args.pairs, args.length, rng)
    config = RewardNetConfig(hidden=(32, 32))

    ensemble = RewardEnsemble(data.observation_space, data.action_space, config)
    train_preferences(ensemble, data.take(np.arange(256)), epochs=1, batch_size=args.batch_size, rng=rng)  # warm-up
    start = time.perf_counter()
    stats = train_preferences(ensemble, data, epochs=args.epochs, batch_size=args.batch_size, rng=rng)
    batched = args.pairs * args.epochs / (time.perf_counter() - start)

    naive_net = RewardEnsemble(data.observation_space, data.action_space, config)
    opt = torch.optim.Adam(naive_net.parameters(), lr=1e-3)
    naive_net.eval()  # normalisers frozen, as in train_preferences
    small = data.take(np.arange(args.naive_pairs))
    start = time.perf_counter()
    naive_epoch(naive_net, small, args.batch_size, opt)
    naive = args.naive_pairs / (time.perf_counter() - start)

    print(
        f"fragment length {args.length}, {args.pairs} pairs x {args.epochs} epochs, batch {args.batch_size}, torch threads {args.threads}"
    )
    print(
        f"batched [pairs, 2, length, features]: {batched:,.0f} pairs/s (final loss {stats['reward_loss']:.3f}, accuracy {stats['reward_train_accuracy']:.3f})"
    )
    print(f"naive per-pair loop:                  {naive:,.0f} pairs/s")
    print(f"speed-up {batched / naive:.1f}x; the issue's bar is 20,000 pairs/s (imitation 1.0.1: about 1,100)")


if __name__ == "__main__":
    main()
