"""Datasets larger than memory: sources read piece by piece are written as multi-shard stores
with bounded memory, and the result is the store the in-memory path writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import LEGACY, make_episodes, run_cli

import ildata
from ildata import formats
from ildata.episode import DataError, EpisodeBatch
from ildata.formats import read_source, read_source_chunks, store_dir
from ildata.store import layout, write_chunks, write_dataset


def _batch(lengths: tuple[int, ...], **kwargs: object) -> EpisodeBatch:
    return EpisodeBatch.from_episodes(make_episodes(lengths, **kwargs))  # type: ignore[arg-type]


LENGTHS = (7, 3, 12, 5, 9, 4, 11, 6, 8, 2)


def _split(batch: EpisodeBatch, cuts: list[int]) -> list[EpisodeBatch]:
    """The episodes of `batch` as consecutive batches cut before the given episode numbers."""
    bounds = [0, *cuts, batch.num_episodes]
    parts = []
    source = _episodes(batch)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        parts.append(EpisodeBatch.from_episodes(source[start:stop]))
    return parts


def _episodes(batch: EpisodeBatch) -> list[ildata.Episode]:
    obs = batch.obs
    assert isinstance(obs, np.ndarray)
    out, o, t = [], 0, 0
    for i, n in enumerate(batch.lengths.tolist()):
        out.append(
            ildata.Episode(
                obs=obs[o : o + n + 1],
                acts=batch.acts[t : t + n],
                rews=None if batch.rews is None else batch.rews[t : t + n],
                terminated=bool(batch.terminated[i]),
                truncated=bool(batch.truncated[i]),
                infos=None if batch.infos is None else list(batch.infos[t : t + n]),  # type: ignore[arg-type]
                termination_known=bool(batch.termination_known[i]),
                seed=None if batch.seeds is None else int(batch.seeds[i]),
            )
        )
        o, t = o + n + 1, t + n
    return out


def _same_store(a: Path, b: Path) -> None:
    info_a, info_b = (json.loads((p / layout.INFO_FILE).read_text()) for p in (a, b))
    assert info_a["fingerprint"] == info_b["fingerprint"]
    assert info_a["data_files"] == info_b["data_files"]
    assert info_a["action_space"] == info_b["action_space"]
    assert (a / layout.STATS_FILE).read_text() == (b / layout.STATS_FILE).read_text()


@pytest.mark.parametrize("cuts", [[1], [3, 4, 9], list(range(1, 10))])
@pytest.mark.parametrize("shard_bytes", [300, 1 << 30])
def test_streaming_equals_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuts: list[int], shard_bytes: int) -> None:
    monkeypatch.setattr(layout, "SHARD_BYTES", shard_bytes)
    batch = _batch(LENGTHS, act_dim=None, infos=True, seeds=True)
    whole = write_dataset(batch, tmp_path / "whole")
    # Unknown totals: the statistics come from the written shards read back.
    streamed = write_chunks(_split(batch, cuts), tmp_path / "streamed")
    _same_store(whole, streamed)
    known = write_chunks(_split(batch, cuts), tmp_path / "known", total_transitions=batch.num_transitions)
    _same_store(whole, known)
    ds = ildata.load(streamed, verify=True)
    if shard_bytes == 300:
        assert len(ds.meta.data_files) > 2
    np.testing.assert_array_equal(ds.transitions().acts, batch.acts)


def test_inferred_discrete_space_grows_over_chunks(tmp_path: Path) -> None:
    """A Discrete action space inferred chunk by chunk is the one inferred from all actions."""
    batch = _batch(LENGTHS, act_dim=None, n_actions=5)
    parts = _split(batch, [2, 6])
    whole = ildata.load(write_dataset(batch, tmp_path / "whole"))
    streamed = ildata.load(write_chunks(parts, tmp_path / "streamed"))
    assert streamed.action_space == whole.action_space
    assert streamed.meta.spaces_inferred


def test_writer_pulls_chunks_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer asks for the next chunk only when done with the previous: at most one chunk
    (plus one shard's rows) is held, whatever the number of chunks."""
    monkeypatch.setattr(layout, "SHARD_BYTES", 400)
    import weakref

    batch = _batch(LENGTHS * 3)
    parts = _split(batch, list(range(1, 30)))
    alive: list[weakref.ref[np.ndarray]] = []
    most_alive = 0

    def chunks() -> Iterator[EpisodeBatch]:
        nonlocal most_alive
        while parts:
            chunk = parts.pop(0)
            alive.append(weakref.ref(chunk.acts))
            # chunks the writer still holds when it asks for the next one
            most_alive = max(most_alive, sum(ref() is not None for ref in alive))
            yield chunk
            del chunk

    write_chunks(chunks(), tmp_path / "out")
    assert len(alive) == 30
    # the chunk being handed over, plus at most the rows of the shard being filled
    shards = len(json.loads((tmp_path / "out" / layout.INFO_FILE).read_text())["data_files"])
    assert shards > 3
    assert most_alive <= 1 + 4  # a 400-byte shard holds at most 4 of these (1-episode) chunks' rows


