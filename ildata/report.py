"""`inspect` report: sizes, spaces, statistics, termination, horizon and validation problems.

Works on a store (through `ildata.load`; per-feature statistics come from meta/stats.json) and
straight on any source `convert` reads, without writing anything. Episode-level numbers and
per-step checks are vectorised numpy over the (memory-mapped) arrays: no polars import, which
alone cost more than the rest of `ildata inspect`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ildata.episode import DataError, flatten_obs
from ildata.horizon import verdict
from ildata.stats import feature_stats, rollout_stats

# Beyond this many distinct values an integer action space is not shown as a histogram.
MAX_HISTOGRAM_BINS = 64

# Per-step arrays of a run of transitions: observations by feature name, actions, rewards.
Chunk = tuple[dict[str, np.ndarray], np.ndarray, "np.ndarray | None"]


@dataclass
class ReportInput:
    """The arrays a report needs, whether they come from a store or a freshly read source."""

    path: Path
    format: str
    # The per-step arrays (observations by feature name "obs", "obs.key"; actions; rewards), one
    # store shard at a time: a store larger than memory is reported with one shard resident.
    chunks: Callable[[], Iterator[Chunk]]
    lengths: np.ndarray  # per episode, as are the next four
    returns: np.ndarray | None
    terminated: np.ndarray
    truncated: np.ndarray
    termination_known: np.ndarray
    observation_space: dict[str, Any]  # spaces in their JSON layout (ildata.spaces): no gymnasium
    action_space: dict[str, Any]
    env_id: str | None
    feature_stats: dict[str, Any] | None  # precomputed (store) or None
    spaces_inferred: bool
    disk_bytes: int = 0
    fingerprint: str | None = None
    provenance: dict[str, Any] | None = None
    collection: dict[str, Any] | None = None

    def first_chunk(self) -> Chunk:
        return next(self.chunks())

    @property
    def obs(self) -> dict[str, np.ndarray]:
        """Every step's observations (concatenated: for plots, which need all values)."""
        parts = [obs for obs, _, _ in self.chunks()]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    @property
    def acts(self) -> np.ndarray:
        return np.concatenate([acts for _, acts, _ in self.chunks()])


def _disk_bytes(path: Path) -> int:
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


def _obs_features(obs: Any) -> dict[str, np.ndarray]:
    return {("obs" if not k else f"obs.{k}"): v for k, v in flatten_obs(obs).items()}


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


def _from_store(path: str | Path, env_id: str | None) -> ReportInput:
    """Through `ildata.load` (a folder or `hf://owner/name@rev`), whose structural checks make a
    damaged store a DataError."""
    from ildata.store import load

    ds = load(path)

    def chunks() -> Iterator[Chunk]:
        try:
            parts = ds.transition_chunks() if ds.num_transitions else iter([ds.transitions()])
            for tr in parts:
                yield _obs_features(tr.obs), tr.acts, tr.rews
        except DataError:
            raise
        except Exception as exc:  # anything load's checks let through must still be one line
            raise DataError(f"damaged store ({type(exc).__name__}: {exc})") from None

    try:
        stats = ds.stats()
        data = ReportInput(
            path=ds.path,
            format=f"ildata v{ds.info['format_version']} (from {ds.info['provenance'].get('source_format')})",
            chunks=chunks,
            lengths=ds.lengths,
            returns=ds.returns,
            terminated=ds.episode_column("terminated"),
            truncated=ds.episode_column("truncated"),
            termination_known=ds.episode_column("termination_known"),
            observation_space=ds.info["observation_space"],
            action_space=ds.info["action_space"],
            env_id=ds.env_id,
            feature_stats=stats.get("features"),
            spaces_inferred=bool(ds.info.get("spaces_inferred")),
            disk_bytes=store_bytes(ds.path, ds.info),
            fingerprint=ds.fingerprint,
            provenance=ds.info.get("provenance"),
            collection=ds.info.get("collection") if isinstance(ds.info.get("collection"), dict) else None,
        )
    except DataError:
        raise
    except Exception as exc:  # anything load's checks let through must still be one line
        raise DataError(f"damaged store ({type(exc).__name__}: {exc})") from None
    if env_id is not None:
        from ildata.conversion import check_env_fits

        for tr in ds.transition_chunks():
            check_env_fits(env_id, tr.obs, tr.acts, recorded=(ds.observation_space, ds.action_space))
        data.env_id = env_id
    return data


