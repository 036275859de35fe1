"""`ildata render DATASET --episode K OUT.gif`: watch an episode."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="write one episode as an animated GIF (stored image observations, or a replay in its env)",
        description=(
            "Image observations (uint8 HxW or HxWxC) are written as they are. Otherwise the episode's actions are "
            "replayed in its env (render_mode rgb_array) from its recorded reset seed, and every replayed "
            "observation is compared with the stored one: a replay that diverges is reported."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  ildata render datasets/cartpole-expert --episode 0 cartpole.gif
  ildata render atari-pong --episode 3 pong.gif --fps 15       stored frames
  ildata render hf://owner/name@main --episode -1 last.gif""",
    )
    p.add_argument("dataset", help="ildata dataset folder or hf://OWNER/NAME[@REV]")
    p.add_argument("out", help="GIF file to write")
    p.add_argument("--episode", type=int, default=0, help="episode index (negative counts from the end; default 0)")
    p.add_argument("--env", dest="env_id", help="env id to replay in (default: the dataset's)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second of the GIF (default 30)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import ildata
    from ildata.episode import DataError
    from ildata.render import render_episode

    args.error_subject = args.dataset
    if not args.dataset.startswith("hf://") and not Path(args.dataset).exists():
        raise DataError("no such file or directory")
    result = render_episode(ildata.load(args.dataset), args.episode, args.out, env_id=args.env_id, fps=args.fps, overwrite=args.overwrite)
    print(f"wrote {result.path}: {result.frames} frames from {result.source}")
    if result.diverged_at is not None:
        print(
            f"warning: the replay diverges from the stored observations at step {result.diverged_at} "
            f"(max difference {result.max_error:.4g}): frames from there on do not show the recorded episode",
            file=sys.stderr,
        )
    return 0
