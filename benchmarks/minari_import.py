"""Minari import speed: ildata's reader against minari's own `iterate_episodes`, same process.

Usage: python benchmarks/minari_import.py [--steps 2000000] [--length 1000] [--backend arrow]

Workload: a Minari dataset of STEPS steps in episodes of LENGTH (every fifth one terminated, the
rest truncated), obs float32[17], acts float32[6] (HalfCheetah-sized), written in minari's
on-disk layout with pyarrow by `ildata.formats.minari_dir.write` (minari's own collector rescans
every file per episode, which is quadratic). Before timing, `minari.load_dataset` must read the
dataset back identical to what was written.

Timed, best of --repeat:
- minari: `minari.load_dataset(id)` then `iterate_episodes()` over every episode (the decoding
  any minari user pays, without even concatenating the episodes);
- ildata read: `minari_dir.read` (all episodes as one columnar EpisodeBatch);
- ildata convert: read + writing the ildata store (`ildata convert minari:ID DST`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_perf import timed

import ildata
from ildata.conversion import convert
from ildata.episode import EpisodeBatch
from ildata.formats import minari_dir


def make_dataset(root: Path, dataset_id: str, steps: int, length: int, backend: str) -> EpisodeBatch:
    import gymnasium as gym

    n_episodes = max(1, steps // length)
    rng = np.random.default_rng(0)
    lengths = np.full(n_episodes, length)
    terminated = np.arange(n_episodes) % 5 == 0
    batch = EpisodeBatch(
        obs=rng.standard_normal((int(lengths.sum() + n_episodes), 17), dtype=np.float32),
        acts=rng.uniform(-1, 1, (int(lengths.sum()), 6)).astype(np.float32),
        lengths=lengths,
        terminated=terminated,
        truncated=~terminated,
        termination_known=np.ones(n_episodes, dtype=bool),
        rews=rng.standard_normal(int(lengths.sum())),
    )
    store = ildata.save(
        batch,
        root / "store",
        observation_space=gym.spaces.Box(-np.inf, np.inf, (17,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (6,), np.float32),
    )
    minari_dir.write(store, minari_dir.resolve_minari_spec(dataset_id), data_format=backend)
    return batch


def check_minari_reads_it(dataset_id: str, batch: EpisodeBatch) -> None:
    import minari

    dataset = minari.load_dataset(dataset_id)
    episodes = list(dataset.iterate_episodes())
    assert len(episodes) == batch.num_episodes
    np.testing.assert_array_equal(np.concatenate([e.observations for e in episodes]), batch.obs)
    np.testing.assert_array_equal(np.concatenate([e.actions for e in episodes]), batch.acts)
    np.testing.assert_array_equal(np.concatenate([e.rewards for e in episodes]), batch.rews)
    np.testing.assert_array_equal([e.terminations[-1] for e in episodes], batch.terminated)
    np.testing.assert_array_equal([e.truncations[-1] for e in episodes], batch.truncated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--length", type=int, default=1000, help="steps per episode")
    parser.add_argument("--backend", default="arrow", choices=minari_dir.BACKENDS)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="minari-bench-") as work:
        root = Path(work)
        os.environ["MINARI_DATASETS_PATH"] = str(root / "minari")
        dataset_id = f"bench/halfcheetah-{args.backend}-v0"
        start = time.perf_counter()
        batch = make_dataset(root, dataset_id, args.steps, args.length, args.backend)
        path = minari_dir.resolve_minari_spec(dataset_id)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(
            f"# {batch.num_episodes} episodes x {args.length} steps = {batch.num_transitions:,} steps, "
            f"{args.backend} backend, {size / 1e6:.0f} MB, generated in {time.perf_counter() - start:.1f}s"
        )
        check_minari_reads_it(dataset_id, batch)
        print("# minari.load_dataset reads the generated dataset back identical")

        import minari

        def minari_iterate() -> int:
            steps = 0
            for episode in minari.load_dataset(dataset_id).iterate_episodes():
                steps += len(episode)
            return steps

        t_minari, steps = timed(minari_iterate, args.repeat)
        assert steps == batch.num_transitions
        t_read, source = timed(lambda: minari_dir.read(path), args.repeat)
        np.testing.assert_array_equal(source.batch.obs, batch.obs)
        np.testing.assert_array_equal(source.batch.acts, batch.acts)
        t_convert, _ = timed(lambda: convert(f"minari:{dataset_id}", root / "converted", overwrite=True), args.repeat)

        rate = batch.num_transitions / 1e6
        print(f"minari load_dataset+iterate_episodes {t_minari:8.2f} s  ({rate / t_minari:5.2f} M steps/s)")
        print(
            f"ildata minari reader                 {t_read:8.2f} s  ({rate / t_read:5.2f} M steps/s)  speed-up over minari {t_minari / t_read:5.1f}x"
        )
        print(
            f"ildata convert to a store            {t_convert:8.2f} s  ({rate / t_convert:5.2f} M steps/s)  speed-up over minari {t_minari / t_convert:5.1f}x"
        )
        if t_read >= t_minari:
            print("FAIL: the ildata reader is not faster than iterating with minari")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
