"""What a sweep costs: runs per minute of a small `ildata sweep` on this machine, and the overhead
of a run in a sweep against the same run alone in this process.

    python benchmarks/sweep_overhead.py                  # bc-cartpole as shipped, 6 seeds, writes RESULTS-sweep.md
    python benchmarks/sweep_overhead.py --seeds 6 --set config.n_gradient_steps=1000 --out /tmp/x.md

Three measurements, each end to end on the same recipe and seeds (`algos.sweep`, the code behind
`ildata sweep`, with a fresh local Ray started and shut down inside the timing):

1. alone: `load_recipe` + `run_recipe` for each seed, one after another in this process (the
   imports and a warm-up run done beforehand): what `ildata train` costs per run without its interpreter start.
2. sweep on 1 CPU: the same runs as Ray tasks one at a time; (sweep wall / runs) / (alone per run)
   is the overhead ratio of a run in a sweep: Ray's start, a worker process importing torch and
   the algorithms, scheduling, result passing. The mean time inside the tasks against alone says
   how much of it is the run itself running slower in a worker.
3. sweep on `--cpus` CPUs (default 2): runs per minute, Ray's start included.

The start and shutdown of a local Ray with no task is timed too (a sweep's fixed cost).

The metrics of each sweep run equal the run alone (checked here too: same metrics.csv).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS-sweep.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "bc-cartpole.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from algos import sweep as sw
    from algos.recipe import load_recipe
    from algos.train import run_recipe

    seeds = list(range(args.seeds))
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        work = Path(tmp)
        warm = load_recipe(args.recipe, [*args.overrides, "seed=0"])
        run_recipe(warm, out=work / "warm-up", echo=lambda _: None, progress="lines")
        alone_times = []
        for seed in seeds:
            recipe = load_recipe(args.recipe, [*args.overrides, f"seed={seed}"])
            started = time.perf_counter()
            run_recipe(recipe, out=work / "alone" / f"seed-{seed}", echo=lambda _: None, progress="lines")
            alone_times.append(time.perf_counter() - started)
        alone = sum(alone_times) / len(alone_times)

        def timed_sweep(cpus: int) -> tuple[float, list[sw.RunResult]]:
            sweep = sw.plan_sweep(args.recipe, seeds=seeds, grid={}, overrides=args.overrides, out=work / f"sweep-{cpus}cpu")
            started = time.perf_counter()
            results, _ = sw.run_sweep(sweep, cpus=cpus, echo=lambda _: None)
            elapsed = time.perf_counter() - started
            failed = [r.error for r in results if r.status == "failed"]
            if failed:
                raise SystemExit(f"a sweep run failed: {failed[0]}")
            for spec in sweep.runs:
                alone_csv = (work / "alone" / f"seed-{spec.seed}" / "metrics.csv").read_text()
                if (spec.run_dir / "metrics.csv").read_text() != alone_csv:
                    raise SystemExit(f"seed {spec.seed}: the sweep run's metrics differ from the run alone")
            return elapsed, results

        import ray

        started = time.perf_counter()
        sw.start_ray(args.cpus, None)
        ray.shutdown()
        ray_start = time.perf_counter() - started
        one_wall, one_results = timed_sweep(1)
        many_wall, many_results = timed_sweep(args.cpus)

    n = len(seeds)
    in_task_one = sum(r.seconds for r in one_results) / n
    in_task_many = sum(r.seconds for r in many_results) / n
    sets = "".join(f" --set {o}" for o in args.overrides)
    say(f"`python benchmarks/sweep_overhead.py --seeds {n} --cpus {args.cpus}{sets}`, recipe {args.recipe.relative_to(ROOT)}")
    say(f"on {platform.platform()}, {os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}.")
    say("")
    say("| measurement | value |")
    say("|---|---|")
    say(f"| run alone in this process (mean of {n}) | {alone:.1f} s ({60 / alone:.1f} runs/min one after another) |")
    say(f"| a local Ray's start and shutdown, no task | {ray_start:.1f} s |")
    say(f"| sweep on 1 CPU, {n} runs, Ray start included | {one_wall:.1f} s = {one_wall / n:.1f} s per run |")
    say(f"| overhead ratio: sweep per run / alone (1 CPU) | {one_wall / n / alone:.2f} |")
    say(f"| time inside a sweep task / alone (1 CPU) | {in_task_one / alone:.2f} |")
    say(f"| sweep on {args.cpus} CPUs, {n} runs, Ray start included | {many_wall:.1f} s = **{n / many_wall * 60:.1f} runs/min** |")
    say(f"| time inside a sweep task / alone ({args.cpus} CPUs, runs share the cores) | {in_task_many / alone:.2f} |")
    say("")
    say("Every sweep run's metrics.csv equals the same seed's run alone.")
    args.out.write_text("# Sweep throughput and overhead\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