def _from_source(path: str | Path, env_id: str | None) -> ReportInput:
    from ildata.conversion import read
    from ildata.spaces import infer_action_space, infer_obs_space, space_to_dict
    from ildata.store import split_obs

    source, path = read(path, env_id=env_id)
    batch = source.batch
    lengths = batch.lengths
    chunk: Chunk = ({k: split_obs(v, lengths)[0] for k, v in _obs_features(batch.obs).items()}, batch.acts, batch.rews)
    return ReportInput(
        path=path,
        format=source.format,
        chunks=lambda: iter([chunk]),
        lengths=lengths,
        returns=batch.returns(),
        terminated=batch.terminated,
        truncated=batch.truncated,
        termination_known=batch.termination_known,
        observation_space=space_to_dict(source.observation_space or infer_obs_space(batch.obs)),
        action_space=space_to_dict(source.action_space or infer_action_space(batch.acts)),
        env_id=source.env_id,
        feature_stats=None,
        spaces_inferred=source.observation_space is None or source.action_space is None,
        disk_bytes=_disk_bytes(path),
        provenance={"source_path": str(path), "source_format": source.format, "notes": source.notes} if source.notes else None,
    )


def _termination(data: ReportInput) -> dict[str, int]:
    known = data.termination_known.astype(bool)
    terminated = data.terminated.astype(bool)
    truncated = data.truncated.astype(bool)
    counts = {
        "terminated": known & terminated,
        "truncated": known & truncated,
        "terminated_and_truncated": known & terminated & truncated,
        "neither": known & ~terminated & ~truncated,
        "unknown": ~known,
    }
    return {name: int(np.count_nonzero(mask)) for name, mask in counts.items()}


def _action_histogram(data: ReportInput) -> dict[str, int] | None:
    """Counts of each integer action, summed shard by shard; None for other actions or too many values."""
    total: dict[int, int] = {}
    for _, acts, _ in data.chunks():
        if acts.ndim != 1 or not np.issubdtype(acts.dtype, np.integer):
            return None
        values, counts = np.unique(acts, return_counts=True)
        for a, c in zip(values.tolist(), counts.tolist()):
            total[a] = total.get(a, 0) + c
        if len(total) > MAX_HISTOGRAM_BINS:
            return None
    return {str(a): total[a] for a in sorted(total)}


def space_repr(space: Mapping[str, Any]) -> str:
    """gymnasium's `str(space)`, from the space's JSON layout: `inspect` of a store never imports
    gymnasium (a tenth of its run time). Kept equal to gymnasium's by a test."""
    kind = space["type"]
    if kind == "Box":
        low, high = _bounds(space)
        return f"Box({_short_repr(low)}, {_short_repr(high)}, {tuple(space['shape'])}, {np.dtype(space['dtype'])})"
    if kind == "Discrete":
        start = int(space.get("start", 0))
        return f"Discrete({int(space['n'])}{f', start={start}' if start else ''})"
    if kind == "MultiDiscrete":
        dtype = np.dtype(space.get("dtype", "int64"))
        nvec = np.array(space["nvec"], dtype=dtype)
        starts = np.broadcast_to(np.array(space.get("start", 0), dtype=dtype), nvec.shape)
        return f"MultiDiscrete({nvec}{f', start={starts}' if starts.any() else ''})"
    if kind == "MultiBinary":
        n = space["n"]
        return f"MultiBinary({n if isinstance(n, int) else tuple(n)})"
    if kind == "Dict":
        return "Dict(" + ", ".join(f"{k!r}: {space_repr(s)}" for k, s in space["subspaces"].items()) + ")"
    if kind == "Tuple":
        return "Tuple(" + ", ".join(space_repr(s) for s in space["subspaces"]) + ")"
    return str(kind)


