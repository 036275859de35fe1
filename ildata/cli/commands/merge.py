"""`ildata merge A B ... DST`: several stores with the same spaces -> one new store."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  ildata merge demos/seed0 demos/seed1 demos/all
  ildata merge datasets/cartpole-expert runs/dagger-round3 combined --format parquet
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        help="merge ildata stores with the same spaces into a new store",
        description=(
            "Writes the episodes of every SRC, in order, as one new store at DST (atomically; the "
            "sources are never modified). The sources must share observation and action spaces, "
            "features and whether they have rewards; infos are kept when all have them. The new "
            "store records every source (path, fingerprint, provenance), keeps the env id when all "
            "agree, and keeps the collection info (expert and random reference returns; pooled "
            "when the sources were collected separately on the same env)."
        ),
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="ildata store folders (at least two)")
    p.add_argument("dst", metavar="DST", help="destination folder (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument("--format", dest="data_format", choices=["arrow", "parquet"], default="arrow", help="shard format (default: arrow)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ildata.combine import concat
    from ildata.episode import DataError
    from ildata.fsutil import check_destination
    from ildata.opener import load

    if len(args.sources) < 2:
        raise DataError("merge needs at least two sources and a destination")
    dst = Path(args.dst)
    check_destination(dst, overwrite=args.overwrite, sources=tuple(Path(s) for s in args.sources))
    parts = []
    for source in args.sources:
        args.error_subject = source
        parts.append(load(source))
    args.error_subject = None
    ds = concat(parts).save(dst, overwrite=args.overwrite, data_format=args.data_format)
    print(
        f"merged {len(parts)} datasets into {args.dst}: {len(ds)} episodes, {ds.num_transitions} transitions "
        f"(env {ds.env_id or 'unknown'}, fingerprint {ds.fingerprint})"
    )
    return 0
