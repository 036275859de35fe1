"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only, in-memory).

It implements the subset of the Hub API that `huggingface_hub` 2.4 and `datasets` 5.2 call when
pushing and pulling a dataset repository, with git-like storage: immutable commits holding a
full file tree, branches and tags pointing at commits. Uploads go through the real client code
paths: `preupload` (regular vs LFS mode), the git-LFS batch API with single-part and multipart
PUTs plus verify, and the NDJSON `commit` endpoint. Downloads answer `resolve` HEAD/GET with the
headers the client checks (X-Repo-Commit, ETag, X-Linked-Etag/-Size, a 302 to the LFS object for
LFS files, Range requests).

A real Hub cannot be used in tests (no network), and `huggingface_hub` ships no fake server, so
this one is hand-written. Only what the clients need is implemented; anything else answers 404
with the request logged in `HubServer.unhandled`, so a test can assert nothing was missed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

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


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _now() -> str:
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
        commit = Commit(oid, parent, files, title, message, _now())
        repo.commits[oid] = commit
        return commit

    def put_blob(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        self.blobs[sha] = content
        return sha


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return

    # -- plumbing ----------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self.server.state.tokens.get(auth[len("Bearer ") :])
        return None

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        segments = url.path.split("/")[1:]  # raw (still %-quoted) segments
        self.server.log.append((method, url.path))
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            with self.server.state.lock:
                if not self.server.router(self, method, segments, body):
                    self.server.unhandled.append((method, self.path))
                    raise HttpError(404, f"no route for {method} {url.path}")
        except HttpError as exc:
            headers = {"X-Error-Message": exc.message, **exc.headers}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            self._json(exc.status, {"error": exc.message}, headers) if method != "HEAD" else self._send(exc.status, b"", headers, head=True)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    log: list[tuple[str, str]]
    unhandled: list[tuple[str, str]]
    router: Any


class HubServer:
    """Start with `HubServer().start()`; `endpoint` is the value for `HF_ENDPOINT`."""

    def __init__(self, tokens: dict[str, str] | None = None, multipart_chunk: int = 0) -> None:
        self.state = HubState(tokens or {"hf_test_token": "tester"})
        # Files of at least this size get multipart upload instructions (0 = never).
        self.multipart_chunk = multipart_chunk
        self._httpd = self._make_server(self._route)
        # LFS storage (S3/CDN on the real Hub) is another origin, so that the client treats the
        # redirect of `resolve` for an LFS file as leaving the Hub, as it does in production.
        self._storage = self._make_server(
            lambda h, method, seg, body: seg[:1] == ["lfs"] and self._route_lfs_storage(h, method, seg[1:], body)
        )
        self._storage.log = self._httpd.log
        self._storage.unhandled = self._httpd.unhandled
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in (self._httpd, self._storage)
        ]
        # Simulate an interrupted push: commit requests with these 1-based numbers answer 500.
        self.fail_commits: set[int] = set()
        self.commit_requests = 0

    def _make_server(self, router: Any) -> _Server:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.state, httpd.log, httpd.unhandled, httpd.router = self.state, [], [], router
        return httpd

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def storage_endpoint(self) -> str:
        host, port = self._storage.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def log(self) -> list[tuple[str, str]]:
        return self._httpd.log

    @property
    def unhandled(self) -> list[tuple[str, str]]:
        return self._httpd.unhandled

    def start(self) -> HubServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for httpd in (self._httpd, self._storage):
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- routing -----------------------------------------------------------------------------------
    def _route(self, h: _Handler, method: str, seg: list[str], body: bytes) -> bool:
        if seg[:1] == ["api"]:
            return self._route_api(h, method, seg[1:], body)
        if seg[:2] in (["lfs", "complete"], ["lfs", "verify"]):  # these two are Hub endpoints
            return self._route_lfs_storage(h, method, seg[1:], body)
        # /{prefix}{owner}/{name}.git/info/lfs/objects/batch and /{prefix}{owner}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        if seg[:1] in (["datasets"], ["spaces"]):
            repo_type, seg = seg[0][:-1], seg[1:]
        if len(seg) >= 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            repo = self._repo(h, repo_type, f"{seg[0]}/{seg[1][:-4]}", write=True)
            self._lfs_batch(h, repo, json.loads(body))
            return True
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(h, repo_type, f"{unquote(seg[0])}/{unquote(seg[1])}")
            self._resolve(h, method, repo, unquote(seg[3]), unquote("/".join(seg[4:])))
            return True
        return False

    def _route_api(self, h: _Handler, method: str, seg: list[str], body: bytes) -> bool:
        if seg == ["repos", "create"] and method == "POST":
            self._create_repo(h, json.loads(body))
            return True
        if seg == ["validate-yaml"] and method == "POST":
            self._validate_yaml(h, json.loads(body))
            return True
        if seg == ["whoami-v2"] and method == "GET":
            user = h._user()
            if user is None:
                raise HttpError(401, "Invalid credentials in Authorization header")
            h._json(200, {"type": "user", "name": user, "auth": {"type": "access_token"}, "orgs": []})
            return True
        if len(seg) < 3 or seg[0] not in ("models", "datasets", "spaces"):
            return False
        repo_type = seg[0][:-1]
        repo_id = f"{unquote(seg[1])}/{unquote(seg[2])}"
        rest = seg[3:]
        action = rest[0] if rest else None
        write = method in ("POST", "PUT", "DELETE") and action not in ("paths-info",)
        repo = self._repo(h, repo_type, repo_id, write=write)
        if action is None and method == "GET":
            self._info(h, repo, "main")
        elif action == "revision" and method == "GET" and len(rest) == 2:
            self._info(h, repo, unquote(rest[1]))
        elif action == "preupload" and method == "POST":
            self._preupload(h, repo, unquote(rest[1]), json.loads(body))
        elif action == "commit" and method == "POST":
            self._commit(h, repo, unquote(rest[1]), body)
        elif action == "tree" and method == "GET":
            path = unquote("/".join(rest[2:])).strip("/")
            recursive = h.query.get("recursive", ["false"])[0].lower() == "true"
            expand = h.query.get("expand", ["false"])[0].lower() == "true"
            self._tree(h, repo, unquote(rest[1]), path, recursive, expand)
        elif action == "paths-info" and method == "POST":
            if h.headers.get("Content-Type", "").startswith("application/json"):
                form = json.loads(body)
                paths, expand = form.get("paths", []), bool(form.get("expand"))
            else:
                form = parse_qs(body.decode())
                paths, expand = form.get("paths", []), form.get("expand", ["False"])[0].lower() == "true"
            self._paths_info(h, repo, unquote(rest[1]), paths, expand)
        elif action == "refs" and method == "GET":
            self._refs(h, repo)
        elif action == "commits" and method == "GET":
            self._commits(h, repo, unquote(rest[1]) if len(rest) > 1 else "main")
        elif action == "branch" and method in ("POST", "DELETE"):
            self._branch(h, method, repo, unquote(rest[1]), json.loads(body or b"{}"))
        elif action == "tag" and method in ("POST", "DELETE"):
            self._tag(h, method, repo, unquote(rest[1]), json.loads(body or b"{}"))
        else:
            return False
        return True

    # -- repositories ------------------------------------------------------------------------------
    def _repo(self, h: _Handler, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        user = h._user()
        if write and user is None:
            raise HttpError(401, "Invalid credentials in Authorization header")
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo.owner):
            raise HttpError(404, "Repository not found", "RepoNotFound")
        if write and user != repo.owner:
            raise HttpError(403, "You don't have the rights to write to this repository")
        return repo

    def _create_repo(self, h: _Handler, payload: dict[str, Any]) -> None:
        user = h._user()
        if user is None:
            raise HttpError(401, "Invalid credentials in Authorization header")
        repo_type = payload.get("type") or "model"
        owner = payload.get("organization") or user
        if owner != user:
            raise HttpError(403, "You don't have the rights to create a repository in this namespace")
        repo_id = f"{owner}/{payload['name']}"
        if (repo_type, repo_id) in self.state.repos:
            raise HttpError(409, "You already created this repo", headers={})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = Repo(repo_type, repo_id, private, owner, created_at=_now())
        sha = self.state.put_blob(DEFAULT_GITATTRIBUTES)
        files = {".gitattributes": FileEntry(sha, len(DEFAULT_GITATTRIBUTES), lfs=False)}
        repo.branches["main"] = self.state.make_commit(repo, None, files, "initial commit", "").oid
        self.state.repos[(repo_type, repo_id)] = repo
        h._json(200, {"url": f"{self.endpoint}/{REPO_PREFIX[repo_type]}{repo_id}", "name": repo_id})

    def _validate_yaml(self, h: _Handler, payload: dict[str, Any]) -> None:
        content = payload.get("content", "")
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            h._json(400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []})
            return
        if meta is not None and not isinstance(meta, dict):
            h._json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
            return
        h._json(200, {"errors": [], "warnings": []})

    def _commit_of(self, repo: Repo, rev: str) -> Commit:
        oid = repo.resolve(rev)
        if oid is None:
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[oid]

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        entry = commit.files.get("README.md")
        if entry is None:
            return None
        match = re.match(r"^---\n(.*?)\n---", self.state.blobs[entry.sha256].decode(errors="replace"), re.S)
        meta = yaml.safe_load(match.group(1)) if match else None
        return meta if isinstance(meta, dict) else None

    def _info(self, h: _Handler, repo: Repo, rev: str) -> None:
        commit = self._commit_of(repo, rev)
        card = self._card_data(commit)
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sib: dict[str, Any] = {"rfilename": path, "size": entry.size, "blobId": self.state.blob_oid(entry)}
            if entry.lfs:
                sib["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
            siblings.append(sib)
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.owner,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list((card or {}).get("tags", []) or []),
            "cardData": card,
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
        }
        h._json(200, info)

    # -- listing -----------------------------------------------------------------------------------
    def _entry_json(self, commit: Commit, path: str, entry: FileEntry, expand: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "oid": self.state.blob_oid(entry), "size": entry.size, "path": path}
        if entry.lfs:
            out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
        if expand:
            out["lastCommit"] = self._last_commit(commit, path)
        return out

    def _last_commit(self, commit: Commit, path: str) -> dict[str, str]:
        """The newest ancestor commit that changed `path` (what the Hub reports with expand=True)."""
        repo_commits = next(r.commits for r in self.state.repos.values() if commit.oid in r.commits)
        current = commit
        while current.parent is not None:
            parent = repo_commits[current.parent]
            if self._subtree(parent, path) != self._subtree(current, path):
                break
            current = parent
        return {"id": current.oid, "title": current.title, "date": current.date}

    @staticmethod
    def _subtree(commit: Commit, path: str) -> list[tuple[str, str]]:
        return sorted((p, e.sha256) for p, e in commit.files.items() if p == path or p.startswith(path + "/"))

    def _dir_json(self, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        oid = hashlib.sha1(json.dumps(self._subtree(commit, path)).encode()).hexdigest()
        out: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand:
            out["lastCommit"] = self._last_commit(commit, path)
        return out

    def _tree(self, h: _Handler, repo: Repo, rev: str, path: str, recursive: bool, expand: bool) -> None:
        commit = self._commit_of(repo, rev)
        prefix = path + "/" if path else ""
        if path and path in commit.files:
            raise HttpError(400, f"{path} is a file, not a directory")
        files = {p: e for p, e in commit.files.items() if p.startswith(prefix)}
        if path and not files:
            raise HttpError(404, f'{path} does not exist on "{rev}"', "EntryNotFound")
        dirs: set[str] = set()
        entries = []
        for p, entry in sorted(files.items()):
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    dirs.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._entry_json(commit, p, entry, expand))
        entries = [self._dir_json(commit, d, expand) for d in sorted(dirs)] + entries
        h._json(200, entries)

    def _paths_info(self, h: _Handler, repo: Repo, rev: str, paths: list[str], expand: bool) -> None:
        commit = self._commit_of(repo, rev)
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(self._entry_json(commit, path, commit.files[path], expand))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._dir_json(commit, path, expand))
        h._json(200, out)

    def _refs(self, h: _Handler, repo: Repo) -> None:
        h._json(
            200,
            {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(repo.branches.items())],
                "converts": [],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(repo.tags.items())],
                "pullRequests": [],
            },
        )

    def _commits(self, h: _Handler, repo: Repo, rev: str) -> None:
        commit: Commit | None = self._commit_of(repo, rev)
        out = []
        while commit is not None:
            out.append(
                {"id": commit.oid, "title": commit.title, "message": commit.message, "date": commit.date, "authors": [{"user": repo.owner}]}
            )
            commit = repo.commits[commit.parent] if commit.parent else None
        h._json(200, out)

    def _branch(self, h: _Handler, method: str, repo: Repo, branch: str, payload: dict[str, Any]) -> None:
        if method == "DELETE":
            if branch not in repo.branches or branch == "main":
                raise HttpError(404 if branch not in repo.branches else 403, f"cannot delete branch {branch}")
            del repo.branches[branch]
        else:
            if branch in repo.branches:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            start = payload.get("startingPoint") or "main"
            repo.branches[branch] = self._commit_of(repo, start).oid
        h._json(200, {})

    def _tag(self, h: _Handler, method: str, repo: Repo, name: str, payload: dict[str, Any]) -> None:
        if method == "DELETE":  # /tag/{tag}
            if name not in repo.tags:
                raise HttpError(404, f"Tag {name} not found", "RevisionNotFound")
            del repo.tags[name]
        else:  # /tag/{revision} with {"tag": ...}
            tag = payload["tag"]
            if tag in repo.tags:
                raise HttpError(409, f"Tag {tag} already exists")
            repo.tags[tag] = self._commit_of(repo, name).oid
        h._json(200, {})

    # -- uploads -----------------------------------------------------------------------------------
    def _is_lfs(self, commit: Commit, path: str, size: int, sample: bytes) -> bool:
        """The Hub's rule: LFS when .gitattributes says so, or the file is large or binary."""
        attrs = commit.files.get(".gitattributes")
        patterns = []
        if attrs is not None:
            for line in self.state.blobs[attrs.sha256].decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) > 1 and "filter=lfs" in parts[1:]:
                    patterns.append(parts[0])
        name = path.rsplit("/", 1)[-1]
        matched = any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)
        return matched or size >= LFS_SIZE_THRESHOLD or b"\0" in sample

    def _preupload(self, h: _Handler, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        commit = self._commit_of(repo, rev)
        files = []
        for f in payload["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = self._is_lfs(commit, f["path"], int(f["size"]), sample)
            existing = commit.files.get(f["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else self.state.blob_oid(existing)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        h._json(200, {"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, h: _Handler, repo: Repo, payload: dict[str, Any]) -> None:
        if payload.get("operation") != "upload":
            raise HttpError(400, "only uploads are supported by the batch API here")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if oid not in self.state.blobs:  # already stored: no actions => the client skips it
                upload: dict[str, Any] = {"href": f"{self.storage_endpoint}/lfs/upload/{oid}"}
                if self.multipart_chunk and size >= self.multipart_chunk:
                    n_parts = -(-size // self.multipart_chunk)
                    upload["header"] = {
                        "chunk_size": str(self.multipart_chunk),
                        **{str(i): f"{self.storage_endpoint}/lfs/part/{oid}/{i}" for i in range(1, n_parts + 1)},
                    }
                    upload["href"] = f"{self.endpoint}/lfs/complete/{oid}"
                entry["actions"] = {"upload": upload, "verify": {"href": f"{self.endpoint}/lfs/verify"}}
            objects.append(entry)
        h._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _route_lfs_storage(self, h: _Handler, method: str, seg: list[str], body: bytes) -> bool:
        """The storage side of LFS (S3 on the real Hub): single PUT, multipart parts + completion, verify, GET."""
        if seg[:1] == ["upload"] and method == "PUT":
            oid = seg[1]
            if hashlib.sha256(body).hexdigest() != oid:
                raise HttpError(400, "content does not match the announced sha256")
            self.state.blobs[oid] = body
            h._send(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        elif seg[:1] == ["part"] and method == "PUT":
            oid, part = seg[1], int(seg[2])
            self.state.multipart.setdefault(oid, {})[part] = body
            h._send(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        elif seg[:1] == ["complete"] and method == "POST":
            oid = seg[1]
            payload = json.loads(body)
            parts = self.state.multipart.pop(oid, {})
            numbers = [p["partNumber"] for p in payload["parts"]]
            if numbers != sorted(parts):
                raise HttpError(400, f"parts {numbers} do not match the uploaded parts {sorted(parts)}")
            content = b"".join(parts[n] for n in numbers)
            if hashlib.sha256(content).hexdigest() != oid or payload["oid"] != oid:
                raise HttpError(400, "assembled content does not match the announced sha256")
            self.state.blobs[oid] = content
            h._json(200, {})
        elif seg == ["verify"] and method == "POST":
            payload = json.loads(body)
            blob = self.state.blobs.get(payload["oid"])
            if blob is None or len(blob) != int(payload["size"]):
                raise HttpError(404, "object not found or size mismatch")
            h._json(200, {})
        elif seg[:1] == ["objects"] and method in ("GET", "HEAD"):
            blob = self.state.blobs.get(seg[1])
            if blob is None:
                raise HttpError(404, "object not found")
            self._send_content(h, method, blob, {"ETag": f'"{seg[1]}"'})
        else:
            return False
        return True

    def _commit(self, h: _Handler, repo: Repo, rev: str, body: bytes) -> None:
        self.commit_requests += 1
        if self.commit_requests in self.fail_commits:
            raise HttpError(500, "simulated server failure")
        if rev not in repo.branches:
            raise HttpError(
                404 if repo.resolve(rev) is None else 400, f"Invalid rev id: {rev} (commits go to a branch)", "RevisionNotFound"
            )
        head = repo.commits[repo.branches[rev]]
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "the first NDJSON line must be the header")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != head.oid:
            raise HttpError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                files[path] = FileEntry(self.state.put_blob(content), len(content), lfs=False)
            elif key == "lfsFile":
                blob = self.state.blobs.get(value["oid"])
                if blob is None:
                    raise HttpError(400, f"LFS object {value['oid']} for {path} was never uploaded")
                files[path] = FileEntry(value["oid"], len(blob), lfs=True)
            elif key == "deletedFile":
                if path not in files:
                    raise HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                files = {p: e for p, e in files.items() if not p.startswith(path.rstrip("/") + "/")}
            else:
                raise HttpError(400, f"unknown commit operation {key!r}")
        commit = self.state.make_commit(repo, head.oid, files, header.get("summary", ""), header.get("description", ""))
        repo.branches[rev] = commit.oid
        url = f"{self.endpoint}/{REPO_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
        h._json(200, {"success": True, "commitOid": commit.oid, "commitUrl": url})

    # -- downloads ---------------------------------------------------------------------------------
    def _resolve(self, h: _Handler, method: str, repo: Repo, rev: str, path: str) -> None:
        commit = self._commit_of(repo, rev)
        entry = commit.files.get(path)
        if entry is None:
            raise HttpError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if entry.lfs:  # like the Hub: redirect to the LFS storage, announcing the real etag and size
            headers.update(
                {
                    "Location": f"{self.storage_endpoint}/lfs/objects/{entry.sha256}",
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(entry.size),
                    "ETag": f'"{self.state.blob_oid(entry)}"',
                }
            )
            h._send(302, b"", headers, head=method == "HEAD")
            return
        headers["ETag"] = f'"{self.state.blob_oid(entry)}"'
        self._send_content(h, method, self.state.blobs[entry.sha256], headers)

    @staticmethod
    def _send_content(h: _Handler, method: str, blob: bytes, headers: dict[str, str]) -> None:
        rng = h.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if match and blob:
            start_s, end_s = match.groups()
            if start_s:
                start, end = int(start_s), min(int(end_s) if end_s else len(blob) - 1, len(blob) - 1)
            else:  # suffix range: the last N bytes
                start, end = max(len(blob) - int(end_s), 0), len(blob) - 1
            if start >= len(blob):
                h._send(416, b"", {"Content-Range": f"bytes */{len(blob)}", **headers}, head=method == "HEAD")
                return
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(blob)}"}
            h._send(206, blob[start : end + 1], headers, head=method == "HEAD")
            return
        h._send(200, blob, {"Content-Type": "application/octet-stream", **headers}, head=method == "HEAD")
