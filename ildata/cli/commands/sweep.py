"""`ildata sweep RECIPE --seeds 0-9 [--grid KEY=V1,V2 ... | --search KEY=DIST:ARGS ... --samples N]
--out SWEEP_DIR`: a grid (or configurations sampled by Ray Tune's random search) x seeds of ordinary
run folders, run as Ray tasks, with a summary over seeds (docs/sweeps.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = """examples:
  ildata sweep recipes/bc-cartpole.yaml --seeds 0-9 --out sweeps/bc
  ildata sweep recipes/bc-cartpole.yaml --seeds 0-4 --grid config.learning_rate=1e-3,3e-4 --grid config.batch_size=32,64 --out sweeps/bc-lr
  ildata sweep recipes/bc-cartpole.yaml --seeds 0-2 --search config.learning_rate=loguniform:1e-4:1e-2 --search config.batch_size=choice:32,64,128 --samples 8 --out sweeps/bc-search
  ildata sweep recipes/bc-cartpole.yaml --seeds 0-9 --out sweeps/bc --address 10.0.0.5:6379   # an existing Ray cluster
  (the same command again resumes: finished runs are skipped, interrupted ones continue or restart)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a recipe over a grid of overrides x seeds on Ray, each run an ordinary run folder, and summarise",
        description=(
            "Every combination of --grid values and --seeds is one run folder SWEEP_DIR/<config>/seed-<n>\n"
            "(what `ildata train --out` writes), run as a Ray task with one CPU. The summary gives per\n"
            "configuration the normalised score's mean, interquartile mean (IQM) and 95% bootstrap interval\n"
            "of the IQM over seeds, env steps and wall time (summary.json, summary.md, scores.png, curves.png).\n"
            "\n"
            "A search (--search, instead of --grid: the two are not combined) lets Ray Tune's random search\n"
            "draw --samples configurations (seeded by --search-seed, recorded in sweep.json so a rerun runs the\n"
            "same ones); each is run for every seed like a grid's, and the summary marks the configuration\n"
            "with the best mean over seeds of --metric."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--seeds", default="0", help="seeds: 0-9, 0,3,7 or 0-4,10 (default 0)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a recipe key and its values (each parsed as YAML, like --set); several --grid give their product",
    )
    p.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="KEY=DIST:ARGS",
        help="sample a recipe key: uniform:LOW:HIGH, loguniform:LOW:HIGH, randint:LOW:HIGH (HIGH excluded) or "
        "choice:V1,V2,... (Tune's distributions); not with --grid",
    )
    p.add_argument("--samples", type=int, metavar="N", help="configurations a search samples (default 10)")
    p.add_argument(
        "--search-seed",
        type=int,
        metavar="N",
        help="seed of the search's sampling (default 0): the same seed samples the same configurations",
    )
    p.add_argument(
        "--metric",
        metavar="NAME",
        help="what a search ranks configurations by, averaged over seeds: a number in eval.json or the last value of a "
        "metrics.csv column (default normalized_score)",
    )
    p.add_argument("--mode", choices=("max", "min"), help="whether the best --metric is the highest or the lowest (default max)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key in every run")
    p.add_argument("--out", type=Path, required=True, help="the sweep folder (rerun the same command to resume)")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray the sweep starts: runs at a time (default: all cores)")
    p.add_argument("--address", help="join this Ray cluster (`ray start --head` prints it) instead of starting a local Ray")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (progress goes to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: torch and ray stay out of `ildata --help`
    from algos.sweep import (
        Search,
        parse_grid,
        parse_search,
        parse_seeds,
        plan_sweep,
        run_sweep,
        search_line,
    )
    from ildata.episode import DataError

    args.error_subject = args.recipe
    if args.cpus is not None and args.cpus < 1:
        raise DataError(f"--cpus: must be at least 1, got {args.cpus}")
    if args.cpus is not None and args.address is not None:
        raise DataError("--cpus sets the local Ray's size: with --address the cluster's CPUs are used")
    seeds = parse_seeds(args.seeds)
    grid = parse_grid(args.grid)
    search = None
    if args.search:
        if args.metric is not None and not args.metric.strip():
            raise DataError("--metric: empty")
        search = Search(
            parse_search(args.search),
            samples=10 if args.samples is None else args.samples,
            seed=args.search_seed or 0,
            metric=args.metric or "normalized_score",
            mode=args.mode or "max",
        )
    else:
        given = [
            flag
            for flag, value in (
                ("--samples", args.samples),
                ("--search-seed", args.search_seed),
                ("--metric", args.metric),
                ("--mode", args.mode),
            )
            if value is not None
        ]
        if given:
            raise DataError(f"{given[0]}: only applies to a search (--search)")
    sweep = plan_sweep(args.recipe, seeds=seeds, grid=grid, overrides=args.overrides, out=args.out, search=search)
    args.error_subject = None

    def echo(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    sampled = f" sampled by Ray Tune's random search (seed {search.seed})" if search else ""
    echo(f"sweep: {len(sweep.runs)} runs ({len(sweep.labels())} configurations{sampled} x {len(seeds)} seeds) in {sweep.out}")
    try:
        results, summary = run_sweep(sweep, cpus=args.cpus, address=args.address, echo=echo)
    except KeyboardInterrupt:  # `main` prints the one line `ildata: interrupted: ...`
        raise KeyboardInterrupt(f"finished runs and checkpoints are kept in {sweep.out}; the same command continues the sweep") from None
    failed = [r for r in results if r.status == "failed"]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
        if "search" in summary:
            print(search_line(summary["search"]))
        print(f"summary: {sweep.out / 'summary.md'} (plots: scores.png, curves.png)")
    for r in failed:
        print(f"ildata: sweep: run {r.spec.run_dir} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _print_table(summary: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    from algos.sweep import summary_columns, summary_rows

    table = Table(title="normalised score over seeds (IQM 95% CI: percentile bootstrap, rliable's method)")
    for i, name in enumerate(summary_columns(summary)):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in summary_rows(summary):
        table.add_row(*row)
    # Off a terminal rich assumes 80 columns and would fold the configuration names.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
