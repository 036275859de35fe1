"""Env steps/s of seals/CartPole-v0 raw vs with a learned reward (the online layer's overhead).

    python benchmarks/reward_wrapper_overhead.py            # 8 envs, best of 20 rounds of 1k vector steps

Variants, all on 8 `seals/CartPole-v0` envs in one SB3 `DummyVecEnv` with pre-drawn random actions:
  raw       - `algos.online.vec_env.make_vec_env` alone (Monitor per env, seeded episodes)
  wrapped   - + `RewardVecEnvWrapper` calling a 2x32 `RewardNet` (state-action, input
              normalisation) once per vector step on the whole batch
  recorded  - + `EpisodeRecorder` inside the reward wrapper (what an online round runs)
Prints steps/s and the slowdown ratio (issue 9 asks for wrapped/raw <= 1.5x; imitation's
BufferingWrapper + RewardVecEnvWrapper stack: 4.6x, quoted in benchmarks/REFERENCE-imitation.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stable_baselines3.common.vec_env import VecEnv

from algos.online.recorder import EpisodeRecorder
from algos.online.reward_nets import RewardNet
from algos.online.reward_wrapper import RewardVecEnvWrapper
from algos.online.vec_env import make_vec_env

ENV_ID = "seals/CartPole-v0"
VARIANTS = ("raw", "wrapped", "recorded")


def build(variant: str, num_envs: int) -> VecEnv:
    venv: VecEnv = make_vec_env(ENV_ID, num_envs, seed=0)
    if variant == "recorded":
        venv = EpisodeRecorder(venv)
    if variant in ("wrapped", "recorded"):
        net = RewardNet(venv.observation_space, venv.action_space)
        venv = RewardVecEnvWrapper(venv, net.predict)
    return venv


def measure(num_envs: int, vector_steps: int, repeats: int) -> dict[str, float]:
    """Best env steps/s of each variant over `repeats` rounds, variants interleaved in each
    round, so that another process's burst on a shared machine hits them alike."""
    venvs = {variant: build(variant, num_envs) for variant in VARIANTS}
    actions = np.random.default_rng(0).integers(0, 2, size=(vector_steps, num_envs))
    best = dict.fromkeys(VARIANTS, 0.0)
    for _ in range(repeats):
        for variant, venv in venvs.items():
            venv.reset()
            start = time.perf_counter()
            for t in range(vector_steps):
                venv.step(actions[t])
            best[variant] = max(best[variant], vector_steps * num_envs / (time.perf_counter() - start))
            if isinstance(venv, RewardVecEnvWrapper) and isinstance(venv.venv, EpisodeRecorder):
                venv.venv.pop_batch()
    for venv in venvs.values():
        venv.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--vector-steps", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = measure(args.envs, args.vector_steps, args.repeats)
    for variant, rate in results.items():
        print(f"{variant:9s} {rate:10,.0f} env steps/s  slowdown {results['raw'] / rate:.2f}x")
    print(f"reward wrapper overhead ratio (raw / wrapped): {results['raw'] / results['wrapped']:.2f}x")


if __name__ == "__main__":
    main()
