"""BC training throughput (transitions/s) at batch 32 and 256, 2x32 MLP (imitation's default BC policy).

    python benchmarks/bc_throughput.py                 # 500k synthetic steps, obs f32[17], act f32[6]
    python benchmarks/bc_throughput.py --steps 2000000 # the size imitation's quoted numbers use (benchmarks/REFERENCE-imitation.md)

Three loops, all in this process, one torch thread, same data and network:
  ildata        - `algos.bc.BC.fit`: the whole dataset converted to tensors once (`TensorSampler`),
                  closed-form loss, fused Adam, metrics summed as tensors (one sync per row)
  ildata-mapped - the same loop gathering each batch from the memory-mapped store
                  (`TransitionSampler`: what BC uses when the features do not fit in 1 GiB)
  plain-torch   - the loop a researcher writes by hand: tensors in memory, `randperm` batches,
                  `torch.distributions.Normal`, default Adam, no logging at all
imitation 1.0.1's BC on this kind of machine (issue 11): 17,500 transitions/s at batch 32, 62,000 at 256.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ildata
from algos.base import seed_everything
from algos.bc import BC, BCConfig
from algos.sampler import TransitionSampler

IMITATION = {32: 17_500, 256: 62_000}


def synthetic_dataset(root: Path, steps: int, episode_len: int = 1000) -> ildata.TrajectoryDataset:
    """A HalfCheetah-shaped store (obs f32[17], actions f32[6] in [-1, 1]) written by ildata.save."""
    import gymnasium as gym

    rng = np.random.default_rng(0)
    n_eps = steps // episode_len
    obs = rng.normal(size=(n_eps * (episode_len + 1), 17)).astype(np.float32)
    acts = np.tanh(rng.normal(size=(steps, 6))).astype(np.float32)
    batch = ildata.EpisodeBatch(
        obs=obs,
        acts=acts,
        lengths=np.full(n_eps, episode_len),
        terminated=np.zeros(n_eps, bool),
        truncated=np.ones(n_eps, bool),
        termination_known=np.ones(n_eps, bool),
        rews=np.zeros(steps, np.float32),
    )
    return ildata.save(batch, root / "synthetic", action_space=gym.spaces.Box(-1, 1, (6,), np.float32), overwrite=True)


class Mapped(BC):
    sampler_cls = TransitionSampler


def ildata_rate(ds: ildata.TrajectoryDataset, cls: type[BC], batch_size: int, n_steps: int) -> float:
    """Transitions/s of `n_steps` BC steps (one metrics row, no checkpoints), after a warm-up fit."""
    seed_everything(0, threads=1)
    for steps in (20, n_steps):
        cfg = BCConfig(batch_size=batch_size, n_gradient_steps=steps, log_interval=steps, checkpoint_every=0)
        algo = cls(cfg, observation_space=ds.observation_space, action_space=ds.action_space)
        started = time.perf_counter()
        algo.fit(ds)
        total = time.perf_counter() - started
    return batch_size * n_steps / total


def plain_torch_rate(ds: ildata.TrajectoryDataset, batch_size: int, n_steps: int) -> float:
    """A hand-written loop over in-memory tensors (data conversion included, as in `ildata`)."""
    seed_everything(0, threads=1)
    for steps in (20, n_steps):
        started = time.perf_counter()
        tr = ds.transitions()
        obs = torch.from_numpy(np.array(tr.obs, dtype=np.float32))
        acts = torch.from_numpy(np.array(tr.acts, dtype=np.float32))
        net = nn.Sequential(nn.Linear(17, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 6))
        log_std = nn.Parameter(torch.zeros(6))
        optimizer = torch.optim.Adam([*net.parameters(), log_std], lr=1e-3)
        perm = torch.randperm(len(obs))
        pos = 0
        for _ in range(steps):
            if pos + batch_size > len(perm):
                perm, pos = torch.randperm(len(obs)), 0
            idx = perm[pos : pos + batch_size]
            pos += batch_size
            dist = torch.distributions.Normal(net(obs[idx]), log_std.exp())
            loss = -dist.log_prob(acts[idx]).sum(-1).mean() - 1e-3 * dist.entropy().sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        total = time.perf_counter() - started
    return batch_size * n_steps / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500_000, help="synthetic dataset size (default 500k)")
    parser.add_argument("--bc-steps", type=int, default=5000, help="gradient steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per cell (the best is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ds = synthetic_dataset(Path(tmp), args.steps)
        print(
            f"synthetic store: {ds.num_transitions} transitions, obs f32[17], act f32[6] "
            f"(written in {time.perf_counter() - started:.1f}s); torch {torch.__version__}, 1 thread; "
            f"{args.bc_steps} gradient steps, best of {args.repeats}"
        )
        print(f"{'batch':>5} {'loop':>14} {'transitions/s':>14} {'vs plain-torch':>15} {'vs imitation':>13}")
        for batch_size in (32, 256):
            cells: dict[str, Callable[[int, int], float]] = {
                "ildata": lambda b, n: ildata_rate(ds, BC, b, n),
                "ildata-mapped": lambda b, n: ildata_rate(ds, Mapped, b, n),
                "plain-torch": lambda b, n: plain_torch_rate(ds, b, n),
            }
            rates = {name: max(fn(batch_size, args.bc_steps) for _ in range(args.repeats)) for name, fn in cells.items()}
            for name, rate in rates.items():
                print(
                    f"{batch_size:>5} {name:>14} {rate:>14,.0f} {rate / rates['plain-torch']:>14.2f}x "
                    f"{rate / IMITATION[batch_size]:>12.2f}x"
                )


if __name__ == "__main__":
    main()
