"""The everyday dataset API: indexing and slicing, reprs, filter/split, concat and `ildata merge`,
and that subsets and merges keep env id, collection info and provenance."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from support import DATASETS, make_episodes, run_cli

import ildata
from ildata.episode import DataError, Obs
from ildata.store import CONCAT_FORMAT, StoredColumn, layout

COLLECTION = {"env_id": "Toy-v0", "episodes": 6, "expert_mean_return": 10.0, "random_mean_return": 1.0, "random_episodes": 4}


def _store(
    path: Path, *, lengths: tuple[int, ...] = (4, 6, 3, 5, 2, 7), seed: int = 0, collection: dict[str, Any] | None = None, **kwargs: Any
) -> ildata.TrajectoryDataset:
    collection = {**COLLECTION, **(collection or {})}
    return ildata.save(
        make_episodes(lengths, seed=seed, seeds=True, **kwargs),
        path,
        env_id="Toy-v0",
        extra_info={"collection": collection},
    )


def _array(obs: Obs) -> np.ndarray:
    assert isinstance(obs, np.ndarray)
    return obs


def test_indexing_slices_and_lists_give_subsets_sharing_the_mapped_data(tmp_path):
    ds = _store(tmp_path / "ds")
    episodes = make_episodes((4, 6, 3, 5, 2, 7), seeds=True)
    assert len(ds[2:5]) == 3 and ds[2:5].episode_ids.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(ds[-1].acts, episodes[-1].acts)
    sub = ds[[0, 3]]
    assert isinstance(sub, ildata.TrajectoryDataset) and sub.lengths.tolist() == [4, 5]
    np.testing.assert_array_equal(sub[1].obs, episodes[3].obs)
    assert ds[np.array([5, 1])].lengths.tolist() == [7, 6]
    assert ds[ds.lengths > 4].lengths.tolist() == [6, 5, 7]  # a boolean mask
    assert ds[::2].episode_ids.tolist() == [0, 2, 4] and len(ds[10:]) == 0
    whole = ds.column("acts")
    assert np.shares_memory(ds[1:3].transitions().acts, whole)  # contiguous episodes: views of the file
    with pytest.raises(IndexError):
        ds[[6]]
    with pytest.raises(IndexError):
        ds[-7]


def test_transitions_index_and_slice_into_transitions(tmp_path):
    ds = _store(tmp_path / "ds", dict_obs=True)
    tr = ds.transitions()
    assert len(tr) == ds.num_transitions == 27
    head = tr[2:6]
    assert isinstance(head, ildata.Transitions) and len(head) == 4
    assert np.shares_memory(head.obs["img"], ds.column("obs.img"))  # a slice stays a view
    np.testing.assert_array_equal(head.acts, tr.acts[2:6])
    picked = tr[[0, 26, 3]]
    np.testing.assert_array_equal(picked.next_obs["pos"], _array(tr.next_obs["pos"])[[0, 26, 3]])
    assert picked.dones.tolist() == [False, True, True] and picked.episode_index.tolist() == [0, 5, 0]
    assert len(tr[-1]) == 1 and tr[-1].dones.tolist() == [True]
    assert len(tr[tr.dones]) == 6  # a boolean mask
    with pytest.raises(IndexError):
        tr[27]


def test_reprs_are_short(tmp_path):
    ds = _store(tmp_path / "ds")
    text = repr(ds)
    assert len(text.splitlines()) <= 4 and "6 episodes" in text and "Toy-v0" in text and "obs: float32[3]" in text
    assert "subset of 6" in repr(ds[1:3])
    tr_text = repr(ds.transitions()[:5])
    assert tr_text == "Transitions(5 from 2 episodes, obs=float32(5, 3), acts=float32(5, 2), rews=float32(5,))"


def test_filter_by_polars_expression_or_predicate(tmp_path):
    ds = _store(tmp_path / "ds")
    assert ds.filter(pl.col("length") >= 5).lengths.tolist() == [6, 5, 7]
    assert ds.filter(pl.col("terminated") & (pl.col("seed") > 0)).episode_ids.tolist() == [2, 4]
    assert ds.filter(lambda row: row["length"] % 2 == 0).lengths.tolist() == [4, 6, 2]
    returns = ds.returns
    assert returns is not None
    best = ds.filter(pl.col("return") > float(np.median(returns)), max_length=6)  # with keyword filters
    assert all(r > np.median(returns) for r in best.returns) and best.lengths.max() <= 6  # type: ignore[union-attr]
    assert ds[3:].filter(pl.col("length") < 6).episode_ids.tolist() == [3, 4]  # over a subset
    with pytest.raises(DataError, match="boolean"):
        ds.filter(pl.col("length"))
    with pytest.raises(DataError, match="nope"):
        ds.filter(pl.col("nope") > 1)


def test_split_multi_way_and_two_way(tmp_path):
    ds = _store(tmp_path / "ds", lengths=tuple(range(2, 22)))
    parts = ds.split([0.8, 0.1, 0.1], seed=0)
    assert [len(p) for p in parts] == [16, 2, 2]
    ids = np.concatenate([p.episode_ids for p in parts])
    assert sorted(ids.tolist()) == list(range(20))
    assert all(np.all(np.diff(p.episode_ids) > 0) for p in parts)  # order kept inside each part
    assert [p.episode_ids.tolist() for p in ds.split([0.8, 0.1, 0.1], seed=0)] == [p.episode_ids.tolist() for p in parts]
    train, test = ds.split(0.9, seed=0)
    assert len(train) == 18 and len(test) == 2
    with pytest.raises(ValueError):
        ds.split([0.5, 0.2])
    with pytest.raises(ValueError):
        ds.split(1.0)


def test_split_save_keeps_env_collection_and_points_at_the_parent(tmp_path):
    ds = _store(tmp_path / "ds")
    train, _ = ds.split(0.5, seed=1)
    saved = train.save(tmp_path / "train")
    assert saved.env_id == "Toy-v0"
    assert saved.collection == COLLECTION
    provenance = saved.info["provenance"]
    assert provenance["source_fingerprint"] == ds.fingerprint
    assert provenance["source_path"] == str(tmp_path / "ds")
    (parent,) = provenance["parents"]
    assert parent["fingerprint"] == ds.fingerprint and parent["path"] == str((tmp_path / "ds").absolute())
    taken = [i for start, stop in parent["episodes"] for i in range(start, stop)]
    assert taken == train.episode_ids.tolist()
    assert parent["provenance"]["source_format"] == "python"
    assert saved.verify() == []
    # and once more: a subset of the subset still knows the collection
    again = saved[:1].save(tmp_path / "again")
    assert again.collection == COLLECTION and again.info["provenance"]["parents"][0]["fingerprint"] == saved.fingerprint


def test_concat_is_zero_copy_over_the_parts(tmp_path):
    a = _store(tmp_path / "a", lengths=(3, 4))
    b = _store(tmp_path / "b", lengths=(5, 2, 6), seed=1)
    both = ildata.concat([a, b[[2, 0]]])
    assert len(both) == 4 and both.lengths.tolist() == [3, 4, 6, 5]
    for i, episode in enumerate([a[0], a[1], b[2], b[0]]):
        got = both[i]
        np.testing.assert_array_equal(got.obs, episode.obs)
        np.testing.assert_array_equal(got.acts, episode.acts)
    assert np.shares_memory(both[0].acts, a.column("acts"))  # an episode is a view of its part's file
    assert np.shares_memory(both[3].acts, b.column("acts"))
    acts = both.column("acts")
    assert isinstance(acts, StoredColumn) and np.shares_memory(acts.chunks[1], b.column("acts"))
    tr = both.transitions()
    np.testing.assert_array_equal(tr.acts, np.concatenate([a.transitions().acts, b[2].acts, b[0].acts]))
    assert tr.episode_index.tolist() == [0] * 3 + [1] * 4 + [4] * 6 + [2] * 5
    assert both.verify() == []
    assert both.env_id == "Toy-v0" and both.collection == COLLECTION
    assert both.info["provenance"]["source_format"] == CONCAT_FORMAT
    # picklable by reference (DataLoader workers): small, and the same episodes after loading
    blob = pickle.dumps(both)
    assert len(blob) < 2000
    np.testing.assert_array_equal(pickle.loads(blob).transitions().obs, tr.obs)


def test_multi_shard_store_reads_through_stored_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "SHARD_BYTES", 200)
    ds = _store(tmp_path / "ds")
    assert len(ds.meta.data_files) > 1
    column = ds.column("obs")
    assert isinstance(column, StoredColumn)
    episodes = make_episodes((4, 6, 3, 5, 2, 7), seeds=True)
    np.testing.assert_array_equal(ds.transitions().obs, np.concatenate([_array(e.obs)[:-1] for e in episodes]))
    acts = ds.column("acts")
    assert isinstance(acts, StoredColumn)
    assert any(np.shares_memory(ds[2].acts, chunk) for chunk in acts.chunks)  # an episode inside one shard: a view
    np.testing.assert_array_equal(column[[26, 0, 5]], _array(ds.transitions().obs)[[26, 0, 5]])


def test_concat_refuses_different_spaces_naming_the_part(tmp_path):
    a = _store(tmp_path / "a")
    b = _store(tmp_path / "b", obs_dim=5)
    with pytest.raises(DataError, match=r"part 2 \(.*b\): its features \(obs float32\[5\]"):  # inferred spaces
        ildata.concat([a, b])
    cartpole, pendulum = ildata.load(DATASETS / "cartpole-expert"), ildata.load(DATASETS / "pendulum-expert")
    with pytest.raises(DataError, match=r"part 2 \(.*pendulum-expert\): its observation space Box"):
        ildata.concat([cartpole, pendulum])
    c = ildata.save(make_episodes(rewards=False), tmp_path / "c", env_id="Toy-v0")
    with pytest.raises(DataError, match="part 2.*no rewards"):
        ildata.concat([a, c])
    with pytest.raises(DataError, match="at least one"):
        ildata.concat([])


def test_concat_pools_collections_of_one_env_and_drops_unknown_ones(tmp_path):
    a = _store(tmp_path / "a", collection={"expert_mean_return": 10.0, "episodes": 6})
    b = _store(tmp_path / "b", collection={"expert_mean_return": 20.0, "episodes": 2})
    merged = ildata.concat([a, b]).collection
    assert merged is not None and merged["expert_mean_return"] == pytest.approx(12.5)
    assert merged["random_mean_return"] == 1.0 and len(merged["parts"]) == 2
    plain = ildata.save(make_episodes((4, 6, 3, 5, 2, 7)), tmp_path / "plain", env_id="Toy-v0")
    assert ildata.concat([a, plain]).collection is None


def test_merge_cli_writes_a_store_with_every_part_recorded(tmp_path):
    a = _store(tmp_path / "a", lengths=(3, 4))
    b = _store(tmp_path / "b", lengths=(5,), seed=2)
    done = run_cli("merge", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "ab"))
    assert done.returncode == 0, done.stderr
    assert "merged 2 datasets" in done.stdout
    merged = ildata.load(tmp_path / "ab", verify=True)
    assert merged.lengths.tolist() == [3, 4, 5] and merged.env_id == "Toy-v0"
    assert merged.collection == COLLECTION
    info = json.loads((tmp_path / "ab" / "meta" / "info.json").read_text())
    parents = info["provenance"]["parents"]
    assert [p["fingerprint"] for p in parents] == [a.fingerprint, b.fingerprint]
    assert [p["path"] for p in parents] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert info["provenance"]["source_format"] == CONCAT_FORMAT

    again = run_cli("merge", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "ab"))
    assert again.returncode == 2 and "already exists" in again.stderr
    _store(tmp_path / "wide", obs_dim=7)
    refused = run_cli("merge", str(tmp_path / "a"), str(tmp_path / "wide"), str(tmp_path / "bad"))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "part 2" in refused.stderr and "wide" in refused.stderr and not (tmp_path / "bad").exists()
    missing = run_cli("merge", str(tmp_path / "a"), str(tmp_path / "nope"), str(tmp_path / "bad"))
    assert missing.returncode == 2 and "nope" in missing.stderr
    alone = run_cli("merge", str(tmp_path / "a"), str(tmp_path / "bad"))
    assert alone.returncode == 2 and "at least two" in alone.stderr


def test_shipped_expert_subset_keeps_its_reference_returns(tmp_path):
    expert = ildata.load(DATASETS / "cartpole-expert")
    reference = expert.collection
    assert reference is not None and "expert_mean_return" in reference
    best = expert.filter(pl.col("return") >= 500)[:5].save(tmp_path / "best")
    assert best.collection == reference and best.env_id == expert.env_id
    assert best.info["provenance"]["parents"][0]["fingerprint"] == expert.fingerprint


def test_episode_repr_is_one_line_and_load_of_a_missing_path_says_so(tmp_path: Path) -> None:
    episode = ildata.load(DATASETS / "cartpole-expert")[0]
    assert repr(episode) == "Episode(length=500, return=500, truncated, seed=0, obs=float32(501, 4), acts=int64(500,))"
    with pytest.raises(DataError, match="no such file or directory") as error:
        ildata.load(tmp_path / "nope")
    assert error.value.subject == tmp_path / "nope"


def test_store_to_store_convert_keeps_collection_env_and_parent(tmp_path: Path) -> None:
    """A converted store still knows its expert and random returns (so training on it prints a
    normalised score) and which store it came from."""
    parent = ildata.load(DATASETS / "cartpole-expert")
    out = ildata.convert(parent.path, tmp_path / "fixed", fixed_horizon="truncate")
    assert out.info["collection"] == parent.info["collection"] and out.env_id == parent.env_id
    provenance = out.info["provenance"]
    assert provenance["source_fingerprint"] == parent.fingerprint
    assert provenance["parents"][0]["fingerprint"] == parent.fingerprint
