"""One harness for every online imitation algorithm: algorithm x env x seeds -> one table.

    python benchmarks/online.py                       # every entry, 3 seeds, writes RESULTS-online.md
    python benchmarks/online.py --only dagger-cartpole --seeds 5 --out /tmp/x.md

Each entry is a recipe (plus `--set`-style overrides). Per seed the recipe is prepared exactly as
`ildata train` prepares it (seed pinned, one torch thread), `fit` is timed end to end (env steps,
labelling, store writes and learner updates together), and the policy is evaluated on
`--episodes` seeded episodes. Scores are normalised between a random policy and the expert,
both re-measured here over the same evaluation episodes (ONLINE-NOTES asks for >= 100).

Columns: normalised score (mean over seeds and a 95% bootstrap interval), env steps taken (the
vec env's counter: an upper bound the budget enforces), expert labels (DAgger), wall time of
`fit`, and env steps per second end to end. GAIL, AIRL and preference comparisons add entries.
"""

from __future__ import annotations

import argparse
import functools
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS-online.md"
# imitation 1.0.1's DAgger end to end on seals/CartPole (ONLINE-NOTES, measured on a 2-core machine).
IMITATION_DAGGER_STEPS_PER_S = 700.0


@dataclass
class Entry:
    """A benchmark row: a recipe, its overrides, and the expert that scores it."""

    recipe: str
    overrides: list[str] = field(default_factory=list)


ENTRIES: dict[str, Entry] = {
    "dagger-cartpole": Entry("recipes/dagger-cartpole.yaml"),
    "dagger-pendulum": Entry("recipes/dagger-pendulum.yaml"),
    # Throughput: 8 envs, rounds of 4,000 env steps (8 whole episodes), BC 4 epochs over each
    # new round (500 gradient steps at batch 32): imitation's DAgger trains 4 epochs per round too,
    # but over all the data so far.
    "dagger-cartpole-8env": Entry(
        "recipes/dagger-cartpole.yaml",
        [
            "config.num_envs=8",
            "config.steps_per_round=4000",
            "config.rounds=10",
            "config.total_timesteps=40000",
            "config.bc.n_gradient_steps=500",
            "config.bc.log_interval=500",
        ],
    ),
}


NOTES = """\
Reading the table:

- `env steps` is the vec env's own counter: `total_timesteps` is an upper bound on it (evaluation
  and the reference returns are not counted). `expert labels` are the labelled steps stored in the
  run's `rollouts/` store (steps of episodes still running when the budget ran out are not stored).
- `dagger-cartpole` and `dagger-pendulum` are the recipes as shipped (tuned for few labels: BC
  takes 1,000 gradient steps per round of 1,000-2,000 env steps, which dominates their wall time).
  `dagger-cartpole-8env` is the throughput setting: 8 envs, rounds of 4,000 env steps and BC 4
  epochs over each new round; imitation's DAgger also trains 4 epochs per round, but over all the
  data so far, after writing each episode to its own file and re-flattening every earlier round.
- The machine is shared (2 cores, several engineers): wall times vary by up to 3x between seeds.
"""


def bootstrap_interval(values: np.ndarray, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _keep(rows: list[dict[str, float]], step: int, metrics: dict[str, float]) -> None:
    rows.append(metrics)


def run_entry(name: str, entry: Entry, seeds: list[int], episodes: int) -> dict[str, object]:
    """Train and evaluate one entry for every seed; the row of the table."""
    from algos.policies import evaluate, normalized_score
    from algos.recipe import load_recipe
    from algos.train import prepare

    scores, steps, labels, walls = [], [], [], []
    refs: dict[str, float | None] = {}
    env_id = ""
    for seed in seeds:
        recipe = load_recipe(ROOT / entry.recipe, [*entry.overrides, f"seed={seed}"])
        prepared = prepare(recipe)
        assert prepared.env_id is not None
        env_id = prepared.env_id
        if not refs:
            refs = prepared.algo.reference_returns(env_id, episodes, recipe.eval.seed)
        rows: list[dict[str, float]] = []
        started = time.perf_counter()
        prepared.algo.fit(prepared.dataset, env_id=env_id, log=functools.partial(_keep, rows))
        walls.append(time.perf_counter() - started)
        steps.append(rows[-1].get("env_steps", float("nan")))
        labels.append(rows[-1].get("labelled_steps", float("nan")))
        assert prepared.algo.policy is not None
        result = evaluate(prepared.algo.policy, env_id, episodes, seed=recipe.eval.seed)
        score = normalized_score(result["mean"], refs["random_return"], refs["expert_return"])
        scores.append(float("nan") if score is None else score)
        print(f"{name} seed {seed}: score {scores[-1]:.3f}, {steps[-1]:.0f} env steps in {walls[-1]:.1f} s", flush=True)
    values = np.asarray(scores)
    return {
        "name": name,
        "env": env_id,
        "seeds": len(seeds),
        "score": float(values.mean()),
        "interval": bootstrap_interval(values),
        "env_steps": float(np.mean(steps)),
        "labels": float(np.mean(labels)),
        "wall": float(np.mean(walls)),
        "steps_per_s": float(np.sum(steps) / np.sum(walls)),
        "random": refs["random_return"],
        "expert": refs["expert_return"],
    }


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| entry | env | seeds | normalised score (95% CI) | env steps | expert labels | wall s | env steps/s | random / expert return |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        interval = r["interval"]
        assert isinstance(interval, tuple)
        low, high = interval
        lines.append(
            f"| {r['name']} | {r['env']} | {r['seeds']} | {r['score']:.3f} ({low:.3f} - {high:.3f}) | {r['env_steps']:.0f} | "
            f"{r['labels']:.0f} | {r['wall']:.1f} | {r['steps_per_s']:.0f} | {r['random']:.1f} / {r['expert']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(ENTRIES), help="entries to run (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per seed (and for the references)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = args.only or sorted(ENTRIES)
    rows = [run_entry(name, ENTRIES[name], list(range(args.seeds)), args.episodes) for name in names]
    text = table(rows)
    print(text)
    header = (
        "# Online imitation benchmarks\n\n"
        f"`python benchmarks/online.py --seeds {args.seeds} --episodes {args.episodes}` on {platform.platform()}, "
        f"{time.strftime('%Y-%m-%d')}. Wall time is `fit` alone (rollouts, labelling, store, learner updates); "
        f"env steps/s is end to end over it. imitation 1.0.1's DAgger: about {IMITATION_DAGGER_STEPS_PER_S:.0f} env steps/s "
        "on seals/CartPole on a 2-core machine (ONLINE-NOTES).\n\n"
    )
    args.out.write_text(header + text + "\n\n" + NOTES)


if __name__ == "__main__":
    main()
