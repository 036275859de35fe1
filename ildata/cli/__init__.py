"""The `ildata` command line. Each command lives in `ildata/cli/commands/<name>.py`.

Command modules are imported only when their command runs (argparse needs their parsers, so
`register` functions must import nothing heavy), which keeps `ildata --help` fast.

Error rule: an expected failure (`DataError`) is one line on stderr and exit 2; anything else is
a bug, reported as one line naming the exception and exit 1, unless `--debug` asks for the full
traceback. Ctrl-C, at any moment, is one line and exit 130 (`ildata.cli.interrupts`).
"""

from __future__ import annotations

# First: Ctrl-C while the rest of the CLI imports is already one line, not a traceback.
from ildata.cli.interrupts import EXIT_INTERRUPTED, INTERRUPTS  # isort: skip

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
    argv = sys.argv[1:] if argv is None else list(argv)
    # Known before parsing, so that a failure while building the parser obeys it too.
    debug = "--debug" in argv[: next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))]
    installed_here = INTERRUPTS.begin_command()
    try:
        return _run(argv, debug)
    except BaseException as exc:
        # After a Ctrl-C any exception is its consequence: C code (numpy's import) may turn the
        # KeyboardInterrupt into an ImportError. A command may say more: `ildata train` how to resume.
        if not (isinstance(exc, KeyboardInterrupt) or INTERRUPTS.presses):
            raise
        INTERRUPTS.report(printable(exc) if isinstance(exc, KeyboardInterrupt) and str(exc) else "")
        return EXIT_INTERRUPTED
    finally:
        INTERRUPTS.end_command(installed_here)


def _run(argv: list[str], debug: bool) -> int:
    """Parse and run one command; an expected failure is one line (see the module docstring)."""
    from ildata.episode import DataError

    args = argparse.Namespace()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except DataError as exc:
        if debug:
            raise
        print(_error_line(exc, args), file=sys.stderr)
        return EXIT_DATA_ERROR
    except MemoryError:  # the machine's or the process's limit, not a bug: one line, like bad input
        if debug:
            raise
        print(_error_line(DataError("not enough memory to finish (this process reached its memory limit)"), args), file=sys.stderr)
        return EXIT_DATA_ERROR
    except BrokenPipeError:  # `ildata inspect --json | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL_ERROR
    except Exception as exc:
        if debug or INTERRUPTS.presses:  # the second: a Ctrl-C's consequence, reported by `main`
            raise
        detail = printable(f"{type(exc).__name__}: {exc}")
        print(f"ildata: internal error: {detail} (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
