"""Human preferences: label sheets (CSV or JSONL) for exported queries, read back strictly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from algos.preferences.dataset import PreferenceDataset
from ildata.episode import DataError

LABELS = {"left": 1.0, "right": 0.0, "equal": 0.5}  # `skip` (or an empty label): no preference given
LABEL_WORDS = (*LABELS, "skip")
QUERIES_FILE = "queries.parquet"


def write_label_sheet(pair_ids: np.ndarray, path: Path) -> None:
    """An unfilled label sheet: CSV (`pair_id,label`) or JSONL (`{"pair_id": 0, "label": ""}` per line)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"pair_id": int(i), "label": ""}) + "\n" for i in pair_ids))
    else:
        path.write_text("pair_id,label\n" + "".join(f"{int(i)},\n" for i in pair_ids))


def read_label_sheet(path: Path) -> list[tuple[int, object, object]]:
    """(row number, pair_id, label) of a filled CSV or JSONL sheet; a DataError names the file and row."""
    import csv

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the label file ({exc})", subject=path) from None
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"row {number}: not JSON ({exc.msg})", subject=path) from None
            if not isinstance(item, dict) or "pair_id" not in item or "label" not in item:
                raise DataError(f"row {number}: needs the keys pair_id and label", subject=path)
            rows.append((number, item["pair_id"], item["label"]))
        return rows
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in ("pair_id", "label") if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (the header must be pair_id,label)", subject=path)
    return [(number, row["pair_id"], row["label"]) for number, row in enumerate(reader, 1)]


def apply_labels(queries: PreferenceDataset, path: Path) -> PreferenceDataset:
    """`queries` with the labels of the sheet at `path`; skipped and unanswered pairs are left out."""
    row_of = {int(pid): i for i, pid in enumerate(queries.pair_ids)}
    labels = np.full(len(queries), np.nan)
    seen: set[int] = set()
    for number, raw_id, raw_label in read_label_sheet(path):
        try:
            pair_id = int(str(raw_id).strip())
        except ValueError:
            raise DataError(f"row {number}: pair_id {raw_id!r} is not an integer", subject=path) from None
        if pair_id not in row_of:
            raise DataError(f"row {number}: unknown pair_id {pair_id} (not among the exported queries)", subject=path)
        if pair_id in seen:
            raise DataError(f"row {number}: pair_id {pair_id} is labelled twice", subject=path)
        seen.add(pair_id)
        label = "" if raw_label is None else str(raw_label).strip().lower()
        if label not in (*LABEL_WORDS, ""):
            raise DataError(f"row {number}: label {raw_label!r} is not one of {', '.join(LABEL_WORDS)}", subject=path)
        if label in LABELS:
            labels[row_of[pair_id]] = LABELS[label]
    answered = queries.take(np.arange(len(queries)))
    answered.labels = labels
    return answered.labelled()
