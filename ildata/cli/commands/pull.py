"""`ildata pull REPO_ID[@REVISION] DST`: download a Hub dataset into a local store."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pull",
        help="download a dataset from the Hugging Face Hub into a local folder",
        description=(
            "Downloads REPO_ID at REVISION (branch, tag or commit; default main) through the Hugging Face "
            "cache, checks it against the fingerprint in meta/info.json and writes a standalone store at "
            "DST. Repositories in imitation's Hub format (parquet) are converted. A cached revision "
            "works offline."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  ildata pull me/cartpole-expert cartpole                   latest main
  ildata pull me/cartpole-expert@v2 cartpole-v2             a branch or tag
  ildata pull HumanCompatibleAI/ppo-CartPole-v1 cartpole    imitation's Hub format, converted
  ildata inspect hf://me/cartpole-expert                    look first, without a copy""",
    )
    p.add_argument("repo", metavar="REPO_ID[@REVISION]", help="owner/name, optionally @branch, @tag or @commit")
    p.add_argument("dst", help="destination folder")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ildata.hub import pull

    args.error_subject = args.repo
    ds = pull(args.repo, args.dst, overwrite=args.overwrite)
    provenance = ds.info.get("provenance") or {}
    print(
        f"pulled {args.repo} into {args.dst}: {len(ds)} episodes, {ds.num_transitions} transitions "
        f"(fingerprint {ds.fingerprint}, source {provenance.get('source_format') or 'unknown'})"
    )
    return 0
