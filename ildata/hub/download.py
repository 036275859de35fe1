"""Pull and load: download a pinned snapshot through huggingface_hub's cache, verify, open.

A revision resolves to a commit; `snapshot_download` fetches (or finds cached) the store files at
that commit, and the files are checked against the fingerprint in meta/info.json with the store's
own `mismatched_files`. Repositories in imitation's Hub format (parquet shards with
obs/acts/infos/terminal/rews columns) are converted to a store once per commit and cached.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from ildata.episode import DataError
from ildata.fsutil import atomic_output, check_destination, inside, require_regular_file
from ildata.hub.client import (
    PROBE_TIMEOUT_S,
    REPO_TYPE,
    HubUnreachable,
    cache_dir,
    hub_errors,
    missing_repo_message,
    parse_ref,
    probe,
    store_files,
)
from ildata.store import (
    DATA_DIR,
    FORMAT_NAME,
    INFO_FILE,
    Provenance,
    TrajectoryDataset,
    content_files,
    is_store,
    load,
    mismatched_files,
    write_dataset,
)

PULL_PATTERNS = ["meta/*", f"{DATA_DIR}/*"]


def _snapshot(repo_id: str, revision: str | None, token: str | None = None) -> Path:
    """Download (or find in the cache) the store files of `repo_id` at `revision`.

    Returns the snapshot folder, named after the commit. Works offline for a cached revision.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    api = HfApi(token=token)
    try:
        info = probe(api, repo_id, revision)
    except HubUnreachable as exc:
        try:
            folder = snapshot_download(repo_id, repo_type=REPO_TYPE, revision=revision, allow_patterns=PULL_PATTERNS, local_files_only=True)
        except (LocalEntryNotFoundError, OSError):
            raise HubUnreachable(f"{exc}, and {repo_id}@{revision or 'main'} is not in the local cache") from None
        return Path(folder)
    if info is None:
        raise DataError(missing_repo_message(repo_id))
    with hub_errors(repo_id, revision):
        # snapshot_download resolves the revision once and fetches every file at that commit;
        # it records branch/tag -> commit in its cache, so the same reference works offline later.
        folder = snapshot_download(
            repo_id,
            repo_type=REPO_TYPE,
            revision=revision,
            allow_patterns=PULL_PATTERNS,
            etag_timeout=PROBE_TIMEOUT_S,
            token=token,
        )
    return Path(folder)


def _verify(folder: Path, repo_id: str) -> None:
    """Check the snapshot against meta/info.json's fingerprint (store's `mismatched_files`).

    The result is remembered per commit with the files' sizes and mtimes, so loading a cached
    snapshot again does not re-hash gigabytes.
    """
    info = json.loads((folder / INFO_FILE).read_text())
    files = content_files(folder)
    signature = [[str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    marker = cache_dir() / "verified" / repo_id.replace("/", "--") / f"{folder.name}.json"
    expected = {"fingerprint": info.get("fingerprint"), "files": signature}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        if json.loads(marker.read_text()) == expected:
            return
    recorded = info.get("files_xxh3_128")
    differ = mismatched_files(folder, info.get("fingerprint"), recorded if isinstance(recorded, dict) else {})
    if differ is not None:
        which = f" ({', '.join(differ)} differ)" if differ else ""
        raise DataError(f"{repo_id}@{folder.name[:12]}: downloaded files do not match the fingerprint in {INFO_FILE}{which}")
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_name(f".{marker.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(expected))
        os.replace(tmp, marker)


def _from_imitation(folder: Path, repo_id: str) -> Path:
    """Convert a snapshot in imitation's Hub format (parquet, one row per trajectory) to a store,
    cached per commit."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ildata.formats.imitation_hf import batch_from_imitation_table

    dst = cache_dir() / "converted" / repo_id.replace("/", "--") / folder.name
    if is_store(dst):
        return dst
    shards = sorted((folder / DATA_DIR).rglob("*.parquet"))
    try:
        tables = [pq.read_table(shard) for shard in shards]
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{repo_id}: unreadable parquet shard ({exc})") from None
    batch = batch_from_imitation_table(table)
    write_dataset(
        batch,
        dst,
        provenance=Provenance(source_path=f"hf://{repo_id}@{folder.name}", source_format="imitation-hf"),
        overwrite=True,
    )
    return dst


def _open_snapshot(folder: Path, repo_id: str) -> Path:
    """The store for a snapshot folder: the folder itself, or its conversion."""
    if (folder / INFO_FILE).is_file():
        _verify(folder, repo_id)
        return folder
    if any((folder / DATA_DIR).rglob("*.parquet")):
        return _from_imitation(folder, repo_id)
    raise DataError(f"{repo_id}@{folder.name[:12]} is neither an {FORMAT_NAME} dataset nor in imitation's Hub format")


def load_hf(uri: str, *, token: str | None = None) -> TrajectoryDataset:
    """`ildata.load("hf://owner/name@revision")`: download (cached), verify and open."""
    repo_id, revision = parse_ref(uri)
    return load(_open_snapshot(_snapshot(repo_id, revision, token), repo_id), links_outside=True)


def pull(ref: str, dst: str | Path, *, revision: str | None = None, overwrite: bool = False, token: str | None = None) -> TrajectoryDataset:
    """Download `owner/name[@revision]` into a standalone store at `dst` (plain files, no cache links)."""
    repo_id, ref_revision = parse_ref(ref)
    dst = Path(dst)
    check_destination(dst, overwrite=overwrite)
    source = _open_snapshot(_snapshot(repo_id, revision or ref_revision, token), repo_id)
    info = json.loads((source / INFO_FILE).read_text())
    with atomic_output(dst, overwrite=overwrite) as tmp:
        for rel in store_files(info):
            inside(tmp, rel).parent.mkdir(parents=True, exist_ok=True)
            # follows the cache's symlinks (into the blob store), but copies only regular files
            shutil.copyfile(require_regular_file(source / rel), tmp / rel)
    return load(dst)
