"""`ildata list`: find datasets (stores, Minari datasets, Hub cache snapshots) and their sizes,
reading metadata files only, so listing is fast on any size of data."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ildata.episode import DataError


def disk_bytes(path: Path) -> int:
    """Bytes of the regular files at or under `path` (symlinks are not followed out of it)."""
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def store_bytes(root: Path, info: Mapping[str, Any]) -> int:
    """Bytes of a store's own files, following links (a Hub cache snapshot links into its blobs)."""
    from ildata.store import EPISODES_FILE, INFO_FILE, STATS_FILE

    total = 0
    for rel in [*info.get("data_files", []), EPISODES_FILE, STATS_FILE, INFO_FILE]:
        try:
            total += (root / rel).stat().st_size
        except OSError:
            continue
    return total


@dataclass
class DatasetEntry:
    """One line of `ildata list`: what a dataset is, read from its metadata files only."""

    name: str  # a path, `minari:NS/NAME-vN` or `hf://owner/name@commit`
    kind: str  # "ildata", "minari", "hub ildata", "hub imitation"
    path: str
    episodes: int | None = None
    steps: int | None = None
    env_id: str | None = None
    bytes: int = 0
    problem: str | None = None  # why the counts are missing (unreadable metadata)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "kind", "path", "episodes", "steps", "env_id", "bytes", "problem")}


def hub_cache_root() -> Path:
    """huggingface_hub's cache folder, by its own rules (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE,
    HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub), without importing huggingface_hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def _store_entry(root: Path, name: str, kind: str = "ildata") -> DatasetEntry:
    from ildata.store import read_info

    entry = DatasetEntry(name=name, kind=kind, path=str(root))
    try:
        info = read_info(root)
    except DataError as exc:
        entry.problem = str(exc)
        return entry
    entry.episodes, entry.steps, entry.env_id = info.totals.episodes, info.totals.transitions, info.env_id
    entry.bytes = store_bytes(root, {"data_files": info.data_files})
    return entry


def _minari_entry(root: Path, name: str) -> DatasetEntry:
    import json

    from ildata.formats.minari.metadata import data_dir, load_json

    entry = DatasetEntry(name=name, kind="minari", path=str(root), bytes=disk_bytes(root))
    folder = data_dir(root)
    try:
        if folder is None:
            raise DataError("no data/metadata.json")
        meta = load_json(folder / "metadata.json")
        if not isinstance(meta, dict):
            raise DataError("metadata.json is not an object")
        episodes, steps = meta.get("total_episodes"), meta.get("total_steps")
        entry.episodes = episodes if isinstance(episodes, int) else None
        entry.steps = steps if isinstance(steps, int) else None
        spec = meta.get("env_spec")
        spec = json.loads(spec) if isinstance(spec, str) else spec
        entry.env_id = spec.get("id") if isinstance(spec, dict) and isinstance(spec.get("id"), str) else None
    except (DataError, ValueError) as exc:
        entry.problem = str(exc)
    return entry


def _classify(path: Path) -> str | None:
    from ildata.formats.minari.metadata import sniff as is_minari
    from ildata.store import is_store

    if is_store(path):
        return "ildata"
    if is_minari(path):
        return "minari"
    return None


def _folder_entries(folder: Path) -> list[DatasetEntry]:
    """Datasets at `folder` itself, or one level below it."""
    if not folder.is_dir():
        raise DataError("no such folder", subject=folder)
    candidates = [folder] if _classify(folder) else sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = []
    for path in candidates:
        kind = _classify(path)
        if kind == "ildata":
            entries.append(_store_entry(path, str(path)))
        elif kind == "minari":
            entries.append(_minari_entry(path, str(path)))
    return entries


def _minari_root_entries() -> list[DatasetEntry]:
    """Datasets under Minari's root: `NAME-vN` or `NAMESPACE/.../NAME-vN` folders holding data/."""
    from ildata.formats.minari.metadata import minari_root

    root = minari_root()
    if not root.is_dir():
        return []
    entries = []
    for folder, dirs, _files in os.walk(root):
        path = Path(folder)
        if (path / "data" / "metadata.json").is_file():
            dirs.clear()
            entries.append(_minari_entry(path, "minari:" + path.relative_to(root).as_posix()))
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return entries


def _hub_cache_entries() -> list[DatasetEntry]:
    """Dataset snapshots in huggingface_hub's cache (`datasets--OWNER--NAME/snapshots/COMMIT`),
    named by the refs pointing at them; read from the folder layout alone (no network)."""
    from ildata.store import DATA_DIR, INFO_FILE

    root = hub_cache_root()
    if not root.is_dir():
        return []
    entries = []
    for repo in sorted(root.glob("datasets--*--*")):
        owner, _, name = repo.name[len("datasets--") :].partition("--")
        refs: dict[str, list[str]] = {}
        refs_dir = repo / "refs"
        if refs_dir.is_dir():
            for ref in sorted(p for p in refs_dir.rglob("*") if p.is_file()):
                try:
                    commit = ref.read_text().strip()
                except OSError:
                    continue
                refs.setdefault(commit, []).append(ref.relative_to(refs_dir).as_posix())
        snapshots = repo / "snapshots"
        for snapshot in sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []:
            names = refs.get(snapshot.name) or [snapshot.name[:12]]
            label = f"hf://{owner}/{name}@{names[0]}"
            if (snapshot / INFO_FILE).is_file():
                entries.append(_store_entry(snapshot, label, kind="hub ildata"))
            elif any((snapshot / DATA_DIR).rglob("*.parquet")):
                shards = list((snapshot / DATA_DIR).rglob("*.parquet"))
                entries.append(DatasetEntry(label, "hub imitation", str(snapshot), bytes=sum(f.stat().st_size for f in shards)))
    return entries


def find_datasets(folders: list[Path] | tuple[Path, ...] = (), *, local: bool = True) -> list[DatasetEntry]:
    """Datasets in `folders` (each a dataset or a folder of them) and, with `local`, in the local
    Minari root and Hub cache. Reads metadata files only: fast on any size of data."""
    entries = [entry for folder in folders for entry in _folder_entries(Path(folder))]
    if local:
        entries += _minari_root_entries() + _hub_cache_entries()
    return entries
