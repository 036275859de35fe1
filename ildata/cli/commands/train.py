"""`ildata train RECIPE.yaml [--set key=value ...]`: run a recipe, write a run folder."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ildata.cli.interrupts import INTERRUPTS

EXAMPLES = """examples:
  ildata train recipes/bc-cartpole.yaml
  ildata train recipes/bc-cartpole.yaml --set config.n_gradient_steps=5000 --seed 1
  ildata train recipes/bc-cartpole.yaml --out runs/bc --set config.checkpoint_every=500
  ildata train recipes/bc-cartpole.yaml --resume runs/bc             # after an interruption (Ctrl-C)
  ildata train recipes/dagger-cartpole.yaml --resume runs/dagger     # DAgger resumes by rounds
"""


class _HelpWithAlgorithms(argparse.Action):
    """`ildata train --help` lists the registered algorithms; the registry imports torch, so it is
    read only when help is asked for (building the parser must stay cheap for `ildata --help`)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help="show this help (with the algorithms) and exit"
        )

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None
    ) -> None:
        from algos.base import ALGORITHMS

        rows = []
        for name, cls in ALGORITHMS.items():
            summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            rows.append(f"  {name:<16} {summary}  [{cls.__module__}.{cls.Config.__name__}]")
        parser.epilog = (
            "algorithms (recipe `algo:`; the config keys of each are the fields of the dataclass in brackets,\n"
            "documented there; recipes/ has a working recipe for each):\n" + "\n".join(rows) + "\n\n" + _learner_help() + "\n\n" + EXAMPLES
        )
        parser.print_help()
        parser.exit()


def _learner_help() -> str:
    """The `config.learner:` block of the online algorithms: one typed config per RL learner."""
    from algos.online.learner_configs import CONFIGS

    rows = [f"  {name:<5} {', '.join(f.name for f in fields(cls) if f.name != 'algo')}" for name, cls in CONFIGS.items()]
    return (
        "learners (`config.learner:` of rl, gail, airl, preference_comparisons; `algo:` picks one, its keys\n"
        "are below, e.g. --set config.learner.learning_rate=1e-3):\n" + "\n".join(rows)
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an algorithm from a recipe and write a run folder (metrics, policy, evaluation)",
        description="The recipe is checked (keys, types, dataset, env spaces) before anything trains.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_HelpWithAlgorithms)
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set config.n_gradient_steps=1000 (value parsed as YAML)",
    )
    p.add_argument("--seed", type=int, help="the run's seed (overrides the recipe's `seed:`)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<name>-<timestamp>)")
    p.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard logs to RUN/tensorboard/ (the recipe's `tensorboard: true`)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="print only the run folder")
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "lines"],
        default="auto",
        help="a progress bar (default on a terminal) or about ten lines per run (default otherwise, e.g. CI logs)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue an interrupted run of the same recipe from its last checkpoint (bc: every config.checkpoint_every steps; dagger: every round)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ildata.episode import DataError

    args.error_subject = args.recipe
    overrides = [*args.overrides, *([f"seed={args.seed}"] if args.seed is not None else [])]
    if args.tensorboard:
        overrides.append("tensorboard=true")
    # The same command with --resume: what an interrupted run's line tells the user to run.
    seed = f" --seed {args.seed}" if args.seed is not None else ""
    sets = "".join(f" --set {o}" for o in args.overrides) + (" --tensorboard" if args.tensorboard else "")
    again = f"ildata train {args.recipe}{sets}{seed}"
    recipe = None
    try:
        from algos.recipe import load_recipe  # lazy: keeps `ildata --help` free of torch
        from algos.train import run_recipe

        recipe = load_recipe(args.recipe, overrides)
        if args.resume is not None and (args.out is not None or args.overwrite):
            raise DataError("--resume continues RUN in place: --out and --overwrite do not apply")
        echo = (lambda _: None) if args.quiet else print
        run_dir = run_recipe(recipe, out=args.out, overwrite=args.overwrite, echo=echo, resume=args.resume, progress=args.progress)
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or INTERRUPTS.presses):
            raise
        # `main` prints this as the one line `ildata: interrupted: ...`.
        raise KeyboardInterrupt(_interrupted(exc, recipe, again)) from None
    if args.quiet:
        print(run_dir)
    return 0


def _interrupted(exc: BaseException, recipe: object, again: str) -> str:
    """What an interrupt leaves: a checkpoint to resume from (and the command that does), or nothing."""
    algo = getattr(recipe, "algo", None)
    if algo is None:  # interrupted while the recipe loaded: algos may be half imported, so not used here
        return "nothing to resume (training had not started)"
    from algos.base import ALGORITHMS
    from algos.train import RunInterrupted

    if isinstance(exc, RunInterrupted):
        return f"{exc}; continue with: {again} --resume {exc.run_dir}"
    if ALGORITHMS[algo].resumable:
        return "nothing to resume (stopped before the first checkpoint)"
    return f"nothing to resume (algo {algo} saves no checkpoints)"
