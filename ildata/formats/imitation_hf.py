"""imitation's current format (v0.4 to v1.0.1): a HuggingFace `datasets` directory.

`serialize.save` writes `Dataset.from_dict(...).save_to_disk(dir)`: one row per trajectory with
columns `obs` (list of per-step observations, len+1 of them), `acts`, `infos` (one jsonpickle
string per step), `terminal` and, when every trajectory has them, `rews`. The same columns
are what imitation pushes to the Hub as parquet shards, hence `batch_from_imitation_table`.

Reading uses pyarrow directly: every list column is flattened once (no per-step Python), and
infos are decoded only when they hold more than `"{}"`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ildata.episode import DataError, EpisodeBatch
from ildata.formats import SourceChunks, SourceRead, chunk_ranges
from ildata.formats.imitation_common import TRUNCATED_KEY, carries_infos, make_read, termination_note
from ildata.fsutil import atomic_output, inside, os_path, require_regular_file
from ildata.store.columns import single_chunk

if TYPE_CHECKING:
    from ildata.store import TrajectoryDataset

FORMAT = "imitation-hf"
EMPTY_INFO = "{}"  # what imitation writes for a step without infos


def sniff(path: Path) -> bool:
    """A `save_to_disk` folder: dataset_info.json and state.json next to data-*.arrow."""
    return path.is_dir() and (path / "dataset_info.json").is_file() and (path / "state.json").is_file() and any(path.glob("data-*.arrow"))


def _arrow_files(path: Path) -> list[Path]:
    """Shards in the order state.json lists them (falling back to name order), each a regular
    file inside the dataset folder."""
    state_file = require_regular_file(path / "state.json")
    try:
        names = [f["filename"] for f in json.loads(state_file.read_text())["_data_files"]]
        if not all(isinstance(name, str) for name in names):
            raise TypeError("a data file name is not a string")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as exc:
        raise DataError(f"not a datasets state file ({type(exc).__name__}: {exc})", subject=state_file) from None
    names = names or sorted(file.name for file in path.glob("data-*.arrow"))
    files = [inside(path, name) for name in names]  # a symlinked shard may not lead out either
    return [require_regular_file(file) for file in files]


def _read_shard(file: Path) -> pa.Table:
    """One Arrow stream file, fully validated: offsets pointing outside their buffers would
    make later reads crash the interpreter, so nothing is touched before `validate(full=True)`."""
    try:
        table = pa.ipc.open_stream(pa.memory_map(os_path(file))).read_all()
        table.validate(full=True)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"corrupted Arrow stream ({type(exc).__name__}: {exc})", subject=file) from None
    return table


def read(path: Path) -> SourceRead:
    """Read every Arrow stream shard of a `save_to_disk` directory."""
    files = _arrow_files(path)
    tables = [_read_shard(file) for file in files]
    try:
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowInvalid as exc:
        raise DataError(f"shards have different columns ({exc})") from None
    return source_from_imitation_table(table, source_bytes=sum(file.stat().st_size for file in files))


def read_chunks(path: Path) -> SourceChunks:
    """The shards one at a time (memory-mapped), each cut into groups of trajectories of about
    `CHUNK_BYTES`: only one group's arrays are ever decoded."""
    files = _arrow_files(path)
    source_bytes = sum(file.stat().st_size for file in files)
    steps = 0
    keep_infos = False
    for file in files:  # the totals, from the list offsets alone (validated per shard below)
        table = _read_shard(file)
        steps += int(_list_lengths(table, "acts").sum())
        # Whether infos are kept is decided once for the whole source (from each shard's distinct
        # info strings), so every chunk has the same columns.
        if not keep_infos and "infos" in table.column_names and table.num_rows:
            keep_infos = _carries_infos(_steps(table, "infos")[1])
    notes: list[str] = []

    def chunks() -> Iterator[EpisodeBatch]:
        unknown = episodes = 0
        for file in files:
            table = _read_shard(file)
            if table.num_rows == 0:
                continue
            lengths = _list_lengths(table, "acts")
            for start, stop in chunk_ranges(lengths, table.nbytes / max(1, int(lengths.sum()))):
                piece = table.slice(start, stop - start)
                batch = source_from_imitation_table(piece, source_bytes=source_bytes, keep_infos=keep_infos).batch
                unknown += int((~batch.termination_known).sum())
                episodes += batch.num_episodes
                yield batch
        if episodes == 0:
            raise DataError("no trajectories")
        note = termination_note(unknown, episodes)
        if note:
            notes.append(note)

    return SourceChunks(format=FORMAT, notes=notes, chunks=chunks(), total_transitions=steps)


# ----------------------------------------------------------------------------- columns


def _list_lengths(table: pa.Table, name: str) -> np.ndarray:
    """Items per trajectory of a list column, from its offsets (no copy of the items); ones when
    the column is missing or not a list (reading the rows then says what is wrong)."""
    kind = table.schema.field(name).type if name in table.column_names else None
    if kind is None or not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return np.ones(table.num_rows, dtype=np.int64)
    return pc.list_value_length(table.column(name)).fill_null(1).to_numpy().astype(np.int64)


