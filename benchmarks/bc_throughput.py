"""BC training throughput (transitions/s) at batch 32 and 256, 2x32 MLP (imitation's default BC policy).

    python benchmarks/bc_throughput.py                 # 500k synthetic steps, obs f32[17], act f32[6]
    python benchmarks/bc_throughput.py --steps 2000000 # the size FIELD-NOTES' imitation numbers use

The same `algos.bc.BC` training loop runs with three samplers, all in this process:
  ildata   - `TransitionSampler`: numpy fancy-indexing of the memory-mapped store arrays
  naive    - a per-sample Python loop over the same arrays (what a hand-written Dataset does)
  hf-torch - HuggingFace `datasets` with `with_format("torch")` over the same Arrow data
and reports transitions/s, the share of each step spent sampling, and ildata's speed-up ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ildata
from algos.base import seed_everything
from algos.bc import BC, BCConfig
from algos.sampler import Batch, TransitionSampler


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


class Timed(TransitionSampler):
    """Accumulates the wall time spent in `sample()` (the rest of a step is the update)."""

    seconds = 0.0

    def sample(self) -> Batch:
        started = time.perf_counter()
        batch = self._draw()
        Timed.seconds += time.perf_counter() - started
        return batch

    def _draw(self) -> Batch:
        return super().sample()


class NaiveSampler(Timed):
    """One Python-level row read per sample, stacked into tensors: the usual hand-written loader."""

    def _draw(self) -> Batch:
        idx = self.indices()
        rows = [(self.obs[i], self.acts[i]) for i in idx]
        return Batch(torch.tensor(np.array([r[0] for r in rows])), torch.tensor(np.array([r[1] for r in rows])))


class HFSampler(Timed):
    """The same rows through HuggingFace datasets' torch formatter (how imitation reads HF data)."""

    hf: Any = None

    def _draw(self) -> Batch:
        rows = HFSampler.hf[self.indices()]
        return Batch(rows["obs"], rows["acts"])


def hf_view(ds: ildata.TrajectoryDataset) -> Any:
    """A `datasets.Dataset` over the store's own memory-mapped Arrow files (obs, acts columns)."""
    import pyarrow as pa

    import datasets

    tables = [pa.ipc.open_file(pa.memory_map(str(f))).read_all() for f in sorted(Path(ds.path).glob("data/*.arrow"))]
    table = pa.concat_tables(tables).select(["obs", "acts"])
    return datasets.Dataset(datasets.table.MemoryMappedTable(table, str(ds.path))).with_format("torch")


def measure(ds: ildata.TrajectoryDataset, sampler: type[Timed], batch_size: int, n_gradient_steps: int) -> tuple[float, float]:
    """(transitions/s, sampling share) of `n_gradient_steps` BC steps after a short warm-up."""
    seed_everything(0, threads=1)

    class Bench(BC):
        sampler_cls = sampler

    cfg = BCConfig(batch_size=batch_size, n_gradient_steps=20, log_interval=20)
    Bench(cfg, observation_space=ds.observation_space, action_space=ds.action_space).fit(ds)  # warm-up
    cfg = BCConfig(batch_size=batch_size, n_gradient_steps=n_gradient_steps, log_interval=n_gradient_steps)
    algo = Bench(cfg, observation_space=ds.observation_space, action_space=ds.action_space)
    Timed.seconds = 0.0
    started = time.perf_counter()
    algo.fit(ds)
    total = time.perf_counter() - started
    return batch_size * n_gradient_steps / total, Timed.seconds / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500_000, help="synthetic dataset size (default 500k)")
    parser.add_argument("--bc-steps", type=int, default=1000, help="gradient steps per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ds = synthetic_dataset(Path(tmp), args.steps)
        print(
            f"synthetic store: {ds.num_transitions} transitions, obs f32[17], act f32[6] "
            f"(written in {time.perf_counter() - started:.1f}s); torch threads 1"
        )
        HFSampler.hf = hf_view(ds)
        print(f"{'batch':>5} {'sampler':>9} {'transitions/s':>14} {'sampling share':>15} {'ildata speed-up':>16}")
        for batch_size in (32, 256):
            results = {
                name: measure(ds, cls, batch_size, args.bc_steps)
                for name, cls in (("ildata", Timed), ("naive", NaiveSampler), ("hf-torch", HFSampler))
            }
            ours = results["ildata"][0]
            for name, (rate, share) in results.items():
                ratio = "" if name == "ildata" else f"{ours / rate:.2f}x"
                print(f"{batch_size:>5} {name:>9} {rate:>14,.0f} {share:>14.0%} {ratio:>16}")


if __name__ == "__main__":
    main()
