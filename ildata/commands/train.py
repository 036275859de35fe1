"""`ildata train RECIPE.yaml [--set key=value ...]`: run a recipe, write a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an algorithm from a recipe and write a run folder (metrics, policy, evaluation)",
        description="The recipe is checked (keys, types, dataset, env spaces) before anything trains.",
    )
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set config.n_gradient_steps=1000 (value parsed as YAML)",
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/<name>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="print only the run folder")
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue an interrupted run of the same recipe from its last finished round (algorithms that train in rounds: dagger)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from algos.recipe import load_recipe  # lazy: keeps `ildata --help` free of torch
    from algos.train import run_recipe

    args.error_subject = args.recipe
    from ildata.episode import DataError

    recipe = load_recipe(args.recipe, args.overrides)
    if args.resume is not None and (args.out is not None or args.overwrite):
        raise DataError("--resume continues RUN in place: --out and --overwrite do not apply")
    echo = (lambda _: None) if args.quiet else print
    run_dir = run_recipe(recipe, out=args.out, overwrite=args.overwrite, echo=echo, resume=args.resume)
    if args.quiet:
        print(run_dir)
    return 0