def _steps(table: pa.Table, name: str) -> tuple[np.ndarray, pa.Array]:
    """A list-per-trajectory column -> (items per trajectory, all items concatenated)."""
    column = table.column(name)
    array = single_chunk(column)
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type)):
        raise DataError(f"column {name!r} has type {array.type}, expected a list per trajectory")
    if array.null_count:
        raise DataError(f"column {name!r} is missing for {array.null_count} trajectories")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths, array.flatten()  # flatten respects slice offsets


def _to_numpy(name: str, values: pa.Array) -> np.ndarray:
    """Nested lists of equal length (one step each) -> (steps, *shape) array, dtype as stored."""
    shape: list[int] = []
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type):
        if values.null_count:
            raise DataError(f"column {name!r} has missing values")
        sizes = pc.list_value_length(values).to_numpy(zero_copy_only=False)
        if sizes.size and (sizes != sizes[0]).any():
            raise DataError(f"column {name!r} is ragged: steps have {sizes.min()} to {sizes.max()} values")
        shape.append(int(sizes[0]) if sizes.size else 0)
        values = values.flatten()
    if values.null_count:
        raise DataError(f"column {name!r} has missing values")
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type)):
        raise DataError(f"column {name!r} holds {values.type}, not numbers")
    flat = values.to_numpy(zero_copy_only=False)  # zero-copy for numbers without nulls
    return flat.reshape(-1, *shape) if shape else flat


