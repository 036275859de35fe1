"""`ildata verify PATH`: check a store's files against its fingerprint, metadata and episode table."""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  ildata verify datasets/cartpole-expert
  ildata verify demos/ || echo "demos/ is damaged: reconvert it from its source"
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        help="check a dataset's files: fingerprint, shards against meta/info.json and the episode table",
        description=(
            "Re-hashes PATH (an ildata store) against the fingerprint in meta/info.json and checks every "
            "shard against info.json and meta/episodes.parquet: row counts, columns, dtypes and shapes, "
            "episode offsets and totals, episode_index, terminated/truncated flags, returns against "
            "rewards, and observations/actions against the spaces. Prints one line per problem and "
            "exits 2, or one OK line and exits 0."
        ),
    )
    p.add_argument("path", help="ildata dataset folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ildata.cli import printable
    from ildata.store import load, verify_store

    args.error_subject = args.path
    problems = verify_store(args.path)
    for problem in problems:
        print(printable(f"ildata: error: {args.path}: {problem}"), file=sys.stderr)
    if problems:
        return 2
    ds = load(args.path)
    print(
        f"{printable(args.path)}: OK: {len(ds)} episodes, {ds.num_transitions} transitions in {len(ds.meta.data_files)} "
        f"shard(s), fingerprint {ds.fingerprint}"
    )
    return 0
