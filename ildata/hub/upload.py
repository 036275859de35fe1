"""The pieces of a push: what would be sent, how files are grouped into commits, how the
remote's copy of a file is recognised, and the format tag.

`push()` itself lives in the package's __init__, beside the commit-size limits that callers tune
as `ildata.hub.COMMIT_MAX_FILES` / `ildata.hub.COMMIT_MAX_BYTES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ildata.hub.card import dataset_card
from ildata.hub.client import REPO_TYPE, parse_ref, store_files
from ildata.store import FORMAT_NAME, FORMAT_VERSION, load


@dataclass
class PushResult:
    """What a push did: the commit now holding the dataset, and how much was sent."""

    repo_id: str
    revision: str
    commit: str
    url: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    commits: int = 0
    bytes_uploaded: int = 0


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a small file: what the Hub reports for files not stored in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def batches(paths: list[str], sizes: dict[str, int], *, max_files: int, max_bytes: int) -> list[list[str]]:
    """Group files into commits of at most `max_files` files / `max_bytes` bytes."""
    out: list[list[str]] = []
    current: list[str] = []
    total = 0
    for path in paths:
        if current and (len(current) >= max_files or total + sizes[path] > max_bytes):
            out.append(current)
            current, total = [], 0
        current.append(path)
        total += sizes[path]
    if current:
        out.append(current)
    return out


def push_plan(path: str | Path, repo_id: str, *, license: str | None = None, tags: Sequence[str] = ()) -> tuple[str, list[tuple[str, int]]]:
    """What `push` would send, contacting nothing: the dataset card and (file, bytes) for every
    file, README.md last. The store is checked as `push` checks it."""
    root = Path(path)
    ds = load(root, verify=True)
    repo_id, _ = parse_ref(repo_id)
    card = dataset_card(ds, repo_id, license=license, tags=tags)
    files = [(rel, (root / rel).stat().st_size) for rel in store_files(ds.info)]
    return card, [*files, ("README.md", len(card.encode()))]


def move_tag(api: Any, repo_id: str, tag: str, commit: str) -> None:
    """Point `tag` at `commit`: the format tag names the latest snapshot written in that format."""
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    current = {t.name: t.target_commit for t in refs.tags}
    if current.get(tag) == commit:
        return
    if tag in current:
        api.delete_tag(repo_id, tag=tag, repo_type=REPO_TYPE)
    api.create_tag(repo_id, tag=tag, revision=commit, repo_type=REPO_TYPE, tag_message=f"{FORMAT_NAME} format v{FORMAT_VERSION}")
