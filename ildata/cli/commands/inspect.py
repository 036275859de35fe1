"""`ildata inspect PATH`: a readable summary (or `--json`) of a store or any convertible source."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a dataset: sizes, spaces, stats, termination, horizon, problems",
        description="PATH is an ildata store, hf://OWNER/NAME[@REV] or anything `ildata convert` reads (no conversion needed).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  ildata inspect datasets/cartpole-expert                 summary table
  ildata inspect rollouts.pkl --env CartPole-v1           a legacy file, without converting
  ildata inspect hf://HumanCompatibleAI/ppo-CartPole-v1   a Hub dataset (cached)
  ildata inspect minari:D4RL/door/human-v2 --json         machine-readable report
  ildata inspect datasets/cartpole-expert --plots plots/  also write histograms as PNGs""",
    )
    p.add_argument("path", help="dataset folder, source file, hf://OWNER/NAME[@REV] or minari:NS/NAME-vN")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plots", metavar="DIR", help="also write PNG plots (returns, lengths, actions, features) into DIR")
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


def _provenance_rows(provenance: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Where the data came from, as (label, text) rows."""
    if not provenance:
        return []
    rows = []
    source = provenance.get("source_path")
    if source or provenance.get("source_format"):
        rows.append(("source", f"{source or '?'} ({provenance.get('source_format') or 'unknown format'})"))
    if provenance.get("source_sha256"):
        rows.append(("source sha256", str(provenance["source_sha256"])))
    if provenance.get("source_fingerprint"):
        rows.append(("source fingerprint", str(provenance["source_fingerprint"])))
    made = " ".join(str(provenance[k]) for k in ("tool", "created") if provenance.get(k))
    if made:
        rows.append(("written by", made))
    rows += [("note", str(note)) for note in provenance.get("notes") or []]
    return rows


def _collection_rows(collection: dict[str, Any] | None) -> list[tuple[str, str]]:
    """How `ildata collect` made the data, and the expert's and a random policy's returns."""
    if not collection:
        return []
    rows = []
    policy = collection.get("policy")
    if policy:
        how = "deterministic" if collection.get("deterministic") else "stochastic" if "deterministic" in collection else ""
        rows.append(("collected by", f"{policy}{f' ({how})' if how else ''}, seed {collection.get('seed')}"))
    for who in ("expert", "random"):
        mean, std = collection.get(f"{who}_mean_return"), collection.get(f"{who}_std_return")
        if isinstance(mean, (int, float)):
            spread = f" ± {_fmt(float(std))}" if isinstance(std, (int, float)) else ""
            episodes = collection.get(f"{who}_episodes") or (collection.get("episodes") if who == "expert" else None)
            rows.append((f"{who} return", f"{_fmt(float(mean))}{spread}" + (f" over {episodes} episodes" if episodes else "")))
    return rows


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ildata.cli import printable
    from ildata.report import space_text

    console = Console()  # its width: the terminal's, else $COLUMNS, else 80
    overview = Table(title=escape(printable(report["path"])), show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("format", escape(printable(report["format"])))
    overview.add_row("env", escape(printable(report["env_id"])))
    if report.get("fingerprint"):
        overview.add_row("fingerprint", escape(report["fingerprint"]))
    for label, text in _provenance_rows(report.get("provenance")):
        overview.add_row(label, escape(printable(text)))
    for label, text in _collection_rows(report.get("collection")):
        overview.add_row(label, escape(printable(text)))
    overview.add_row("episodes", str(report["episodes"]))
    overview.add_row("transitions", str(report["transitions"]))
    inferred = "\n(inferred from the data)" if report["spaces_inferred"] else ""
    overview.add_row("observation space", escape(space_text(report["_spaces"]["observation"])) + inferred)
    overview.add_row("action space", escape(space_text(report["_spaces"]["action"])) + inferred)
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
        features.add_column(column, overflow="fold")
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
    from ildata.report import read_input, report_from

    args.error_subject = args.path
    data, shown = read_input(args.path, env_id=args.env_id)
    result = report_from(data, shown)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        render(result | {"_spaces": {"observation": data.observation_space, "action": data.action_space}})
    if args.plots:
        from ildata.plots import write_plots

        for path in write_plots(data, args.plots, title=shown):
            print(f"wrote {path}", file=sys.stderr)
    return 0
