"""The store round-trips every shape and dtype exactly, and its views behave like the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ildata
from ildata.episode import DataError, Episode, flatten_obs

DTYPES = [np.uint8, np.float16, np.float32, np.float64, np.int64]


def _array(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), size=shape, endpoint=True).astype(dtype)


@st.composite
def episodes_strategy(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_episodes = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 6), min_size=n_episodes, max_size=n_episodes))
    obs_dtype = draw(st.sampled_from(DTYPES))
    obs_shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    dict_obs = draw(st.booleans())
    discrete = draw(st.booleans())
    act_dtype = np.int64 if discrete else draw(st.sampled_from([np.float32, np.float64]))
    act_shape = () if discrete else tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    with_rews = draw(st.booleans())
    with_infos = draw(st.booleans())
    episodes = []
    for i, n in enumerate(lengths):
        if dict_obs:
            obs = {
                "pos": _array(rng, (n + 1, *obs_shape), obs_dtype),
                "img": _array(rng, (n + 1, 2, 3), np.uint8),
            }
        else:
            obs = _array(rng, (n + 1, *obs_shape), obs_dtype)
        acts = rng.integers(0, 5, n) if discrete else _array(rng, (n, *act_shape), act_dtype)
        episodes.append(
            Episode(
                obs=obs,
                acts=acts,
                rews=_array(rng, (n,), np.float32) if with_rews else None,
                terminated=bool(i % 2),
                truncated=not bool(i % 2),
                infos=[{"step": t, "name": f"e{i}"} for t in range(n)] if with_infos else None,
                seed=i * 7 if i % 3 else None,
            )
        )
    return episodes


def _assert_obs_equal(actual, expected) -> None:
    flat_a, flat_e = flatten_obs(actual), flatten_obs(expected)
    assert flat_a.keys() == flat_e.keys()
    for key in flat_e:
        assert flat_a[key].dtype == flat_e[key].dtype, key
        np.testing.assert_array_equal(flat_a[key], flat_e[key])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(episodes=episodes_strategy())
def test_round_trip_is_exact(tmp_path_factory, episodes):
    path = tmp_path_factory.mktemp("rt") / "ds"
    ds = ildata.save(episodes, path)
    again = ildata.load(path)
    assert len(again) == len(episodes)
    assert again.num_transitions == sum(len(e) for e in episodes)
    for got, want in zip(again, episodes):
        _assert_obs_equal(got.obs, want.obs)
        assert got.acts.dtype == want.acts.dtype
        np.testing.assert_array_equal(got.acts, want.acts)
        if want.rews is None:
            assert got.rews is None
        else:
            assert got.rews.dtype == want.rews.dtype
            np.testing.assert_array_equal(got.rews, want.rews)
        assert (got.terminated, got.truncated, got.seed) == (want.terminated, want.truncated, want.seed)
        assert got.infos == want.infos
    # transitions: obs[t] -> next_obs[t] are consecutive observations of the same episode
    tr = again.transitions()
    start = 0
    for i, ep in enumerate(episodes):
        rows = slice(start, start + len(ep))
        for key, values in flatten_obs(ep.obs).items():
            np.testing.assert_array_equal(flatten_obs(tr.obs)[key][rows], values[:-1])
            np.testing.assert_array_equal(flatten_obs(tr.next_obs)[key][rows], values[1:])
        assert tr.dones[rows].tolist() == [False] * (len(ep) - 1) + [True]
        assert tr.terminated[rows][-1] == ep.terminated
        assert (tr.episode_index[rows] == i).all()
        start += len(ep)
    # the batch view rebuilds every episode's observations including the final one
    batch = again.to_batch()
    _assert_obs_equal(
        batch.obs,
        {k: np.concatenate([flatten_obs(e.obs)[k] for e in episodes]) for k in flatten_obs(episodes[0].obs)}
        if isinstance(episodes[0].obs, dict)
        else np.concatenate([e.obs for e in episodes]),
    )
    assert ds.fingerprint == again.fingerprint


def _cartpole_like(n_episodes: int = 6, seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_episodes):
        n = 5 + 3 * i
        out.append(
            Episode(
                obs=rng.standard_normal((n + 1, 4)).astype(np.float32),
                acts=rng.integers(0, 2, n),
                rews=np.ones(n, np.float32),
                terminated=i % 2 == 0,
                truncated=i % 2 == 1,
            )
        )
    return out


def test_transitions_are_zero_copy_views_of_the_files(tmp_path):
    ds = ildata.save(_cartpole_like(), tmp_path / "ds")
    tr = ildata.load(tmp_path / "ds").transitions()
    for array in (tr.obs, tr.next_obs, tr.acts, tr.rews, tr.episode_index):
        assert not array.flags.owndata and not array.flags.writeable  # a read-only view of the mapped file
    assert tr.obs.dtype == np.float32 and tr.acts.dtype == np.int64
    assert len(tr) == ds.num_transitions


def test_subsets_select_filter_split(tmp_path):
    episodes = _cartpole_like()
    ds = ildata.save(episodes, tmp_path / "ds")
    sub = ds.select([4, 1])
    assert len(sub) == 2 and sub.num_transitions == len(episodes[4]) + len(episodes[1])
    np.testing.assert_array_equal(sub[0].obs, episodes[4].obs)
    tr = sub.transitions()
    np.testing.assert_array_equal(tr.acts, np.concatenate([episodes[4].acts, episodes[1].acts]))
    np.testing.assert_array_equal(tr.next_obs[: len(episodes[4])], episodes[4].obs[1:])
    assert tr.dones.sum() == 2
    contiguous = ds.select([1, 2, 3]).transitions()
    assert not contiguous.obs.flags.owndata  # contiguous episodes stay views

    long_ones = ds.filter(min_return=11)
    assert [len(e) for e in long_ones] == [len(e) for e in episodes if len(e) >= 11]
    assert len(ds.filter(terminated=True)) == 3

    train, test = ds.split(0.5, seed=3)
    assert len(train) == 3 and len(test) == 3
    assert sorted(train._ids.tolist() + test._ids.tolist()) == list(range(6))
    assert ds.split(0.5, seed=3)[0]._ids.tolist() == train._ids.tolist()

    saved = train.save(tmp_path / "train")
    assert len(saved) == 3
    np.testing.assert_array_equal(saved[0].obs, episodes[train._ids[0]].obs)
    assert saved.info["provenance"]["source_fingerprint"] == ds.fingerprint


def test_stats_have_rollout_stats_keys(tmp_path):
    episodes = _cartpole_like()
    ds = ildata.save(episodes, tmp_path / "ds")
    stats = ds.stats()
    returns = np.array([e.rews.sum() for e in episodes])
    for key in ("n_traj", "return_min", "return_mean", "return_std", "return_max", "len_min", "len_mean", "len_std", "len_max"):
        assert key in stats
    assert stats["n_traj"] == 6
    assert stats["return_mean"] == pytest.approx(returns.mean())
    assert stats["return_std"] == pytest.approx(returns.std())
    obs = np.concatenate([e.obs[:-1] for e in episodes])
    assert stats["features"]["obs"]["mean"] == pytest.approx(obs.mean(axis=0), rel=1e-5)
    assert stats["features"]["obs"]["max"] == pytest.approx(obs.max(axis=0))
    sub_stats = ds.select([0, 1]).stats()
    assert sub_stats["n_traj"] == 2
    assert sub_stats["features"]["obs"]["min"] == pytest.approx(np.concatenate([episodes[0].obs[:-1], episodes[1].obs[:-1]]).min(axis=0))


def test_layout_is_readable_by_plain_tools(tmp_path):
    import polars as pl

    ds = ildata.save(_cartpole_like(), tmp_path / "ds", env_id="CartPole-v1")
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["format_version"] == 1 and info["env_id"] == "CartPole-v1"
    assert info["features"]["obs"] == {"dtype": "float32", "shape": [4]}
    shard = tmp_path / "ds" / info["data_files"][0]
    table = pa.ipc.open_file(pa.memory_map(str(shard))).read_all()
    assert table.schema.field("obs").type == pa.list_(pa.float32(), 4)
    frame = pl.read_ipc(shard)
    assert frame.height == ds.num_transitions
    assert frame.group_by("episode_index").len().sort("episode_index")["len"].to_list() == ds.lengths.tolist()
    episodes = pq.read_table(tmp_path / "ds/meta/episodes.parquet")
    assert episodes.column("length").to_pylist() == ds.lengths.tolist()

    import datasets

    hf = datasets.load_dataset("arrow", data_files=str(shard), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert len(hf) == ds.num_transitions
    np.testing.assert_allclose(np.array(hf[0]["obs"], dtype=np.float32), ds[0].obs[0])


def test_writes_are_atomic_and_refuse_to_overwrite(tmp_path):
    ildata.save(_cartpole_like(), tmp_path / "ds")
    with pytest.raises(DataError, match="already exists"):
        ildata.save(_cartpole_like(), tmp_path / "ds")
    ildata.save(_cartpole_like(2), tmp_path / "ds", overwrite=True)
    assert len(ildata.load(tmp_path / "ds")) == 2
    bad = [Episode(obs=np.zeros((3, 2)), acts=np.zeros(5, np.int64))]
    with pytest.raises(DataError, match="observations"):
        ildata.save(bad, tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing half-written


def test_load_rejects_what_is_not_a_store(tmp_path):
    with pytest.raises(DataError, match="not an ildata dataset"):
        ildata.load(tmp_path)
    ds = ildata.save(_cartpole_like(), tmp_path / "ds")
    shard = Path(ds.path) / ds.info["data_files"][0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupted"):
        ildata.load(tmp_path / "ds")


def test_spaces_from_env_are_recorded(tmp_path):
    import gymnasium as gym

    episodes = _cartpole_like()
    env = gym.make("CartPole-v1")
    ds = ildata.save(
        episodes, tmp_path / "ds", observation_space=env.observation_space, action_space=env.action_space, env_id="CartPole-v1"
    )
    again = ildata.load(tmp_path / "ds")
    assert again.observation_space == env.observation_space
    assert again.action_space == env.action_space
    assert not again.info["spaces_inferred"]
    assert ds.info["spaces_inferred"] is False


def test_parquet_shards_load_everywhere(tmp_path):
    """`--to parquet` stores: same API and content, and `datasets.load_dataset("parquet")` reads them."""
    import datasets

    episodes = _cartpole_like()
    arrow = ildata.save(episodes, tmp_path / "arrow")
    parquet = ildata.save(episodes, tmp_path / "parquet", data_format="parquet")
    assert parquet.info["data_files"] == ["data/shard-00000.parquet"]
    again = ildata.load(tmp_path / "parquet")
    for got, want in zip(again, episodes):
        np.testing.assert_array_equal(got.obs, want.obs)
        assert got.obs.dtype == want.obs.dtype
    np.testing.assert_array_equal(again.transitions().next_obs, arrow.transitions().next_obs)
    assert again.fingerprint != arrow.fingerprint  # different files, fingerprint covers them
    hf = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "parquet/data/*.parquet"), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(hf) == parquet.num_transitions
    np.testing.assert_allclose(np.array(hf[0]["obs"], dtype=np.float32), episodes[0].obs[0])


def test_info_json_round_trips_through_the_typed_info(tmp_path):
    """`DatasetInfo` reads and writes meta/info.json without changing a key (extra_info kept)."""
    from ildata.store import DatasetInfo, Provenance

    ds = ildata.save(
        _cartpole_like(2), tmp_path / "ds", provenance=Provenance(source_format="test", extra={"note": 1}), extra_info={"custom": [1, 2]}
    )
    raw = json.loads((tmp_path / "ds/meta/info.json").read_text())
    info = DatasetInfo.from_dict(raw)
    assert info.to_dict() == raw == ds.info
    assert list(info.to_dict()) == list(raw)  # same key order
    assert info.provenance.source_format == "test" and info.provenance.extra == {"note": 1}
    assert info.extra == {"custom": [1, 2]} and ds.meta.totals.transitions == ds.num_transitions
