"""Content hashes: the store's fingerprint (xxh3-128, fast on multi-GB shards) and sha256 of
source files (what others publish checksums in)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from ildata.fsutil import require_regular_file
from ildata.store.layout import content_files


def sha256_file(path: Path) -> str:
    with open(require_regular_file(Path(path)), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(os.fsencode(file.relative_to(path)) + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()


def xxh3_file(path: Path) -> str:
    import xxhash  # a dependency of `datasets`; ~20x faster than sha256 on multi-GB shards

    digest = xxhash.xxh3_128()
    with open(require_regular_file(path), "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def compute_fingerprint(root: Path) -> tuple[str, dict[str, str]]:
    """Content fingerprint: xxh3-128 over the data shards and the episode table, by relative path.

    meta/info.json (which stores the fingerprint) and meta/stats.json (derived) are excluded.
    Returns the fingerprint and each file's own digest (info.json's `files_xxh3_128`).
    """
    hashes = {str(f.relative_to(root)): xxh3_file(f) for f in content_files(root)}
    return fingerprint_of(hashes), hashes


def fingerprint_of(hashes: Mapping[str, str]) -> str:
    """The fingerprint over files whose own digests are known (by store-relative name), in the
    order `content_files` lists them: an append hashes only its new files."""
    import xxhash

    digest = xxhash.xxh3_128()
    for name in sorted(hashes, key=lambda name: Path(name).parts):
        digest.update(f"{name}\0{hashes[name]}\n".encode())
    return f"xxh3_128:{digest.hexdigest()}"


def mismatched_files(root: Path, fingerprint: str | None, recorded: Mapping[str, str]) -> list[str] | None:
    """None when the files under `root` match `fingerprint`; otherwise the files whose digest
    differs from `recorded` (info.json's `files_xxh3_128`; may be empty if only the set changed)."""
    actual, hashes = compute_fingerprint(root)
    if actual == fingerprint:
        return None
    return sorted(name for name in set(hashes) | set(recorded) if hashes.get(name) != recorded.get(name))
