"""`ildata sweep RECIPE --seeds 0-9 [--grid KEY=V1,V2 ...] --out SWEEP_DIR`: a grid x seeds of
ordinary run folders, run as Ray tasks, with a summary over seeds (docs/sweeps.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = """examples:
  ildata sweep recipes/bc-cartpole.yaml --seeds 0-9 --out sweeps/bc
  ildata sweep recipes/bc-cartpole.yaml --seeds 0-4 --grid config.learning_rate=1e-3,3e-4 --grid config.batch_size=32,64 --out sweeps/bc-lr
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
            "of the IQM over seeds, env steps and wall time (summary.json, summary.md, scores.png, curves.png)."
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
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key in every run")
    p.add_argument("--out", type=Path, required=True, help="the sweep folder (rerun the same command to resume)")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray the sweep starts: runs at a time (default: all cores)")
    p.add_argument("--address", help="join this Ray cluster (`ray start --head` prints it) instead of starting a local Ray")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (progress goes to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from algos.sweep import parse_grid, parse_seeds, plan_sweep, run_sweep  # lazy: torch and ray stay out of `ildata --help`
    from ildata.episode import DataError

    args.error_subject = args.recipe
    if args.cpus is not None and args.cpus < 1:
        raise DataError(f"--cpus: must be at least 1, got {args.cpus}")
    if args.cpus is not None and args.address is not None:
        raise DataError("--cpus sets the local Ray's size: with --address the cluster's CPUs are used")
    seeds = parse_seeds(args.seeds)
    grid = parse_grid(args.grid)
    sweep = plan_sweep(args.recipe, seeds=seeds, grid=grid, overrides=args.overrides, out=args.out)
    args.error_subject = None

    def echo(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    echo(f"sweep: {len(sweep.runs)} runs ({len(sweep.labels())} configurations x {len(seeds)} seeds) in {sweep.out}")
    results, summary = run_sweep(sweep, cpus=args.cpus, address=args.address, echo=echo)
    failed = [r for r in results if r.status == "failed"]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
        print(f"summary: {sweep.out / 'summary.md'} (plots: scores.png, curves.png)")
    for r in failed:
        print(f"ildata: sweep: run {r.spec.run_dir} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _print_table(summary: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    from algos.sweep import COLUMNS, summary_rows

    table = Table(title="normalised score over seeds (IQM 95% CI: percentile bootstrap, rliable's method)")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in summary_rows(summary):
        table.add_row(*row)
    # Off a terminal rich assumes 80 columns and would fold the configuration names.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
