"""The `ildata` command line. Each command lives in `ildata/commands/<name>.py`.

Command modules are imported only when their command runs (argparse needs their parsers, so
`register` functions must import nothing heavy), which keeps `ildata --help` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ildata import __version__

COMMANDS: tuple[str, ...] = (
    "convert",
    "inspect",
    "push",
    "pull",
    "collect",
    "train",
    "eval",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ildata", description="Imitation-learning datasets: convert, inspect, share, train.")
    parser.add_argument("--version", action="version", version=f"ildata {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ildata.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ildata.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ildata.episode import DataError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DataError as exc:
        subject = getattr(exc, "subject", None) or getattr(args, "error_subject", None)
        message = str(exc).replace("\n", " ")
        print(f"ildata: error: {subject}: {message}" if subject else f"ildata: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ildata: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