def _num(value: float) -> float | str:
    """A bound as JSON can hold it: infinities as strings, as the spaces' JSON layout does."""
    return value if np.isfinite(value) else str(value)


def space_object(space: Mapping[str, Any]) -> dict[str, Any]:
    """A space for `inspect --json`: its kind, dtype, shape and bounds as JSON values (a Box's
    bounds as one number when they are the same everywhere, which keeps image spaces small)."""
    kind = space["type"]
    if kind == "Box":
        low, high = _bounds(space)
        out: dict[str, Any] = {"type": "Box", "dtype": str(np.dtype(space["dtype"])), "shape": list(space["shape"])}
        for name, bound in (("low", low), ("high", high)):
            flat = bound.astype(np.float64).ravel()
            uniform = flat.size > 0 and bool((flat == flat[0]).all())
            out[name] = _num(float(flat[0])) if uniform else [_num(float(v)) for v in flat.tolist()]
        return out
    if kind in ("Dict", "Tuple"):
        subspaces = space["subspaces"]
        if kind == "Dict":
            return {"type": kind, "subspaces": {k: space_object(s) for k, s in subspaces.items()}}
        return {"type": kind, "subspaces": [space_object(s) for s in subspaces]}
    return {k: v for k, v in space.items()}


def _g(value: float) -> str:
    return f"{value:.4g}"


def space_text(space: Mapping[str, Any], indent: str = "") -> str:
    """A space for people: kind, dtype, shape and value ranges, one line per Dict/Tuple entry."""
    kind = space["type"]
    if kind == "Box":
        low, high = (b.astype(np.float64).ravel() for b in _bounds(space))
        head = f"Box {np.dtype(space['dtype'])} {tuple(space['shape'])}"
        if low.size == 0:
            return head
        if (low == low[0]).all() and (high == high[0]).all():
            return f"{head} in [{_g(low[0])}, {_g(high[0])}]"
        if low.size <= 8:
            return f"{head}: " + " ".join(f"[{_g(lo)}, {_g(hi)}]" for lo, hi in zip(low, high))
        return f"{head}: low {_g(low.min())}..{_g(low.max())}, high {_g(high.min())}..{_g(high.max())}"
    if kind == "Discrete":
        start, n = int(space.get("start", 0)), int(space["n"])
        return f"Discrete: {n} values ({start}..{start + n - 1})"
    if kind == "MultiDiscrete":
        return f"MultiDiscrete: {list(np.asarray(space['nvec']).ravel().tolist())} values per entry"
    if kind == "MultiBinary":
        return f"MultiBinary {space['n']}"
    if kind in ("Dict", "Tuple"):
        subspaces = space["subspaces"]
        items = subspaces.items() if kind == "Dict" else enumerate(subspaces)
        inner = indent + "  "
        return kind + "".join(f"\n{inner}{k}: {space_text(s, inner)}" for k, s in items)
    return str(kind)


def _short_repr(array: np.ndarray) -> str:
    if array.size and array.min() == array.max():
        return str(array.min())
    return str(array)


