"""Share datasets on the Hugging Face Hub: push a store, pull (or load) a pinned snapshot.

A pushed repository holds the store's own files (meta/, data/*.arrow) plus a generated dataset
card whose `configs` let `datasets.load_dataset(repo_id)` read the Arrow shards directly, and a
tag naming the format version. Pulling resolves a revision to a commit, downloads it through
`huggingface_hub`'s cache (`snapshot_download`), and checks the files against the fingerprint in
meta/info.json with the store's own `mismatched_files`. Repositories in imitation's Hub format
(parquet shards with obs/acts/infos/terminal/rews columns) are converted on the fly.

`huggingface_hub` is imported inside functions: `import ildata` must not pay for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ildata.episode import DataError
from ildata.fsutil import atomic_output, check_destination, inside, require_regular_file
from ildata.store import (
    DATA_DIR,
    DATA_FORMATS,
    EPISODES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INFO_FILE,
    STATS_FILE,
    Provenance,
    TrajectoryDataset,
    content_files,
    is_store,
    load,
    mismatched_files,
    sha256_file,
    write_dataset,
)

REPO_TYPE = "dataset"
FORMAT_TAG = f"{FORMAT_NAME}-format-v{FORMAT_VERSION}"
# One quick request decides whether the Hub is reachable, so that an offline machine gets an
# answer in seconds instead of huggingface_hub's retries with backoff (~23 s).
PROBE_TIMEOUT_S = 5.0
# Commits stay small enough that an interrupted push loses little: a rerun skips every file
# already committed with the same content.
COMMIT_MAX_BYTES = 1 << 30
COMMIT_MAX_FILES = 64
PULL_PATTERNS = ["meta/*", f"{DATA_DIR}/*"]


def cache_dir() -> Path:
    """Where converted Hub datasets and verification markers live ($ILDATA_CACHE)."""
    return Path(os.environ.get("ILDATA_CACHE") or Path.home() / ".cache" / "ildata") / "hub"


class HubUnreachable(DataError):
    """The Hub could not be contacted (offline mode, no route, refused, timed out)."""


# --------------------------------------------------------------------------- references


def parse_ref(text: str) -> tuple[str, str | None]:
    """`hf://owner/name@rev`, `owner/name@rev` or `owner/name` -> (repo_id, revision or None)."""
    ref = text[len("hf://") :] if text.startswith("hf://") else text
    if ref.startswith("datasets/"):
        ref = ref[len("datasets/") :]
    repo_id, _, revision = ref.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise DataError(f"{text!r} is not a Hub dataset reference (expected owner/name or owner/name@revision)")
    return repo_id, revision or None


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the Hub could not be reached" for the installed huggingface_hub."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:  # huggingface_hub >= 1.0 speaks HTTP through httpx (vendored as httpx2 in 2.x)
        import httpx2 as http
    except ImportError:  # pragma: no cover - older huggingface_hub
        try:
            import httpx as http  # type: ignore[no-redef]
        except ImportError:
            import requests

            return (requests.ConnectionError, requests.Timeout, OfflineModeIsEnabled)
    return (http.ConnectError, http.TimeoutException, http.NetworkError, OfflineModeIsEnabled)


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one-line DataErrors."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        yield
    except RevisionNotFoundError:
        raise DataError(f"{repo_id} has no revision {revision!r} on {_endpoint()}") from None
    except RepositoryNotFoundError:
        raise DataError(f"no dataset repository {repo_id} on {_endpoint()} (a private one needs HF_TOKEN or `hf auth login`)") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        detail = (exc.server_message or str(exc)).strip().splitlines()[0] if (exc.server_message or str(exc)).strip() else ""
        hint = " (check HF_TOKEN or `hf auth login`)" if status in (401, 403) else ""
        raise DataError(f"the Hub answered {status} for {repo_id}: {detail}{hint}") from None
    except _network_errors() as exc:
        raise HubUnreachable(_unreachable_message(exc)) from None


def _unreachable_message(exc: BaseException) -> str:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE=1): cannot contact the Hub"
    return f"cannot reach the Hub at {_endpoint()} ({type(exc).__name__}: {str(exc) or 'no answer'})"


def _probe(api: Any, repo_id: str, revision: str | None) -> Any | None:
    """repo_info with a short timeout: the revision's info, or None if the repository does not exist.

    Raises HubUnreachable at once when the Hub cannot be reached.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    if constants.is_offline_mode():
        raise HubUnreachable("offline mode is on (HF_HUB_OFFLINE=1): cannot contact the Hub")
    with _hub_errors(repo_id, revision):
        try:
            return api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision, timeout=PROBE_TIMEOUT_S)
        except RepositoryNotFoundError:
            return None


# --------------------------------------------------------------------------- dataset card


