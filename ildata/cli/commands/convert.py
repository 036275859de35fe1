"""`ildata convert SRC DST`: any supported format -> an ildata store (or `--to` another format)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ildata.conversion import ExportResult


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a dataset (imitation pickle/npz/HF dir, Minari, d3rlpy, ildata) into an ildata store",
        description="Detects the source format by content and writes a new dataset atomically. SRC is never modified.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  ildata convert rollouts.pkl cartpole --env CartPole-v1      imitation pickle -> ildata store
  ildata convert minari:D4RL/door/human-v2 door-human          a Minari dataset from its root
  ildata convert cartpole cartpole-fixed --fixed-horizon truncate --horizon 200
  ildata convert cartpole minari:me/cartpole-v0 --to minari   export for Minari users
  ildata convert cartpole cartpole.h5 --to d3rlpy              export for d3rlpy""",
    )
    p.add_argument("src", help="source file or folder, or minari:NAMESPACE/NAME-vN")
    p.add_argument("dst", help="destination folder (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument(
        "--to",
        default="ildata",
        choices=["ildata", "parquet", "minari", "d3rlpy", "imitation"],
        help="output format (default: ildata, memory-mapped Arrow shards; parquet: an ildata store with parquet shards)",
    )
    p.add_argument("--env", dest="env_id", help="gymnasium env id: recorded, and its spaces used when the source has none")
    p.add_argument("--fixed-horizon", choices=["absorbing", "truncate"], help="make every episode the same length")
    p.add_argument("--horizon", type=int, help="target length for --fixed-horizon (default: longest for absorbing, shortest for truncate)")
    p.add_argument(
        "--shard-mb",
        type=float,
        help="largest data shard in MB (default 4096): a source read piece by piece is converted in about twice this much memory",
    )
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from ildata.cli import printable
    from ildata.conversion import ExportResult, convert
    from ildata.episode import DataError
    from ildata.store.shards import read_info

    if args.horizon is not None and args.fixed_horizon is None:
        raise DataError("--horizon needs --fixed-horizon absorbing|truncate (alone it would be ignored)")
    args.error_subject = args.src
    console = Console(stderr=True, quiet=args.quiet, soft_wrap=True)
    started = time.perf_counter()
    if args.shard_mb is not None and args.shard_mb <= 0:
        raise DataError(f"--shard-mb must be positive, got {args.shard_mb}")
    options: dict[str, Any] = dict(
        overwrite=args.overwrite,
        to=args.to,
        env_id=args.env_id,
        fixed_horizon=args.fixed_horizon,
        horizon=args.horizon,
        shard_bytes=None if args.shard_mb is None else int(args.shard_mb * 1e6),
    )
    if console.is_terminal and not args.quiet:
        result = _convert_with_progress(console, args, options)
    else:  # a progress display off a terminal only prints stray empty lines around the output
        result = convert(args.src, args.dst, open_store=False, **options)
    elapsed = time.perf_counter() - started
    if isinstance(result, ExportResult):
        console.print(escape(printable(f"wrote {args.to} dataset {result.path} in {elapsed:.2f}s")))
        for note in result.notes:
            console.print(escape(printable(f"  note: {note}")))
        return 0
    info = read_info(result).to_dict()  # not opened: the store may be more than this process can map at once
    size = sum(f.stat().st_size for f in result.rglob("*") if f.is_file())
    console.print(
        f"[bold]{escape(printable(result))}[/]: {info['totals']['episodes']} episodes, {info['totals']['transitions']} transitions "
        f"from {escape(printable(info['provenance']['source_format']))} in {elapsed:.2f}s ({size / 1e6:.1f} MB)"
    )
    for note in info["provenance"].get("notes", []) or []:
        console.print(escape(printable(f"  note: {note}")))
    return 0


def _convert_with_progress(console: Console, args: argparse.Namespace, options: dict[str, Any]) -> Path | ExportResult:
    """`convert` with a transient progress bar that advances once per stage convert() reports."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ildata.cli import printable
    from ildata.conversion import convert

    stages = 2 + (args.fixed_horizon is not None) + (args.to not in ("ildata", "parquet"))
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    source = escape(printable(args.src))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("converting", total=stages)

        def stage(name: str) -> None:
            if progress.tasks[task].description != "converting":
                progress.advance(task)
            progress.update(task, description=f"{name} {source}")

        result = convert(args.src, args.dst, stage=stage, open_store=False, **options)
        progress.update(task, completed=stages)
    return result