def test_error_mid_stream_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "SHARD_BYTES", 200)  # shards are written before the failure
    batch = _batch(LENGTHS)
    parts = _split(batch, [3, 6])

    def chunks() -> Iterator[EpisodeBatch]:
        yield parts[0]
        yield parts[1]
        raise DataError("the source is truncated")

    dst = tmp_path / "out"
    with pytest.raises(DataError, match="truncated"):
        write_chunks(chunks(), dst)
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder either
    # an existing store is kept when its replacement fails
    write_dataset(batch, dst)
    before = (dst / layout.INFO_FILE).read_text()
    with pytest.raises(DataError, match="truncated"):
        write_chunks(chunks(), dst, overwrite=True)
    assert (dst / layout.INFO_FILE).read_text() == before


def test_chunks_with_other_features_are_refused(tmp_path: Path) -> None:
    parts = [_batch((3, 4)), _batch((5,), obs_dim=4)]
    with pytest.raises(DataError, match="other features"):
        write_chunks(parts, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data_format", ["arrow", "parquet"])
def test_convert_store_source_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_format: str) -> None:
    """An ildata store as a source is read a group of episodes at a time; the result is the
    store converted whole."""
    monkeypatch.setattr(layout, "SHARD_BYTES", 500)
    batch = _batch(LENGTHS * 2, infos=True, dict_obs=True)
    src = write_dataset(batch, tmp_path / "src", data_format=data_format)
    whole = tmp_path / "whole"
    write_dataset(read_source(src).batch, whole, data_format=data_format)
    monkeypatch.setattr(formats, "CHUNK_BYTES", 300)
    source = read_source_chunks(src)
    assert len(list(read_source_chunks(src).chunks)) > 5
    assert source.total_transitions == batch.num_transitions
    converted = ildata.convert(src, tmp_path / "converted", to="parquet" if data_format == "parquet" else "ildata")
    info_whole = json.loads((whole / layout.INFO_FILE).read_text())
    assert converted.fingerprint == info_whole["fingerprint"]
    assert converted.stats()["features"] == json.loads((whole / layout.STATS_FILE).read_text())["features"]
    assert converted.verify() == []


def test_convert_imitation_hf_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """imitation's HF directory: shards read one at a time, trajectories in groups; the note
    about unknown terminations counts every episode."""
    batch = _batch(LENGTHS * 2, act_dim=None, infos=True)
    store = ildata.save(batch, tmp_path / "store")
    ildata.convert(store.path, tmp_path / "hf", to="imitation")
    whole = ildata.convert(tmp_path / "hf", tmp_path / "whole")
    monkeypatch.setattr(formats, "CHUNK_BYTES", 200)
    assert len(list(read_source_chunks(tmp_path / "hf").chunks)) > 5
    streamed = ildata.convert(tmp_path / "hf", tmp_path / "streamed")
    assert streamed.fingerprint == whole.fingerprint
    assert streamed.stats() == whole.stats()
    assert streamed.info["provenance"].get("notes") == whole.info["provenance"].get("notes")


def test_store_reader_chunks_are_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_dataset(_batch(LENGTHS), tmp_path / "src")
    monkeypatch.setattr(formats, "CHUNK_BYTES", 100)
    source = store_dir.read_chunks(src)
    first = next(source.chunks)
    assert first.num_episodes < len(LENGTHS)  # nothing beyond the first group was read


