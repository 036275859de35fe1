"""The `ildata` command line. Each command lives in `ildata/cli/commands/<name>.py`.

Command modules are imported only when their command runs (argparse needs their parsers, so
`register` functions must import nothing heavy), which keeps `ildata --help` fast.

Error rule: an expected failure (`DataError`) is one line on stderr and exit 2; anything else is
a bug, reported as one line naming the exception and exit 1, unless `--debug` asks for the full
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from ildata import __version__
from ildata.registry import Registry

COMMANDS: tuple[str, ...] = (
    "convert",
    "inspect",
    "push",
    "pull",
    "collect",
    "train",
    "eval",
    "verify",
    "merge",
    "list",
    "render",
    "prefs",
    "sweep",
)

# name -> command module (with `register(subparsers)`), imported on first use.
REGISTRY: Registry[ModuleType] = Registry("command", tuple(f"ildata.cli.commands.{name}" for name in COMMANDS), module_entries=True)

EXIT_DATA_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130


def printable(text: object) -> str:
    """`text` as one printable line: undecodable file-name bytes (surrogate escapes) become `\\xNN`
    and line breaks become `\\n`, so printing a path can never raise UnicodeEncodeError or break
    the one-line error rule."""
    s = str(text)
    try:
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that do not come from undecodable bytes
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s.replace("\r", "\\r").replace("\n", "\\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ildata", description="Imitation-learning datasets: convert, inspect, share, train.")
    parser.add_argument("--version", action="version", version=f"ildata {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for _name, module in REGISTRY.items():
        module.register(subparsers)
    return parser


def _error_line(exc: BaseException, args: argparse.Namespace) -> str:
    subject = getattr(exc, "subject", None) or getattr(args, "error_subject", None)
    message = str(exc)
    return printable(f"ildata: error: {subject}: {message}" if subject else f"ildata: error: {message}")


def main(argv: list[str] | None = None) -> int:
    from ildata.episode import DataError

    argv = sys.argv[1:] if argv is None else list(argv)
    # Known before parsing, so that a failure while building the parser obeys it too.
    debug = "--debug" in argv[: next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))]
    args = argparse.Namespace()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except DataError as exc:
        if debug:
            raise
        print(_error_line(exc, args), file=sys.stderr)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print("ildata: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `ildata inspect --json | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL_ERROR
    except Exception as exc:
        if debug:
            raise
        detail = printable(f"{type(exc).__name__}: {exc}")
        print(f"ildata: internal error: {detail} (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
