"""`ildata push PATH REPO_ID`: upload a store as a Hugging Face Hub dataset repository."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload a dataset to the Hugging Face Hub (resumable; rerun after a failure)",
        description=(
            "Checks PATH (an ildata store) as `ildata verify` does, then uploads it to the dataset repository REPO_ID, creating it if needed, "
            "with a generated dataset card and the tag ildata-format-vN. The token comes from HF_TOKEN "
            "or `hf auth login`; HF_ENDPOINT selects another Hub. Files already on the Hub with the same "
            "content are skipped, so rerunning an interrupted push finishes it."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  ildata push datasets/cartpole-expert me/cartpole-expert --dry-run   show the card and files, send nothing
  ildata push datasets/cartpole-expert me/cartpole-expert --license mit
  ildata push cartpole-v2 me/cartpole-expert --revision v2 -m 'more episodes'""",
    )
    p.add_argument("path", help="ildata dataset folder")
    p.add_argument("repo_id", help="owner/name of the Hub dataset repository")
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created from main if missing; default main)")
    p.add_argument("--private", action="store_true", help="create the repository as private (when it does not exist yet)")
    p.add_argument("--message", "-m", help="commit message")
    p.add_argument("--license", help="license id for the dataset card (default: unknown)")
    p.add_argument("--tag", dest="tags", action="append", default=[], help="extra dataset-card tag (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the dataset card and the files it would send; contact nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ildata.hub import push, push_plan

    args.error_subject = args.path
    if args.dry_run:
        card, files = push_plan(args.path, args.repo_id, license=args.license, tags=args.tags)
        print(card.rstrip("\n"))
        print(
            f"\n--- dry run: would send {len(files)} files ({sum(n for _, n in files) / 1e6:.2f} MB) to {args.repo_id}; nothing was contacted"
        )
        width = max(len(name) for name, _ in files)
        for name, size in files:
            print(f"  {name.ljust(width)}  {size:>12,} bytes")
        return 0
    result = push(
        args.path,
        args.repo_id,
        revision=args.revision,
        private=args.private,
        message=args.message,
        license=args.license,
        tags=args.tags,
    )
    mb = result.bytes_uploaded / 1e6
    print(
        f"pushed {args.path} to {result.repo_id}@{result.revision} (commit {result.commit[:12]}): "
        f"{len(result.uploaded)} files uploaded ({mb:.2f} MB) in {result.commits} commits, "
        f"{len(result.skipped)} unchanged, {len(result.deleted)} stale removed"
    )
    print(f'load it with: ildata.load("hf://{result.repo_id}@{result.commit}")')
    return 0