def test_stats_verify_and_transition_chunks_shard_by_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-shard store: `transition_chunks` gives one view per shard, stats of a subset are
    computed shard by shard and equal those of its concatenation, verify finds a flipped flag."""
    monkeypatch.setattr(layout, "SHARD_BYTES", 300)
    batch = _batch(LENGTHS, act_dim=None)
    ds = ildata.load(write_dataset(batch, tmp_path / "ds"))
    chunks = list(ds.transition_chunks())
    assert len(chunks) == len(ds.meta.data_files) > 2
    acts = ds.column("acts")
    assert all(any(np.shares_memory(c.acts, part) for part in acts.chunks) for c in chunks)  # type: ignore[union-attr]
    whole = ds.transitions()
    for name in ("acts", "dones", "terminated", "episode_index"):
        np.testing.assert_array_equal(np.concatenate([getattr(c, name) for c in chunks]), getattr(whole, name))
    subset = ds[[8, 1, 5, 2]]
    stats = subset.stats()["features"]
    again = ildata.save(subset.to_batch(), tmp_path / "copy").stats()["features"]
    assert stats.keys() == again.keys()
    for name in stats:
        assert stats[name]["count"] == again[name]["count"]
        np.testing.assert_allclose(stats[name]["mean"], again[name]["mean"], rtol=1e-12)
        assert stats[name]["quantiles"] == again[name]["quantiles"]
    assert ds.verify() == []


@pytest.mark.parametrize("backend", ["arrow", "parquet", "hdf5"])
def test_convert_minari_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """Minari's per-episode folders (arrow, parquet) or groups (hdf5) are read a group of
    episodes at a time; the store equals the one converted whole (infos with the reset row,
    seeds, unknown terminations included)."""
    from ildata.formats import minari_dir

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    flags = [(False, True), (True, False)] * 10
    store = ildata.save(
        make_episodes(LENGTHS * 2, infos=True, seeds=True, flags=flags, termination_known=[True, False] * 10), tmp_path / "store"
    )
    dst = tmp_path / "minari-dataset"
    minari_dir.write(store, dst, dataset_id="test/chunks-v0", data_format=backend)
    whole = ildata.convert(dst, tmp_path / "whole")
    monkeypatch.setattr(formats, "CHUNK_BYTES", 400 if backend == "hdf5" else 2000)  # hdf5: decoded bytes
    assert len(list(read_source_chunks(dst).chunks)) > 3
    streamed = ildata.convert(dst, tmp_path / "streamed")
    assert streamed.fingerprint == whole.fingerprint
    assert streamed.stats() == whole.stats()
    assert streamed.info["provenance"].get("notes") == whole.info["provenance"].get("notes")
    assert not streamed.episode_column("termination_known").all()


def test_cli_shard_size(tmp_path: Path) -> None:
    src = write_dataset(_batch(LENGTHS), tmp_path / "src")
    result = run_cli("convert", str(src), str(tmp_path / "out"), "--shard-mb", "0.0004", "--quiet")
    assert result.returncode == 0, result.stderr
    ds = ildata.load(tmp_path / "out", verify=True)
    assert len(ds.meta.data_files) > 3
    assert ds.fingerprint != ildata.load(src).fingerprint  # other shards: other files
    assert ds.stats()["features"]["obs"]["mean"] == pytest.approx(ildata.load(src).stats()["features"]["obs"]["mean"])
    refused = run_cli("convert", str(src), str(tmp_path / "zero"), "--shard-mb", "0")
    assert refused.returncode == 2 and "--shard-mb must be positive" in refused.stderr
    assert not (tmp_path / "zero").exists()


def test_convert_imitation_hf_in_chunks_keeps_infos_found_only_in_later_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether infos are kept is decided for the whole source: episodes whose infos are all empty
    in the first chunks and real in later ones convert in chunks as they do whole."""
    episodes = make_episodes(LENGTHS * 2, act_dim=None)
    for i, episode in enumerate(episodes):
        episode.infos = [{} if i < 10 else {"speed": float(t)} for t in range(len(episode.acts))]
    store = ildata.save(EpisodeBatch.from_episodes(episodes), tmp_path / "store")
    ildata.convert(store.path, tmp_path / "hf", to="imitation")
    whole = ildata.convert(tmp_path / "hf", tmp_path / "whole")
    assert whole[15].infos[1] == {"speed": 1.0}
    monkeypatch.setattr(formats, "CHUNK_BYTES", 200)
    assert len(list(read_source_chunks(tmp_path / "hf").chunks)) > 5
    streamed = ildata.convert(tmp_path / "hf", tmp_path / "streamed")
    assert streamed.fingerprint == whole.fingerprint
    assert streamed[0].infos[0] == whole[0].infos[0] and streamed[15].infos[1] == {"speed": 1.0}


def _assert_chunked_equals_whole(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, shard_bytes: int = 700
) -> None:
    """`src` converted a few episodes at a time writes the store its whole read writes (shards,
    fingerprint, statistics, notes), and the file's one-chunk read is that whole read."""
    source = read_source(src)
    whole = ildata.convert(src, tmp_path / "whole")
    assert len(list(read_source_chunks(src).chunks)) == 1  # default CHUNK_BYTES: one chunk
    direct = write_dataset(source.batch, tmp_path / "direct", observation_space=source.observation_space, action_space=source.action_space)
    assert json.loads((direct / layout.INFO_FILE).read_text())["fingerprint"] == whole.fingerprint
    monkeypatch.setattr(layout, "SHARD_BYTES", shard_bytes)
    monkeypatch.setattr(formats, "CHUNK_BYTES", chunk_bytes)
    chunked = read_source_chunks(src)
    assert len(list(chunked.chunks)) > 3
    assert chunked.total_transitions == source.batch.num_transitions
    monkeypatch.setattr(formats, "CHUNK_BYTES", 1 << 40)
    sharded = ildata.convert(src, tmp_path / "sharded")
    monkeypatch.setattr(formats, "CHUNK_BYTES", chunk_bytes)
    streamed = ildata.convert(src, tmp_path / "streamed")
    assert len(streamed.meta.data_files) > 2
    _same_store(sharded.path, streamed.path)
    assert streamed.info["provenance"].get("notes") == whole.info["provenance"].get("notes")
    assert streamed.verify() == []