def _size_category(n: int) -> str:
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if n < bound), "n>1T" if n >= 10**12 else "1B<n<10B")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def dataset_card(ds: TrajectoryDataset, repo_id: str, *, license: str | None = None, tags: Sequence[str] = ()) -> str:
    """README.md for a pushed store: YAML metadata (so `datasets.load_dataset` finds the Arrow
    shards) plus what a reader needs before downloading: spaces, sizes, return statistics."""
    from huggingface_hub import DatasetCardData

    info = ds.info
    all_tags = [FORMAT_NAME, "imitation-learning", "trajectories", FORMAT_TAG]
    if ds.env_id:
        all_tags.append(f"env:{ds.env_id}")
    all_tags += [t for t in tags if t not in all_tags]
    card_data = DatasetCardData(
        license=license or "unknown",
        tags=all_tags,
        task_categories=["reinforcement-learning"],
        size_categories=[_size_category(ds.num_transitions)],
        pretty_name=repo_id.split("/")[-1],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": f"{DATA_DIR}/*{DATA_FORMATS[ds.info.get('data_format', 'arrow')]}"}],
            }
        ],
        ildata={"format_version": FORMAT_VERSION, "fingerprint": ds.fingerprint, "env_id": ds.env_id},
    )
    stats = ds.stats()
    rows: list[tuple[str, object]] = [("episodes", len(ds)), ("transitions", ds.num_transitions)]
    for key in ("return_mean", "return_std", "return_min", "return_max", "len_mean", "len_min", "len_max"):
        if key in stats:
            rows.append((key.replace("_", " "), _fmt(stats[key])))
    provenance = info.get("provenance") or {}
    return _card_template().substitute(
        card_yaml=card_data.to_yaml(),
        name=repo_id.split("/")[-1],
        format_version=FORMAT_VERSION,
        environment=f"`{ds.env_id}`" if ds.env_id else "not recorded",
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        rewards="yes" if info.get("has_rewards") else "no",
        source=provenance.get("source_format") or "unknown",
        fingerprint=ds.fingerprint,
        statistics="\n".join(["| statistic | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]),
        features="\n".join(f"| `{name}` | {meta['dtype']} | {meta['shape']} |" for name, meta in info.get("features", {}).items()),
        repo_id=repo_id,
    )


def _card_template() -> string.Template:
    """ildata/templates/dataset_card.md (package data: edit the card there, not in code)."""
    from importlib.resources import files

    return string.Template(files("ildata").joinpath("templates", "dataset_card.md").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- push


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


def _git_blob_sha1(data: bytes) -> str:
    """The git object id of a small file: what the Hub reports for files not stored in LFS."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _store_files(info: dict[str, Any]) -> list[str]:
    """The files that make up a store, relative to its root (data shards first, metadata last)."""
    return [*info["data_files"], EPISODES_FILE, STATS_FILE, INFO_FILE]


def _batches(paths: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """Group files into commits of at most COMMIT_MAX_FILES files / COMMIT_MAX_BYTES bytes."""
    out: list[list[str]] = []
    current: list[str] = []
    total = 0
    for path in paths:
        if current and (len(current) >= COMMIT_MAX_FILES or total + sizes[path] > COMMIT_MAX_BYTES):
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
    files = [(rel, (root / rel).stat().st_size) for rel in _store_files(ds.info)]
    return card, [*files, ("README.md", len(card.encode()))]


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
    info = _probe(api, repo_id, None)
    with _hub_errors(repo_id, branch):
        if info is None:
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, repo_type=REPO_TYPE, branch=branch, exist_ok=True)
        remote = {
            f.path: (f.lfs.sha256 if f.lfs is not None else f.blob_id)
            for f in api.list_repo_tree(repo_id, repo_type=REPO_TYPE, revision=branch, recursive=True)
            if isinstance(f, RepoFile)
        }

        files = _store_files(ds.info)
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
            return sizes[rel] < (10 << 20) and remote[rel] == _git_blob_sha1((root / rel).read_bytes())

        def add(rel: str) -> Any:
            op = CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(root / rel))
            op.upload_info.sha256 = bytes.fromhex(sha256[rel])
            return op

        result = PushResult(repo_id, branch, commit="", url="")
        result.skipped = [f for f in files if unchanged(f)]
        data = [f for f in ds.info["data_files"] if f not in result.skipped]
        summary = message or f"Upload {FORMAT_NAME} dataset ({len(ds)} episodes, {ds.num_transitions} transitions)"
        batches = _batches(data, sizes)
        for i, batch in enumerate(batches):
            ops = [add(f) for f in batch]
            part = f" [data {i + 1}/{len(batches)}]" if len(batches) > 1 else " [data]"
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
        if remote.get("README.md") == _git_blob_sha1(card):
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
        result.url = f"{_endpoint()}/datasets/{repo_id}/tree/{branch}"
        _move_tag(api, repo_id, FORMAT_TAG, result.commit)
    return result


def _move_tag(api: Any, repo_id: str, tag: str, commit: str) -> None:
    """Point `tag` at `commit`: the format tag names the latest snapshot written in that format."""
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    current = {t.name: t.target_commit for t in refs.tags}
    if current.get(tag) == commit:
        return
    if tag in current:
        api.delete_tag(repo_id, tag=tag, repo_type=REPO_TYPE)
    api.create_tag(repo_id, tag=tag, revision=commit, repo_type=REPO_TYPE, tag_message=f"{FORMAT_NAME} format v{FORMAT_VERSION}")


# --------------------------------------------------------------------------- pull / load


def _snapshot(repo_id: str, revision: str | None, token: str | None = None) -> Path:
    """Download (or find in the cache) the store files of `repo_id` at `revision`.

    Returns the snapshot folder, named after the commit. Works offline for a cached revision.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    api = HfApi(token=token)
    try:
        info = _probe(api, repo_id, revision)
    except HubUnreachable as exc:
        try:
            folder = snapshot_download(repo_id, repo_type=REPO_TYPE, revision=revision, allow_patterns=PULL_PATTERNS, local_files_only=True)
        except (LocalEntryNotFoundError, OSError):
            raise HubUnreachable(f"{exc}, and {repo_id}@{revision or 'main'} is not in the local cache") from None
        return Path(folder)
    if info is None:
        raise DataError(f"no dataset repository {repo_id} on {_endpoint()} (a private one needs HF_TOKEN or `hf auth login`)")
    with _hub_errors(repo_id, revision):
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
        for rel in _store_files(info):
            inside(tmp, rel).parent.mkdir(parents=True, exist_ok=True)
            # follows the cache's symlinks (into the blob store), but copies only regular files
            shutil.copyfile(require_regular_file(source / rel), tmp / rel)
    return load(dst)
