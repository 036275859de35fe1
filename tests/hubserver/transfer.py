"""The test Hub's file transfer: preupload, the git-LFS batch API and its storage side (single
and multipart PUTs, verify), the NDJSON commit endpoint, and `resolve` downloads with ranges."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
from typing import Any

from hubserver.handler import Handler
from hubserver.state import LFS_SIZE_THRESHOLD, REPO_PREFIX, Commit, FileEntry, HttpError, HubState, Repo


class TransferApi:
    """Handlers for uploads and downloads (mixed into HubServer, which routes to them)."""

    state: HubState
    endpoint: str
    storage_endpoint: str
    multipart_chunk: int
    fail_commits: set[int]
    commit_requests: int

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

    def _preupload(self, h: Handler, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        commit = repo.commit_at(rev)
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

    def _lfs_batch(self, h: Handler, repo: Repo, payload: dict[str, Any]) -> None:
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

    def _route_lfs_storage(self, h: Handler, method: str, seg: list[str], body: bytes) -> bool:
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

    def _commit(self, h: Handler, repo: Repo, rev: str, body: bytes) -> None:
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
    def _resolve(self, h: Handler, method: str, repo: Repo, rev: str, path: str) -> None:
        commit = repo.commit_at(rev)
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
    def _send_content(h: Handler, method: str, blob: bytes, headers: dict[str, str]) -> None:
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
