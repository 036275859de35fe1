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

HubServer and its URL routing are here; state.py holds the storage (repos, commits, blobs),
handler.py the HTTP plumbing, repos.py the repository/refs endpoints, transfer.py uploads,
LFS and downloads.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qs, unquote

from hubserver.handler import Handler, Server
from hubserver.repos import RepoApi
from hubserver.state import HttpError, HubState
from hubserver.transfer import TransferApi

__all__ = ["HubServer"]


class HubServer(RepoApi, TransferApi):
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

    def _make_server(self, router: Any) -> Server:
        httpd = Server(("127.0.0.1", 0), Handler)
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
    def _route(self, h: Handler, method: str, seg: list[str], body: bytes) -> bool:
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

    def _route_api(self, h: Handler, method: str, seg: list[str], body: bytes) -> bool:
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