def _has_pickle_tags(value: Any) -> bool:
    """jsonpickle marks Python objects with "py/..." keys (py/object, py/reduce, ...)."""
    if isinstance(value, dict):
        return any(str(k).startswith("py/") or _has_pickle_tags(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_pickle_tags(v) for v in value)
    return False


def _decode_info(text: str | None) -> Any:
    """Plain-JSON infos become dicts; anything jsonpickle tagged stays the raw string, since
    decoding it would mean running jsonpickle (which can call what the string names)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
        return text if _has_pickle_tags(value) else value
    except json.JSONDecodeError:
        return text
    except RecursionError:
        raise DataError(f"an info's JSON is nested too deeply to decode ({len(text)} characters)") from None


def _carries_infos(values: pa.Array) -> bool:
    """Whether per-step infos hold anything besides empty dicts and the truncation flag, from
    their distinct strings."""
    if values.null_count == len(values) or pc.all(pc.equal(values, EMPTY_INFO)).as_py():
        return False
    return carries_infos([_decode_info(s) for s in values.unique().to_pylist()])


def _infos(values: pa.Array) -> list[Any] | None:
    """Per-step jsonpickle strings -> decoded infos, or None when every step is `"{}"`."""
    if values.null_count == len(values) or pc.all(pc.equal(values, EMPTY_INFO)).as_py():
        return None
    # Decode each distinct string once: infos repeat a lot (e.g. {"TimeLimit.truncated": false}).
    encoded = values.dictionary_encode()
    decoded = [_decode_info(s) for s in encoded.dictionary.to_pylist()] + [None]  # [-1]: null
    return [decoded[i] for i in encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)]


def source_from_imitation_table(
    table: pa.Table, fmt: str = FORMAT, *, source_bytes: int | None = None, keep_infos: bool | None = None
) -> SourceRead:
    """One row per trajectory (imitation's HF/Hub layout) -> a `SourceRead`; the table must be
    validated (`validate(full=True)`) when it comes from an untrusted file. `source_bytes`, the
    size it was read from (default: the table's), bounds what its infos may expand to;
    `keep_infos`: decided for the whole source when this table is one chunk of it."""
    missing = [c for c in ("obs", "acts", "terminal") if c not in table.column_names]
    if missing:
        raise DataError(f"no {', '.join(map(repr, missing))} column: not an imitation trajectory table")
    if table.num_rows == 0:
        raise DataError("no trajectories")
    lengths, acts = _steps(table, "acts")
    obs_lengths, obs = _steps(table, "obs")
    bad = np.flatnonzero(obs_lengths != lengths + 1)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"trajectory {i}: {obs_lengths[i]} observations for {lengths[i]} actions (expected {lengths[i] + 1})")
    rews = infos = None
    for name in ("rews", "infos"):
        if name in table.column_names:
            counts, values = _steps(table, name)
            bad = np.flatnonzero(counts != lengths)
            if bad.size:
                i = int(bad[0])
                raise DataError(f"trajectory {i}: {counts[i]} {name} for {lengths[i]} actions")
            if name == "rews":
                rews = _to_numpy(name, values)
            else:
                infos = _infos(values)
    if keep_infos and infos is None:  # this chunk's infos are all empty, others' are not
        infos = [{}] * int(lengths.sum())
    terminal = table.column("terminal")
    if not pa.types.is_boolean(terminal.type) or terminal.null_count:
        raise DataError(f"column 'terminal' has type {terminal.type} with {terminal.null_count} missing, expected bool")
    return make_read(
        fmt,
        obs=_to_numpy("obs", obs),
        acts=_to_numpy("acts", acts),
        lengths=lengths,
        terminal=terminal.to_numpy(),
        rews=rews,
        infos=infos,
        source_bytes=table.nbytes if source_bytes is None else source_bytes,
        keep_infos=keep_infos,
    )


def batch_from_imitation_table(table: pa.Table) -> EpisodeBatch:
    """For the Hub reader: imitation's parquet shards have the same columns."""
    return source_from_imitation_table(table).batch


# ----------------------------------------------------------------------------- writer


def _encode_infos(infos: list[Any] | None, length: int, last: dict[str, Any]) -> list[str]:
    """One trajectory's infos as imitation stores them: one jsonpickle string per step.

    For plain-JSON dicts jsonpickle's output is `json.dumps`'s; strings kept raw on import
    (jsonpickle payloads) go back verbatim. `last` is merged into the final step's info.
    """
    if infos is None:
        infos = [None] * length
    encoded = [i if isinstance(i, str) else json.dumps(i) if i else EMPTY_INFO for i in infos[:-1]]
    final = infos[-1]
    if last and not isinstance(final, str):
        final = {**last, **(final or {})}
    encoded.append(final if isinstance(final, str) else json.dumps(final) if final else EMPTY_INFO)
    return encoded


def _legacy_features(value: Any) -> Any:
    """datasets >= 4 writes list features as `List`, which datasets < 4 (what imitation 1.0.1
    users run, on Python 3.8) cannot load; the equivalent `Sequence` loads in every version."""
    if isinstance(value, dict):
        out = {k: _legacy_features(v) for k, v in value.items()}
        if out.get("_type") == "List":
            out["_type"] = "Sequence"
        return out
    if isinstance(value, list):
        return [_legacy_features(v) for v in value]
    return value


def _write_legacy_features(folder: Path) -> None:
    """Rewrite the feature types in dataset_info.json and in each shard's schema metadata."""
    info_file = folder / "dataset_info.json"
    info = json.loads(info_file.read_text())
    info["features"] = _legacy_features(info["features"])
    info_file.write_text(json.dumps(info, indent=2))
    for file in folder.glob("data-*.arrow"):
        reader = pa.ipc.open_stream(pa.memory_map(os_path(file)))
        metadata = dict(reader.schema.metadata or {})
        hf = json.loads(metadata[b"huggingface"])
        metadata[b"huggingface"] = json.dumps(_legacy_features(hf)).encode()
        schema = reader.schema.with_metadata(metadata)
        with atomic_output(file, overwrite=True, folder=False) as tmp:
            with pa.OSFile(os_path(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in reader:  # keep datasets' record batches as they are
                    writer.write_batch(batch.replace_schema_metadata(metadata))


def to_imitation_dict(ds: TrajectoryDataset) -> dict[str, list[Any]]:
    """imitation's `trajectories_to_dict` output for a store, step arrays split per trajectory.

    `terminal` is imitation's "ended on done" (terminated or truncated); for episodes whose
    termination is known, the last info carries `TimeLimit.truncated` as SB3 VecEnvs record
    it, so re-importing recovers terminated vs truncated.
    """
    batch = ds.to_batch()
    if isinstance(batch.obs, Mapping):
        raise DataError("imitation's trajectory format cannot hold Dict observations")
    ends = np.cumsum(batch.lengths)
    n = batch.num_episodes
    out: dict[str, list[Any]] = {
        "obs": np.split(batch.obs, (ends + np.arange(1, n + 1))[:-1]),
        "acts": np.split(batch.acts, ends[:-1]),
        "infos": [],
        "terminal": (batch.terminated | batch.truncated).tolist(),
    }
    starts = ends - batch.lengths
    for i in range(n):
        infos = None if batch.infos is None else list(batch.infos[starts[i] : ends[i]])
        last = {TRUNCATED_KEY: bool(batch.truncated[i])} if batch.termination_known[i] else {}
        out["infos"].append(_encode_infos(infos, int(batch.lengths[i]), last))
    if batch.rews is not None:
        out["rews"] = np.split(batch.rews, ends[:-1])
    return out


def write(ds: TrajectoryDataset, dst: Path, *, overwrite: bool = False) -> None:
    """Write `ds` as imitation 1.0.1's `serialize.save` would (readable by its `serialize.load`)."""
    # Heavy import, only needed here (by name: the repository's datasets/ folder would shadow
    # the package for the type checker).
    hf_datasets = importlib.import_module("datasets")
    # Its "Saving the dataset" bar would print on stderr, where only ildata's own lines belong.
    hf_datasets.disable_progress_bars()
    with atomic_output(dst, overwrite=overwrite) as out:
        hf_datasets.Dataset.from_dict(to_imitation_dict(ds)).save_to_disk(str(out))
        _write_legacy_features(out)
