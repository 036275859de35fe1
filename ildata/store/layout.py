"""The store's on-disk layout (docs/format.md): file names, and `meta/info.json` as a typed object.

    meta/info.json         DatasetInfo: spaces, features, totals, provenance, fingerprint
    meta/episodes.parquet  one row per episode (ildata/store/episodes.py)
    meta/stats.json        per-feature and return/length statistics (ildata/stats.py)
    data/shard-NNNNN.arrow one row per transition, one record batch per shard (read.py, write.py)

Nothing here imports pyarrow: knowing what a store is costs no more than `import ildata`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ildata.episode import DataError
from ildata.fsutil import inside
from ildata.version import __version__

FORMAT_NAME = "ildata"
FORMAT_VERSION = 1
INFO_FILE = "meta/info.json"
EPISODES_FILE = "meta/episodes.parquet"
STATS_FILE = "meta/stats.json"
DATA_DIR = "data"
# Shard file formats: Arrow IPC (memory-mapped, zero-copy; the default) or parquet (compressed,
# readable by every parquet tool and by `datasets.load_dataset("parquet")`, decoded on load).
DATA_FORMATS: dict[str, str] = {"arrow": ".arrow", "parquet": ".parquet"}
# A shard is one record batch; beyond this size a dataset is split at episode boundaries.
# transitions() over several shards has to concatenate (copy), so shards are large.
SHARD_BYTES = 4 << 30
# Per-step columns every shard has besides the features listed in info.json.
EPISODE_INDEX = "episode_index"
FLAG_COLUMNS = ("terminated", "truncated")
INFOS = "infos"


def is_store(path: Path) -> bool:
    return (path / INFO_FILE).is_file() and (path / EPISODES_FILE).is_file()


def content_files(root: Path) -> list[Path]:
    """The files the fingerprint covers: the episode table and every data shard."""
    folder = root / DATA_DIR
    shards = [f for f in folder.iterdir() if f.suffix in DATA_FORMATS.values()] if folder.is_dir() else []
    return sorted([root / EPISODES_FILE, *shards])


@dataclass
class Provenance:
    """Where a dataset came from: recorded in meta/info.json. `tool` and `created` are stamped
    when the store is written (`stamped`), and kept as read afterwards."""

    source_path: str | None = None
    source_format: str | None = None
    source_sha256: str | None = None
    extra: dict[str, Any] | None = None
    tool: str | None = None
    created: str | None = None

    def stamped(self) -> Provenance:
        """A copy naming this ildata version and the current time (for a store being written)."""
        return Provenance(
            self.source_path,
            self.source_format,
            self.source_sha256,
            dict(self.extra) if self.extra else None,
            tool=f"ildata {__version__}",
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )

    def to_dict(self) -> dict[str, Any]:
        """As info.json records it (`tool`/`created` as stamped, or as read: never re-stamped)."""
        out: dict[str, Any] = {
            "source_path": self.source_path,
            "source_format": self.source_format,
            "source_sha256": self.source_sha256,
            "tool": self.tool,
            "created": self.created,
        }
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        known = {"source_path", "source_format", "source_sha256", "tool", "created"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(
            source_path=data.get("source_path"),
            source_format=data.get("source_format"),
            source_sha256=data.get("source_sha256"),
            extra=extra or None,
            tool=data.get("tool"),
            created=data.get("created"),
        )


@dataclass(frozen=True)
class Feature:
    """dtype (numpy name, or "json" for infos) and per-step shape of one stored feature."""

    dtype: str
    shape: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Totals:
    episodes: int
    transitions: int
    observations: int

    def to_dict(self) -> dict[str, int]:
        return {"episodes": self.episodes, "transitions": self.transitions, "observations": self.observations}


@dataclass
class DatasetInfo:
    """meta/info.json. `from_dict` checks every field's type, so that a hand-edited or damaged file
    is one DataError here rather than a KeyError or TypeError deep in the reader; unknown keys
    (`extra_info` of `write_dataset`) are kept in `extra` and written back after the known ones."""

    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    features: dict[str, Feature]
    totals: Totals
    data_files: list[str]
    fingerprint: str
    env_id: str | None = None
    spaces_inferred: bool = False
    observation_keys: list[str] | None = None
    has_rewards: bool = False
    has_infos: bool = False
    data_format: str = "arrow"
    provenance: Provenance = field(default_factory=Provenance)
    files_xxh3_128: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "format_version": self.format_version,
            "env_id": self.env_id,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "spaces_inferred": self.spaces_inferred,
            "observation_keys": self.observation_keys,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "totals": self.totals.to_dict(),
            "has_rewards": self.has_rewards,
            "has_infos": self.has_infos,
            "data_format": self.data_format,
            "data_files": list(self.data_files),
            "provenance": self.provenance.to_dict(),
            "fingerprint": self.fingerprint,
            "files_xxh3_128": dict(self.files_xxh3_128),
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, subject: object = INFO_FILE) -> DatasetInfo:
        """Parse and type-check info.json's content (DataError naming the bad field)."""

        def bad(message: str) -> DataError:
            return DataError(message, subject=subject)

        if not isinstance(data, dict):
            raise bad("is not a JSON object")
        if data.get("format") != FORMAT_NAME or data.get("format_version") != FORMAT_VERSION:
            raise bad(f"unsupported format {data.get('format')} v{data.get('format_version')} (this ildata reads v{FORMAT_VERSION})")

        def get(key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
            if key not in data:
                raise bad(f"missing {key!r}")
            value = data[key]
            if value is None and optional:
                return None
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise bad(f"{key!r} has the wrong type ({type(value).__name__})")
            return value

        raw_features = get("features", dict)
        features: dict[str, Feature] = {}
        for name, meta in raw_features.items():
            shape = meta.get("shape") if isinstance(meta, dict) else None
            if not isinstance(meta, dict) or not isinstance(meta.get("dtype"), str) or not isinstance(shape, list):
                raise bad(f"feature {name!r} needs a dtype and a shape")
            if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
                raise bad(f"feature {name!r} has an invalid shape {shape}")
            features[name] = Feature(meta["dtype"], tuple(shape))
        raw_totals = get("totals", dict)
        counts = {k: raw_totals.get(k) for k in ("episodes", "transitions", "observations")}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
            raise bad(f"'totals' needs non-negative integer episodes, transitions and observations, got {raw_totals}")
        data_files = get("data_files", list)
        if not all(isinstance(n, str) for n in data_files):
            raise bad("'data_files' must list file names")
        data_format = get("data_format", str) if "data_format" in data else "arrow"
        if data_format not in DATA_FORMATS:
            raise bad(f"unknown data_format {data_format!r}")
        keys = get("observation_keys", list, optional=True)
        if keys is not None and not all(isinstance(k, str) for k in keys):
            raise bad("'observation_keys' must list strings")
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, dict):
            raise bad("'provenance' must be an object")
        hashes = data.get("files_xxh3_128") or {}
        if not isinstance(hashes, dict):
            raise bad("'files_xxh3_128' must be an object")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            observation_space=get("observation_space", dict),
            action_space=get("action_space", dict),
            features=features,
            totals=Totals(**counts),
            data_files=list(data_files),
            fingerprint=get("fingerprint", str),
            env_id=get("env_id", str, optional=True) if "env_id" in data else None,
            spaces_inferred=bool(data.get("spaces_inferred", False)),
            observation_keys=keys,
            has_rewards=get("has_rewards", bool),
            has_infos=get("has_infos", bool),
            data_format=data_format,
            provenance=Provenance.from_dict(provenance),
            files_xxh3_128=dict(hashes),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def data_paths(self, root: Path, *, links_outside: bool = False) -> list[Path]:
        """The shard files, refusing entries that point outside the store (`../x`, absolute, or a
        symlink out). `links_outside` lets symlinks lead elsewhere (huggingface_hub's cache, whose
        snapshot files link into its blob store); the names themselves must still stay inside."""
        paths = []
        for name in self.data_files:
            relative = Path(name)
            try:
                if links_outside and not relative.is_absolute() and ".." not in relative.parts:
                    paths.append(root / relative)
                else:
                    paths.append(inside(root, name))
            except DataError as exc:
                raise DataError(f"data_files entry {exc}", subject=root / INFO_FILE) from None
        if not paths:
            raise DataError("lists no data_files", subject=root / INFO_FILE)
        return paths

    def obs_columns(self, prefix: str = "obs") -> dict[str, str]:
        """Observation key -> column name ("" for a plain, non-Dict observation)."""
        if self.observation_keys is None:
            return {"": prefix}
        return {key: f"{prefix}.{key}" for key in self.observation_keys}
