"""The test Hub's repository API: create, info, tree listings, refs, commits log, branches, tags."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

from hubserver.handler import Handler
from hubserver.state import DEFAULT_GITATTRIBUTES, REPO_PREFIX, Commit, FileEntry, HttpError, HubState, Repo, lfs_pointer, now


class RepoApi:
    """Handlers for repositories and their refs (mixed into HubServer, which routes to them)."""

    state: HubState
    endpoint: str

    def _repo(self, h: Handler, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        user = h._user()
        if write and user is None:
            raise HttpError(401, "Invalid credentials in Authorization header")
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo.owner):
            raise HttpError(404, "Repository not found", "RepoNotFound")
        if write and user != repo.owner:
            raise HttpError(403, "You don't have the rights to write to this repository")
        return repo

    def _create_repo(self, h: Handler, payload: dict[str, Any]) -> None:
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
        repo = Repo(repo_type, repo_id, private, owner, created_at=now())
        sha = self.state.put_blob(DEFAULT_GITATTRIBUTES)
        files = {".gitattributes": FileEntry(sha, len(DEFAULT_GITATTRIBUTES), lfs=False)}
        repo.branches["main"] = self.state.make_commit(repo, None, files, "initial commit", "").oid
        self.state.repos[(repo_type, repo_id)] = repo
        h._json(200, {"url": f"{self.endpoint}/{REPO_PREFIX[repo_type]}{repo_id}", "name": repo_id})

    def _validate_yaml(self, h: Handler, payload: dict[str, Any]) -> None:
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

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        entry = commit.files.get("README.md")
        if entry is None:
            return None
        match = re.match(r"^---\n(.*?)\n---", self.state.blobs[entry.sha256].decode(errors="replace"), re.S)
        meta = yaml.safe_load(match.group(1)) if match else None
        return meta if isinstance(meta, dict) else None

    def _info(self, h: Handler, repo: Repo, rev: str) -> None:
        commit = repo.commit_at(rev)
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

    def _tree(self, h: Handler, repo: Repo, rev: str, path: str, recursive: bool, expand: bool) -> None:
        commit = repo.commit_at(rev)
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

    def _paths_info(self, h: Handler, repo: Repo, rev: str, paths: list[str], expand: bool) -> None:
        commit = repo.commit_at(rev)
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(self._entry_json(commit, path, commit.files[path], expand))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._dir_json(commit, path, expand))
        h._json(200, out)

    def _refs(self, h: Handler, repo: Repo) -> None:
        h._json(
            200,
            {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(repo.branches.items())],
                "converts": [],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(repo.tags.items())],
                "pullRequests": [],
            },
        )

    def _commits(self, h: Handler, repo: Repo, rev: str) -> None:
        commit: Commit | None = repo.commit_at(rev)
        out = []
        while commit is not None:
            out.append(
                {"id": commit.oid, "title": commit.title, "message": commit.message, "date": commit.date, "authors": [{"user": repo.owner}]}
            )
            commit = repo.commits[commit.parent] if commit.parent else None
        h._json(200, out)

    def _branch(self, h: Handler, method: str, repo: Repo, branch: str, payload: dict[str, Any]) -> None:
        if method == "DELETE":
            if branch not in repo.branches or branch == "main":
                raise HttpError(404 if branch not in repo.branches else 403, f"cannot delete branch {branch}")
            del repo.branches[branch]
        else:
            if branch in repo.branches:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            start = payload.get("startingPoint") or "main"
            repo.branches[branch] = repo.commit_at(start).oid
        h._json(200, {})

    def _tag(self, h: Handler, method: str, repo: Repo, name: str, payload: dict[str, Any]) -> None:
        if method == "DELETE":  # /tag/{tag}
            if name not in repo.tags:
                raise HttpError(404, f"Tag {name} not found", "RevisionNotFound")
            del repo.tags[name]
        else:  # /tag/{revision} with {"tag": ...}
            tag = payload["tag"]
            if tag in repo.tags:
                raise HttpError(409, f"Tag {tag} already exists")
            repo.tags[tag] = repo.commit_at(name).oid
        h._json(200, {})
