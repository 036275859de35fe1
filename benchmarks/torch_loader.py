"""Torch data loading from a store (algos.torch_data) against same-process baselines.

Usage: python benchmarks/torch_loader.py [--steps 20000 --batch 256 --batches 40 --workers 0]

Workload: synthetic image demonstrations, uint8 84x84x3 observations and int64 actions, episodes
of 500 steps, saved as an ildata store in a temporary folder (made here). Every case reads
shuffled batches of `--batch` transitions (obs + acts) through a torch DataLoader:
- naive: a per-item `Dataset` over the same memory-mapped arrays, default collation
  (the baseline every ratio is against);
- hf: `datasets.Dataset.with_format("torch")` over the same Arrow table, DataLoader over it;
- ildata: `TransitionDataset` + `make_loader` (one `__getitems__` fancy index per batch);
- windows: the same for 8-step windows (`WindowDataset`), against a naive per-item window
  Dataset (each item slices its window and pads with the last step).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ildata
from algos.torch_data import TransitionDataset, WindowDataset, make_loader
from ildata.episode import Episode

EPISODE_LENGTH = 500
WINDOW = 8


def make_store(path: Path, steps: int) -> ildata.TrajectoryDataset:
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(max(1, steps // EPISODE_LENGTH)):
        obs = rng.integers(0, 256, (EPISODE_LENGTH + 1, 84, 84, 3), dtype=np.uint8)
        acts = rng.integers(0, 6, EPISODE_LENGTH)
        episodes.append(Episode(obs=obs, acts=acts, rews=np.ones(EPISODE_LENGTH, np.float32), terminated=True))
    return ildata.save(episodes, path)


class NaiveTransitions(Dataset[dict[str, torch.Tensor]]):
    """What a first torch Dataset over the arrays looks like: one item at a time."""

    def __init__(self, obs: np.ndarray, acts: np.ndarray):
        self.obs, self.acts = obs, acts

    def __len__(self) -> int:
        return len(self.acts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"obs": torch.from_numpy(np.array(self.obs[i])), "acts": torch.tensor(self.acts[i])}


class NaiveWindows(Dataset[dict[str, torch.Tensor]]):
    """Per-item windows: slice the episode, pad with its last step, build the mask."""

    def __init__(self, ds: ildata.TrajectoryDataset):
        self.obs = ds.transitions().obs
        self.acts = ds.transitions().acts
        self.starts = np.repeat(ds.first_rows, ds.lengths) + np.concatenate([np.arange(n) for n in ds.lengths])
        self.ends = np.repeat(ds.first_rows + ds.lengths, ds.lengths)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start, end = int(self.starts[i]), int(self.ends[i])
        rows = np.minimum(np.arange(start, start + WINDOW), end - 1)
        assert isinstance(self.obs, np.ndarray)
        return {
            "obs": torch.from_numpy(self.obs[rows]),
            "acts": torch.from_numpy(self.acts[rows]),
            "mask": torch.from_numpy(np.arange(start, start + WINDOW) < end),
        }


def timed(loader: Iterable[dict[str, torch.Tensor]], batches: int) -> tuple[float, int]:
    """Seconds for `batches` batches after two warm-up batches, and the samples read."""
    it = iter(loader)
    for _ in range(2):
        next(it)
    samples = 0
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        samples += len(batch["acts"])
    return time.perf_counter() - start, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--skip-hf", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_store(Path(tmp) / "images", args.steps)
        tr = ds.transitions()
        assert isinstance(tr.obs, np.ndarray)
        tr.obs.max()  # every case then reads from the page cache, whichever runs first
        print(f"store: {len(ds)} episodes, {ds.num_transitions} steps, obs {tr.obs.dtype}{tr.obs.shape[1:]}, batch {args.batch}")
        common = dict(num_workers=args.workers, persistent_workers=args.workers > 0)
        rows: list[tuple[str, float, int, str]] = []

        naive = DataLoader(NaiveTransitions(tr.obs, tr.acts), batch_size=args.batch, shuffle=True, **common)
        rows.append(("naive per-item Dataset", *timed(naive, args.batches), "uint8"))
        if not args.skip_hf:
            from datasets import Array3D, Features, Value  # type: ignore[attr-defined]
            from datasets import Dataset as HFDataset  # type: ignore[attr-defined]

            # Array3D: datasets' own type for fixed-shape arrays (its formatter reads them through
            # numpy; the store's nested fixed-size lists inferred as Sequence go through Python
            # lists, ~7 samples/s here)
            features = Features({"obs": Array3D(shape=(84, 84, 3), dtype="uint8"), "acts": Value("int64")})
            hf = HFDataset.from_dict({"obs": tr.obs, "acts": tr.acts}, features=features).with_format("torch")
            hf_loader = DataLoader(hf, batch_size=args.batch, shuffle=True, **common)
            dtype = str(next(iter(hf_loader))["obs"].dtype).removeprefix("torch.")
            rows.append(('datasets with_format("torch")', *timed(hf_loader, args.batches), dtype))
        ours = make_loader(TransitionDataset(ds, keys=("obs", "acts")), batch_size=args.batch, num_workers=args.workers)
        rows.append(("ildata TransitionDataset", *timed(ours, args.batches), "uint8"))
        base = rows[0][2] / rows[0][1]
        print(f"\n{'transitions (obs + acts)':32s} {'samples/s':>10s} {'MB/s':>8s} {'vs naive':>9s}  obs dtype")
        for name, seconds, samples, dtype in rows:
            rate = samples / seconds
            print(f"{name:32s} {rate:10.0f} {rate * 84 * 84 * 3 / 1e6:8.0f} {rate / base:8.2f}x  {dtype}")

        naive_w = DataLoader(NaiveWindows(ds), batch_size=args.batch, shuffle=True, **common)
        ours_w = make_loader(WindowDataset(ds, WINDOW, keys=("obs", "acts")), batch_size=args.batch, num_workers=args.workers)
        windows = [("naive per-item windows", *timed(naive_w, args.batches)), ("ildata WindowDataset", *timed(ours_w, args.batches))]
        base = windows[0][2] / windows[0][1]
        print(f"\n{f'{WINDOW}-step windows (obs + acts)':32s} {'windows/s':>10s} {'MB/s':>8s} {'vs naive':>9s}")
        for name, seconds, samples in windows:
            rate = samples / seconds
            print(f"{name:32s} {rate:10.0f} {rate * WINDOW * 84 * 84 * 3 / 1e6:8.0f} {rate / base:8.2f}x")


if __name__ == "__main__":
    main()
