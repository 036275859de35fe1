"""GAIL / AIRL benchmark rows (issue 9 §4), runnable on its own; same columns as benchmarks/online.py.

    python benchmarks/adversarial.py                       # default rows, 3 seeds each
    python benchmarks/adversarial.py --rows gail-cartpole --seeds 0 1 2 3 4

Each row trains from a recipe's settings (recipes/*.yaml, `--set`-style overrides in ROWS) and
prints: normalised score mean with a 95% bootstrap CI over seeds, env steps, wall time, env
steps/s. Reference returns (random and expert) are re-measured with `--reference-episodes`
episodes (ONLINE-NOTES: at least 100). The `reward-transfer` row trains a fresh PPO on the
saved AIRL `reward_test` (`config.reward_from`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name -> (recipe, config overrides)
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "gail-cartpole": ("recipes/gail-cartpole.yaml", {}),
    "gail-cartpole-learner-first": ("recipes/gail-cartpole.yaml", {"round_order": "learner_first"}),
    "gail-cartpole-bc-warm": ("recipes/gail-cartpole.yaml", {"bc_warm_start_steps": 1000, "total_timesteps": 50_000}),
    "airl-cartpole": ("recipes/airl-cartpole.yaml", {}),
    "airl-cartpole-learner-first": ("recipes/airl-cartpole.yaml", {"round_order": "learner_first"}),
    "airl-cartpole-500k": ("recipes/airl-cartpole.yaml", {"total_timesteps": 500_000}),
    "gail-pendulum-sac": ("recipes/gail-pendulum.yaml", {}),
    # PPO as rl-zoo's Pendulum settings without gSDE (4 envs x 1024 steps, gamma 0.9, lr 1e-3); not run yet
    "gail-pendulum-ppo-500k": (
        "recipes/gail-pendulum.yaml",
        {
            "total_timesteps": 500_000,
            "n_envs": 4,
            "gen_steps_per_round": None,
            "disc_updates_per_round": 8,
            "reward_normalization": "standard",
            "learner": {"algo": "ppo", "rollout_steps": 1024, "batch_size": 64, "n_epochs": 10, "learning_rate": 1e-3, "gamma": 0.9},
        },
    ),
}


def bootstrap_ci(values: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean over seeds."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (n, len(values))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def reference_returns(env_id: str, expert: Any, episodes: int) -> tuple[float, float]:
    from algos.policies import Random, evaluate, load_policy
    from ildata.envs import env_spaces

    obs_space, act_space = env_spaces(env_id)
    random_return = evaluate(Random(obs_space, act_space, seed=0), env_id, episodes, seed=500_000)["mean"]
    expert_return = evaluate(load_policy(expert, env_id=env_id), env_id, episodes, seed=500_000)["mean"] if expert else float("nan")
    return float(random_return), float(expert_return)


def run_row(name: str, seeds: list[int], ref_episodes: int) -> dict[str, Any]:
    from algos.base import seed_everything
    from algos.policies import evaluate
    from algos.recipe import load_recipe
    from algos.train import prepare

    recipe_path, overrides = ROWS[name]
    sets = [f"config.{k}={json.dumps(v)}" for k, v in overrides.items()]  # JSON is YAML (None -> null)
    scores, steps, walls, transfers = [], [], [], []
    for seed in seeds:
        recipe = load_recipe(REPO / recipe_path, [*sets, f"seed={seed}"])
        prepared = prepare(recipe)
        seed_everything(seed, recipe.threads)
        started = time.perf_counter()
        metrics = prepared.algo.fit(prepared.dataset, env_id=prepared.env_id)
        walls.append(time.perf_counter() - started)
        steps.append(metrics["env_steps"])
        assert prepared.env_id is not None and prepared.algo.policy is not None
        ret = evaluate(prepared.algo.policy, prepared.env_id, 20, seed=100_000)["mean"]
        scores.append(ret)
        if name == "airl-cartpole-500k":  # the reward transfers: a fresh PPO on the saved g
            with tempfile.TemporaryDirectory() as tmp:
                prepared.algo.save(tmp)
                fresh = load_recipe(
                    REPO / "recipes/airl-cartpole.yaml", [f"config.reward_from={tmp}", "config.total_timesteps=200000", f"seed={seed}"]
                )
                again = prepare(fresh)
                again.algo.fit(again.dataset, env_id=again.env_id)
                assert again.algo.policy is not None
                transfer = evaluate(again.algo.policy, again.env_id or "", 20, seed=100_000)["mean"]
                transfers.append(transfer)
                print(f"  seed {seed}: fresh PPO on the saved reward_test: return {transfer:.1f}", flush=True)
        print(f"  {name} seed {seed}: return {ret:.1f}, {metrics['env_steps']:.0f} env steps, {walls[-1]:.0f} s", flush=True)
    env_id = prepare(load_recipe(REPO / recipe_path, sets)).env_id or ""
    expert = "datasets/experts/ppo-cartpole-v1-sb3.zip" if "cartpole" in name else None
    random_return, expert_return = reference_returns(env_id, str(REPO / expert) if expert else None, ref_episodes)
    if expert is None:  # no shipped Pendulum expert policy: the demonstrations' mean return
        ds = prepare(load_recipe(REPO / recipe_path, sets)).dataset
        returns = ds.returns if ds is not None else None
        expert_return = float(np.mean(returns)) if returns is not None else float("nan")
    normalised = (np.array(scores) - random_return) / (expert_return - random_return)
    low, high = bootstrap_ci(normalised)
    if transfers:  # a fresh PPO (200k env steps) on each seed's saved reward_test
        moved = (np.array(transfers) - random_return) / (expert_return - random_return)
        print(f"  {name}: fresh PPO on the saved reward_test, normalised per seed {[round(float(s), 3) for s in moved]}", flush=True)
    return {
        "row": name,
        "score": float(normalised.mean()),
        "ci": (low, high),
        "per_seed": [round(float(s), 3) for s in normalised],
        "env_steps": float(np.mean(steps)),
        "wall_s": float(np.mean(walls)),
        "steps_per_s": float(np.sum(steps) / np.sum(walls)),
        "random": random_return,
        "expert": expert_return,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["gail-cartpole", "airl-cartpole"], choices=sorted(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--reference-episodes", type=int, default=100)
    args = parser.parse_args(argv)
    print("| row | normalised score (mean, 95% CI over seeds) | per seed | env steps | wall s | env steps/s |")
    print("|---|---|---|---|---|---|")
    for name in args.rows:
        r = run_row(name, args.seeds, args.reference_episodes)
        print(
            f"| {r['row']} | {r['score']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] | {r['per_seed']} | "
            f"{r['env_steps']:.0f} | {r['wall_s']:.0f} | {r['steps_per_s']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
