"""`ildata inspect PATH`: a readable summary (or `--json`) of a store or any convertible source."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a dataset: sizes, spaces, stats, termination, horizon, problems",
        description="PATH is an ildata store or anything `ildata convert` reads (no conversion needed).",
    )
    p.add_argument("path", help="dataset folder or source file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--env", dest="env_id", help="gymnasium env id whose spaces the data must fit (and that a legacy file's spaces come from)"
    )
    p.set_defaults(func=run)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_fmt(v) for v in value[:6])
        return f"[{shown}{', ...' if len(value) > 6 else ''}]"
    return str(value)


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ildata.cli import printable

    console = Console()
    overview = Table(title=escape(printable(report["path"])), show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("format", escape(printable(report["format"])))
    overview.add_row("env", escape(printable(report["env_id"])))
    overview.add_row("episodes", str(report["episodes"]))
    overview.add_row("transitions", str(report["transitions"]))
    inferred = " (inferred from the data)" if report["spaces_inferred"] else ""
    overview.add_row("observation space", report["observation_space"] + inferred)
    overview.add_row("action space", report["action_space"] + inferred)
    overview.add_row("on disk", f"{report['disk_bytes'] / 1e6:.2f} MB")
    rs = report["rollout_stats"]
    for prefix, label in (("return", "return"), ("len", "length")):
        if f"{prefix}_mean" in rs:
            overview.add_row(
                label,
                f"mean {_fmt(rs[prefix + '_mean'])} ± {_fmt(rs[prefix + '_std'])}  [{_fmt(rs[prefix + '_min'])}, {_fmt(rs[prefix + '_max'])}]",
            )
    term = report["termination"]
    overview.add_row(
        "termination", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in term.items() if v or k in ("terminated", "truncated", "unknown"))
    )
    horizon = report["horizon"]
    if horizon["fixed"]:
        overview.add_row("horizon", f"fixed: {horizon['length']} steps")
    else:
        hist = horizon["histogram"]
        shown = ", ".join(f"{k}×{v}" for k, v in list(hist.items())[:12])
        overview.add_row("horizon", f"variable ({len(hist)} lengths): {shown}{' ...' if len(hist) > 12 else ''}")
    if report["action_histogram"]:
        overview.add_row("actions", ", ".join(f"{a}: {c}" for a, c in report["action_histogram"].items()))
    console.print(overview)

    features = Table(title="features (per last-axis channel)", title_justify="left")
    for column in ("feature", "dtype", "shape", "mean", "std", "min", "max"):
        features.add_column(column)
    for name, meta in report["features"].items():
        stats = report["feature_stats"].get(name, {})
        features.add_row(
            escape(printable(name)), meta["dtype"], str(meta["shape"]), *(_fmt(stats.get(k, "-")) for k in ("mean", "std", "min", "max"))
        )
    console.print(features)
    if report["problems"]:
        console.print("[bold red]problems:[/]")
        for problem in report["problems"]:
            console.print(f"  - {escape(printable(problem))}")
    else:
        console.print("[green]no problems found[/]")


def run(args: argparse.Namespace) -> int:
    from ildata.report import report

    args.error_subject = args.path
    result = report(args.path, env_id=args.env_id)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        render(result)
    return 0
