"""The test Hub's storage: repositories of immutable commits (each a full file tree), branches and
tags pointing at commits, and one content-addressed blob store for regular and LFS files."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field

REPO_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
DEFAULT_GITATTRIBUTES = b"*.arrow filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files above 10 MB in LFS whatever their name
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class FileEntry:
    """A file in a commit's tree: regular content lives in the blob store under its sha256 too."""

    sha256: str
    size: int
    lfs: bool

    @property
    def oid(self) -> str:
        if self.lfs:
            return git_blob_oid(lfs_pointer(self.sha256, self.size))
        return ""  # filled by the repo (needs content); see Repo.blob_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, FileEntry]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    owner: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""

    def resolve(self, rev: str) -> str | None:
        """Branch, tag or full commit id -> commit id (None when unknown)."""
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        if COMMIT_RE.match(rev) and rev in self.commits:
            return rev
        return None

    def commit_at(self, rev: str) -> Commit:
        """The commit a branch, tag or commit id names (404 RevisionNotFound when unknown)."""
        oid = self.resolve(rev)
        if oid is None:
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return self.commits[oid]


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubState:
    """Repositories and the content-addressed blob store, guarded by one lock."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens  # token -> user name
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content (regular and LFS files alike)
        self.multipart: dict[str, dict[int, bytes]] = {}
        self.lock = threading.RLock()
        self._counter = 0

    # -- helpers -----------------------------------------------------------------------------------
    def blob_oid(self, entry: FileEntry) -> str:
        return entry.oid if entry.lfs else git_blob_oid(self.blobs[entry.sha256])

    def make_commit(self, repo: Repo, parent: str | None, files: dict[str, FileEntry], title: str, message: str) -> Commit:
        self._counter += 1
        payload = json.dumps([parent, sorted((p, e.sha256) for p, e in files.items()), title, self._counter])
        oid = hashlib.sha1(payload.encode()).hexdigest()
        commit = Commit(oid, parent, files, title, message, now())
        repo.commits[oid] = commit
        return commit

    def put_blob(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        self.blobs[sha] = content
        return sha
