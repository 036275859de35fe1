"""Share datasets on the Hugging Face Hub: push a store, pull (or load) a pinned snapshot.

A pushed repository holds the store's own files (meta/, data/*.arrow) plus a generated dataset
card whose `configs` let `datasets.load_dataset(repo_id)` read the Arrow shards directly, and a
tag naming the format version.

- client.py: references (`parse_ref`), the reachability probe, huggingface_hub errors -> DataError
- card.py: the dataset card (README.md)
- upload.py: push planning, commit batching, the format tag (`push` itself is below)
- download.py: `pull` and `load_hf` (snapshot download, fingerprint check, imitation conversion)

`huggingface_hub` is imported inside functions: `import ildata` must not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ildata.episode import DataError
from ildata.hub.card import dataset_card
from ildata.hub.client import (
    FORMAT_TAG,
    PROBE_TIMEOUT_S,
    REPO_TYPE,
    HubUnreachable,
    cache_dir,
    endpoint,
    hub_errors,
    parse_ref,
    probe,
    store_files,
)
from ildata.hub.download import PULL_PATTERNS, load_hf, pull
from ildata.hub.upload import PushResult, batches, git_blob_sha1, move_tag, push_plan
from ildata.store import DATA_DIR, EPISODES_FILE, FORMAT_NAME, INFO_FILE, STATS_FILE, load, sha256_file

__all__ = [
    "COMMIT_MAX_BYTES",
    "COMMIT_MAX_FILES",
    "FORMAT_TAG",
    "PROBE_TIMEOUT_S",
    "PULL_PATTERNS",
    "REPO_TYPE",
    "HubUnreachable",
    "PushResult",
    "cache_dir",
    "dataset_card",
    "load_hf",
    "parse_ref",
    "pull",
    "push",
    "push_plan",
]

# Commits stay small enough that an interrupted push loses little: a rerun skips every file
# already committed with the same content. Module settings, read at each push.
COMMIT_MAX_BYTES = 1 << 30
COMMIT_MAX_FILES = 64


def push(
    path: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    message: str | None = None,
    license: str | None = None,
    tags: Sequence[str] = (),
    token: str | None = None,
) -> PushResult:
    """Upload the store at `path` to the dataset repository `repo_id` (created if missing).

    Data shards go first, in commits of bounded size; metadata, the card and deletions of stale
    shards go last, so a reader never sees a new meta/info.json before its data. Files whose
    content already matches the remote are skipped, so a rerun after a failure finishes the job.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, RepoFile, get_token

    root = Path(path)
    ds = load(root, verify=True)  # never publish a store whose files do not match its fingerprint
    repo_id, ref_revision = parse_ref(repo_id)
    branch = revision or ref_revision or "main"
    token = token or get_token()
    if not token:
        raise DataError("not logged in to the Hub: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    info = probe(api, repo_id, None)
    with hub_errors(repo_id, branch):
        if info is None:
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, repo_type=REPO_TYPE, branch=branch, exist_ok=True)
        remote = {
            f.path: (f.lfs.sha256 if f.lfs is not None else f.blob_id)
            for f in api.list_repo_tree(repo_id, repo_type=REPO_TYPE, revision=branch, recursive=True)
            if isinstance(f, RepoFile)
        }

        files = store_files(ds.info)
        sizes = {f: (root / f).stat().st_size for f in files}
        card = dataset_card(ds, repo_id, license=license, tags=tags).encode()

        # The Hub identifies LFS files by sha256 (the store's fingerprint uses a faster hash), so
        # each file is hashed once here and the digest handed to the upload as well.
        sha256 = {f: sha256_file(root / f) for f in files}

        def unchanged(rel: str) -> bool:
            if rel not in remote:
                return False
            if remote[rel] == sha256[rel]:
                return True
            # Small files are plain git blobs on the Hub, identified by their git sha1.
            return sizes[rel] < (10 << 20) and remote[rel] == git_blob_sha1((root / rel).read_bytes())

        def add(rel: str) -> Any:
            op = CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(root / rel))
            op.upload_info.sha256 = bytes.fromhex(sha256[rel])
            return op

        result = PushResult(repo_id, branch, commit="", url="")
        result.skipped = [f for f in files if unchanged(f)]
        data = [f for f in ds.info["data_files"] if f not in result.skipped]
        summary = message or f"Upload {FORMAT_NAME} dataset ({len(ds)} episodes, {ds.num_transitions} transitions)"
        groups = batches(data, sizes, max_files=COMMIT_MAX_FILES, max_bytes=COMMIT_MAX_BYTES)
        for i, batch in enumerate(groups):
            ops = [add(f) for f in batch]
            part = f" [data {i + 1}/{len(groups)}]" if len(groups) > 1 else " [data]"
            api.create_commit(repo_id, operations=ops, commit_message=summary + part, repo_type=REPO_TYPE, revision=branch)
            result.uploaded += batch
            result.bytes_uploaded += sum(sizes[f] for f in batch)
            result.commits += 1

        final: list[Any] = []
        for rel in (EPISODES_FILE, STATS_FILE, INFO_FILE):
            if rel in result.skipped:
                continue
            final.append(add(rel))
            result.uploaded.append(rel)
            result.bytes_uploaded += sizes[rel]
        if remote.get("README.md") == git_blob_sha1(card):
            result.skipped.append("README.md")
        else:
            final.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
            result.uploaded.append("README.md")
            result.bytes_uploaded += len(card)
        stale = sorted(p for p in remote if p.startswith(f"{DATA_DIR}/") and p not in files)
        final += [CommitOperationDelete(path_in_repo=p) for p in stale]
        result.deleted = stale
        if final:
            api.create_commit(repo_id, operations=final, commit_message=summary, repo_type=REPO_TYPE, revision=branch)
            result.commits += 1

        head = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=branch)
        if head.sha is None:  # pragma: no cover - the Hub always reports the head commit
            raise DataError(f"the Hub did not report the head commit of {repo_id}@{branch}")
        result.commit = head.sha
        result.url = f"{endpoint()}/datasets/{repo_id}/tree/{branch}"
        move_tag(api, repo_id, FORMAT_TAG, result.commit)
    return result