def _bounds(space: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A Box's (low, high) in its dtype; JSON writes infinities as strings, which float() reads."""
    shape, dtype = tuple(space["shape"]), np.dtype(space["dtype"])

    def bound(key: str) -> np.ndarray:
        return np.array([float(v) for v in space[key]], dtype=np.float64).reshape(shape).astype(dtype)

    return bound("low"), bound("high")


def _out_of_space(values: np.ndarray, space: Mapping[str, Any]) -> int:
    """Number of steps whose value lies outside a Discrete, MultiDiscrete or Box space."""
    rows = values.reshape(values.shape[0], -1)
    kind = space["type"]
    bad: np.ndarray | np.bool_
    if kind == "Discrete":
        start = int(space.get("start", 0))
        bad = (values < start) | (values >= start + int(space["n"]))
    elif kind == "MultiDiscrete":
        nvec = np.asarray(space["nvec"])
        starts = np.broadcast_to(np.asarray(space.get("start", 0)), nvec.shape).reshape(1, -1)
        bad = ((rows < starts) | (rows >= starts + nvec.reshape(1, -1))).any(axis=1)
    elif kind == "Box":
        low, high = _bounds(space)
        bad = ((rows < low.reshape(1, -1)) | (rows > high.reshape(1, -1))).any(axis=1)
    else:
        return 0
    return int(np.count_nonzero(bad))


def _non_finite(values: np.ndarray) -> int:
    if not np.issubdtype(values.dtype, np.floating):
        return 0
    rows = values.reshape(values.shape[0], -1)
    return int(np.count_nonzero(~np.isfinite(rows).all(axis=1)))


def _arrays(chunk: Chunk) -> dict[str, np.ndarray]:
    obs, acts, rews = chunk
    return dict(obs) | {"acts": acts} | ({"rews": rews} if rews is not None else {})


def _problems(data: ReportInput) -> list[str]:
    non_finite: dict[str, int] = {}
    bad_acts = bad_obs = 0
    for chunk in data.chunks():
        for name, values in _arrays(chunk).items():
            non_finite[name] = non_finite.get(name, 0) + _non_finite(values)
        if not data.spaces_inferred:
            obs, acts, _ = chunk
            bad_acts += _out_of_space(acts, data.action_space)
            if set(obs) == {"obs"}:
                bad_obs += _out_of_space(obs["obs"], data.observation_space)
    problems = [f"{name}: {bad} steps contain NaN or Inf" for name, bad in non_finite.items() if bad]
    if bad_acts:
        problems.append(f"acts: {bad_acts} steps outside the action space {space_repr(data.action_space)}")
    if bad_obs:
        problems.append(f"obs: {bad_obs} steps outside the observation space")
    empty = int(np.count_nonzero(data.lengths < 1))
    if empty:
        problems.append(f"{empty} episodes have no actions")
    return problems


def read_input(path: str | Path, *, env_id: str | None = None) -> tuple[ReportInput, str]:
    """The arrays and metadata of a store (a folder or `hf://owner/name@rev`) or of any source
    `convert` reads, plus the name to show for it."""
    from ildata.store import INFO_FILE

    if isinstance(path, str) and path.startswith("hf://"):
        return _from_store(path, env_id), path
    folder = Path(path)
    # `path` may be a `minari:NAMESPACE/NAME-vN` spec, resolved by the source reader
    data = _from_store(folder, env_id) if folder.is_dir() and (folder / INFO_FILE).is_file() else _from_source(path, env_id)
    return data, str(data.path)


def report(path: str | Path, *, env_id: str | None = None) -> dict[str, Any]:
    """Everything `ildata inspect` shows, as plain JSON-able data.

    A folder with meta/info.json is a store and goes through `ildata.load` (so a damaged one is
    refused as `convert` refuses it); anything else is read as a conversion source."""
    data, shown = read_input(path, env_id=env_id)
    return report_from(data, shown)


def report_from(data: ReportInput, shown: str) -> dict[str, Any]:
    """`report` of arrays already read (`read_input`), named `shown`."""
    first = _arrays(data.first_chunk())
    features = {name: {"dtype": str(v.dtype), "shape": list(v.shape[1:])} for name, v in first.items()}
    if data.feature_stats is not None:
        per_feature = data.feature_stats
    else:  # a source: read whole, one chunk
        per_feature = {name: feature_stats(values) for name, values in first.items()}
    return {
        "path": shown,
        "format": data.format,
        "env_id": data.env_id,
        "fingerprint": data.fingerprint,
        "provenance": data.provenance,
        "collection": data.collection,
        "episodes": len(data.lengths),
        "transitions": int(data.lengths.sum()),
        "observation_space": space_object(data.observation_space),
        "action_space": space_object(data.action_space),
        "spaces_inferred": data.spaces_inferred,
        "features": features,
        "disk_bytes": data.disk_bytes,
        "rollout_stats": rollout_stats(data.lengths, data.returns),
        "feature_stats": per_feature,
        "action_histogram": _action_histogram(data),
        "termination": _termination(data),
        "horizon": verdict(data.lengths).to_dict(),
        "problems": _problems(data),
    }


# --------------------------------------------------------------------------- `ildata list`


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

    entry = DatasetEntry(name=name, kind="minari", path=str(root), bytes=_disk_bytes(root))
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
