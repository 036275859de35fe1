"""`ildata list [FOLDER ...]`: the datasets on this machine, one line each."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "list",
        help="list local datasets: the Minari root, the Hugging Face cache, and any folders given",
        description=(
            "Lists the datasets in Minari's root (MINARI_DATASETS_PATH or ~/.minari/datasets), the ildata and "
            "imitation datasets in huggingface_hub's cache (HF_HUB_CACHE, HF_HOME/hub or "
            "~/.cache/huggingface/hub: what `ildata pull` and hf:// loads downloaded), and each FOLDER "
            "given (a dataset, or a folder of datasets one level below). Reads metadata files only; "
            "contacts no server."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  ildata list                        Minari root and Hub cache
  ildata list datasets/ ~/data       also the datasets in these folders
  ildata list datasets/ --no-local   only the folders given
  ildata list --json                 one JSON object per dataset, in a list""",
    )
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="a dataset or a folder of datasets")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--no-local", dest="local", action="store_false", help="skip the Minari root and the Hub cache")
    p.set_defaults(func=run)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def _count(n: int | None) -> str:
    return "?" if n is None else str(n)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ildata.cli import printable
    from ildata.report import find_datasets

    entries = find_datasets([Path(f) for f in args.folders], local=args.local)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("no datasets found")
        return 0
    # One line per dataset, whatever the width: a name is never folded across lines.
    rows = [("dataset", "kind", "episodes", "steps", "env", "size")]
    for e in entries:
        env = e.env_id or (f"({e.problem})" if e.problem else "-")
        rows.append((printable(e.name), e.kind, _count(e.episodes), _count(e.steps), printable(env), _size(e.bytes)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5}
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    return 0