@pytest.mark.parametrize("dict_obs", [False, True])
def test_convert_d3rlpy_written_by_ildata_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dict_obs: bool) -> None:
    """A dump ildata wrote (padding steps, stored final observations of terminated episodes,
    seeds): episodes read a group at a time give the store of the whole read."""
    flags = [(True, False), (False, True), (True, True), (False, False)] * 5
    store = ildata.save(make_episodes(LENGTHS * 2, dict_obs=dict_obs, flags=flags, seeds=True), tmp_path / "store")
    ildata.convert(store.path, tmp_path / "dump.h5", to="d3rlpy")
    _assert_chunked_equals_whole(tmp_path / "dump.h5", tmp_path, monkeypatch, 300)


def test_convert_d3rlpy_written_by_d3rlpy_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dump d3rlpy's own writer made (tuple observations, discrete (N, 1) actions, time-outs,
    terminals, one-row time-outs that are dropped): chunked and whole reads give the same store
    and notes."""
    from d3rlpy.dataset import Episode as D3Episode
    from d3rlpy.dataset.io import dump

    rng = np.random.default_rng(3)
    sizes = (7, 1, 12, 5, 9, 1, 1, 11, 6, 8, 2, 14, 4, 10, 3, 13, 7)
    episodes = [
        D3Episode(
            [rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 2))],
            rng.integers(0, 4, (n, 1)),
            rng.normal(size=(n, 1)).astype(np.float32),
            i % 3 == 0,
        )
        for i, n in enumerate(sizes)
    ]
    path = tmp_path / "theirs.h5"
    with open(path, "w+b") as f:
        dump(episodes, f)
    assert any("2 time-out episode(s) of a single step dropped" in note for note in read_source(path).notes)
    _assert_chunked_equals_whole(path, tmp_path, monkeypatch, 200)


def _write_n1_npz(path: Path, *, compressed: bool = True) -> Path:
    """An N1 npz as imitation v0.3's `types.save` writes it (numpy's own savez), with infos that
    carry something in a few late steps only and `TimeLimit.truncated` on some last steps."""
    lengths = np.array(LENGTHS * 3)
    steps = int(lengths.sum())
    rng = np.random.default_rng(4)
    infos = np.empty(steps, dtype=object)
    infos[:] = [{} for _ in range(steps)]
    ends = np.cumsum(lengths) - 1
    for i in ends[::3]:
        infos[i] = {"TimeLimit.truncated": True}
    infos[steps - 5] = {"x": 1.5}
    (np.savez_compressed if compressed else np.savez)(
        path,
        obs=rng.normal(size=(steps + len(lengths), 3)).astype(np.float32),
        acts=rng.integers(0, 3, steps),
        infos=infos,
        terminal=np.ones(len(lengths), dtype=bool),
        indices=np.cumsum(lengths[:-1]),
        rews=rng.normal(size=steps),
    )
    return path


@pytest.mark.parametrize("source", ["compressed", "stored", "n1-cartpole-v1-final.npz", "n1-pendulum-v1-final.npz"])
def test_convert_npz_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """imitation npz members inflated as streams, a group of trajectories at a time: the store
    equals the whole read's (infos kept in every chunk since some step carries one; the note on
    unknown terminations counts all trajectories)."""
    if source.endswith(".npz"):
        _assert_chunked_equals_whole(LEGACY / source, tmp_path, monkeypatch, 40_000, 200_000)
        return
    src = _write_n1_npz(tmp_path / "demos.npz", compressed=source == "compressed")
    _assert_chunked_equals_whole(src, tmp_path, monkeypatch, 300)
    assert ildata.load(tmp_path / "streamed").to_batch().infos is not None


def test_npz_corrupted_in_a_later_chunk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flipped byte near the end of `obs` is found by the member's CRC once its last chunk is
    read: one DataError line, and nothing at the destination."""
    src = _write_n1_npz(tmp_path / "demos.npz", compressed=False)
    data = bytearray(src.read_bytes())
    data[data.index(b"acts.npy") - 200] ^= 0xFF  # inside obs' data, near its end
    src.write_bytes(bytes(data))
    monkeypatch.setattr(formats, "CHUNK_BYTES", 300)
    with pytest.raises(DataError, match="obs.npy: size or CRC mismatch"):
        ildata.convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(_write_n1_npz(tmp_path / "again.npz").read_bytes()[:-3000])
    with pytest.raises(DataError, match="npz"):
        ildata.convert(truncated, tmp_path / "out")
    assert not (tmp_path / "out").exists()
