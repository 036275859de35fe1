"""The dataset card (README.md) of a pushed store.

Its YAML metadata lets `datasets.load_dataset(repo_id)` read the Arrow shards directly; its text
tells a reader what the dataset holds before downloading it. The prose lives in the package data
file ildata/templates/dataset_card.md, so the card is edited there, not in code.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from ildata.hub.client import FORMAT_TAG
from ildata.store import DATA_DIR, DATA_FORMATS, FORMAT_NAME, FORMAT_VERSION, TrajectoryDataset


def _size_category(n: int) -> str:
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if n < bound), "n>1T" if n >= 10**12 else "1B<n<10B")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def dataset_card(ds: TrajectoryDataset, repo_id: str, *, license: str | None = None, tags: Sequence[str] = ()) -> str:
    """README.md for a pushed store: YAML metadata (so `datasets.load_dataset` finds the Arrow
    shards) plus what a reader needs before downloading: spaces, sizes, return statistics."""
    from huggingface_hub import DatasetCardData

    info = ds.info
    all_tags = [FORMAT_NAME, "imitation-learning", "trajectories", FORMAT_TAG]
    if ds.env_id:
        all_tags.append(f"env:{ds.env_id}")
    all_tags += [t for t in tags if t not in all_tags]
    card_data = DatasetCardData(
        license=license or "unknown",
        tags=all_tags,
        task_categories=["reinforcement-learning"],
        size_categories=[_size_category(ds.num_transitions)],
        pretty_name=repo_id.split("/")[-1],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": f"{DATA_DIR}/*{DATA_FORMATS[ds.info.get('data_format', 'arrow')]}"}],
            }
        ],
        ildata={"format_version": FORMAT_VERSION, "fingerprint": ds.fingerprint, "env_id": ds.env_id},
    )
    stats = ds.stats()
    rows: list[tuple[str, object]] = [("episodes", len(ds)), ("transitions", ds.num_transitions)]
    for key in ("return_mean", "return_std", "return_min", "return_max", "len_mean", "len_min", "len_max"):
        if key in stats:
            rows.append((key.replace("_", " "), _fmt(stats[key])))
    provenance = info.get("provenance") or {}
    return _card_template().substitute(
        card_yaml=card_data.to_yaml(),
        name=repo_id.split("/")[-1],
        format_version=FORMAT_VERSION,
        environment=f"`{ds.env_id}`" if ds.env_id else "not recorded",
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        rewards="yes" if info.get("has_rewards") else "no",
        source=provenance.get("source_format") or "unknown",
        fingerprint=ds.fingerprint,
        statistics="\n".join(["| statistic | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]),
        features="\n".join(f"| `{name}` | {meta['dtype']} | {meta['shape']} |" for name, meta in info.get("features", {}).items()),
        repo_id=repo_id,
    )


def _card_template() -> string.Template:
    """ildata/templates/dataset_card.md (package data: edit the card there, not in code)."""
    from importlib.resources import files

    return string.Template(files("ildata").joinpath("templates", "dataset_card.md").read_text(encoding="utf-8"))
