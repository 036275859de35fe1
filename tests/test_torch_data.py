"""algos.torch_data: torch Datasets over a store's memory-mapped arrays (transitions, windows)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from support import DATASETS, make_episodes

import ildata
from algos.torch_data import TransitionDataset, WindowDataset, make_loader
from ildata.episode import DataError, Episode, Obs

LENGTHS = (4, 6, 3, 5)


def _array(obs: Obs, key: str | None = None) -> np.ndarray:
    value = obs if key is None else obs[key]
    assert isinstance(value, np.ndarray)
    return value


@pytest.fixture
def image_store(tmp_path: Path) -> tuple[ildata.TrajectoryDataset, list[Episode]]:
    episodes = make_episodes(LENGTHS, dict_obs=True)
    return ildata.save(episodes, tmp_path / "images"), episodes


def test_transition_batches_are_the_stored_rows_in_stored_dtypes(image_store):
    ds, episodes = image_store
    data = TransitionDataset(ds, keys=("obs", "next_obs", "acts", "rews", "dones", "terminated", "episode"))
    assert len(data) == sum(LENGTHS)
    tr = ds.transitions()
    index = [17, 0, 3, 4, 3]
    batch = data.__getitems__(index)
    assert batch["obs.img"].dtype == torch.uint8 and batch["obs.img"].shape == (5, 2, 4)  # uint8 stays uint8
    np.testing.assert_array_equal(batch["obs.img"].numpy(), _array(tr.obs, "img")[index])
    np.testing.assert_array_equal(batch["next_obs.pos"].numpy(), _array(tr.next_obs, "pos")[index])
    np.testing.assert_array_equal(batch["acts"].numpy(), tr.acts[index])
    assert batch["rews"].dtype == torch.float32
    assert batch["dones"].tolist() == [True, False, True, False, True]
    assert batch["terminated"].tolist() == [False, False, True, False, True]  # episodes 0, 2 terminate; 3 is truncated
    assert batch["episode"].tolist() == [3, 0, 0, 1, 0]
    one = data[4]
    assert one["acts"].shape == (2,) and one["obs.img"].shape == (2, 4)
    with pytest.raises(IndexError):
        data.__getitems__([sum(LENGTHS)])


def test_transition_dataset_reads_the_mapped_file_of_a_subset(image_store):
    ds, episodes = image_store
    whole = TransitionDataset(ds)
    assert whole._rows is None  # contiguous: not even an index array is made
    column = whole.dataset.column("obs.img")
    assert isinstance(column, np.ndarray) and not column.flags.owndata and not column.flags.writeable  # the mapped file
    assert np.shares_memory(column, _array(ds.transitions().obs, "img"))
    sub = TransitionDataset(ds[[3, 1]], keys=("acts", "dones"))
    assert len(sub) == 11
    batch = sub.__getitems__(list(range(11)))
    np.testing.assert_array_equal(batch["acts"].numpy(), np.concatenate([episodes[3].acts, episodes[1].acts]))
    assert np.flatnonzero(batch["dones"].numpy()).tolist() == [4, 10]
    with pytest.raises(DataError, match="unknown batch key"):
        TransitionDataset(ds, keys=("obs", "actions"))


def test_windows_pad_at_episode_ends_with_masks(image_store):
    ds, episodes = image_store
    data = WindowDataset(ds, 3, keys=("obs", "acts", "rews"))
    assert len(data) == sum(LENGTHS)  # pad: a window starts at every step
    # the window starting at the last step of episode 1 (length 6): one real step, two padded
    start = LENGTHS[0] + 5
    batch = data.__getitems__([start])
    assert batch["mask"].tolist() == [[True, False, False]]
    assert batch["timestep"].tolist() == [[5, 6, 7]] and batch["episode"].tolist() == [1]
    last = episodes[1].acts[5]
    np.testing.assert_array_equal(batch["acts"][0].numpy(), np.stack([last, last, last]))  # padded with the last step
    np.testing.assert_array_equal(batch["obs.img"][0, 0].numpy(), _array(episodes[1].obs, "img")[5])
    # a window inside an episode is exactly its steps
    inside = data.__getitems__([LENGTHS[0] + 1])
    assert inside["mask"].all()
    np.testing.assert_array_equal(inside["rews"][0].numpy(), episodes[1].rews[1:4])
    np.testing.assert_array_equal(inside["obs.pos"][0].numpy(), _array(episodes[1].obs, "pos")[1:4])


def test_windows_without_padding_and_with_stride(image_store):
    ds, _ = image_store
    exact = WindowDataset(ds, 4, pad=False)
    assert len(exact) == 1 + 3 + 0 + 2  # episode of 3 steps gives no window of 4
    assert exact.__getitems__(list(range(len(exact))))["mask"].all()
    strided = WindowDataset(ds, 2, stride=2)
    assert len(strided) == 2 + 3 + 2 + 3
    starts = strided.__getitems__(list(range(len(strided))))["timestep"][:, 0].tolist()
    assert starts == [0, 2, 0, 2, 4, 0, 2, 0, 2, 4]
    with pytest.raises(ValueError):
        WindowDataset(ds, 0)


def test_future_actions_are_chunks_masked_past_the_end(image_store):
    ds, episodes = image_store
    data = WindowDataset(ds, 2, future_actions=3)
    batch = data.__getitems__([LENGTHS[0] + 3])  # episode 1, steps 3 and 4 (length 6)
    assert batch["future_acts"].shape == (1, 2, 3, 2)
    acts = episodes[1].acts
    np.testing.assert_array_equal(batch["future_acts"][0, 0].numpy(), acts[3:6])
    np.testing.assert_array_equal(batch["future_acts"][0, 1].numpy(), np.stack([acts[4], acts[5], acts[5]]))
    assert batch["future_mask"][0].tolist() == [[True, True, True], [True, True, False]]


def test_windows_over_a_concat_of_stores(tmp_path):
    a = ildata.save(make_episodes((3, 2)), tmp_path / "a")
    b_episodes = make_episodes((4,), seed=5)
    b = ildata.save(b_episodes, tmp_path / "b")
    data = WindowDataset(ildata.concat([a, b]), 4, pad=False)
    assert len(data) == 1
    np.testing.assert_array_equal(data[0]["acts"].numpy(), b_episodes[0].acts)


def test_loader_covers_every_item_once_and_pickles_by_reference(image_store):
    ds, _ = image_store
    data = TransitionDataset(ds, keys=("acts", "episode"))
    assert len(pickle.dumps(data)) < 5000  # workers receive paths, not arrays
    copy = pickle.loads(pickle.dumps(data))
    np.testing.assert_array_equal(copy.__getitems__([1, 2])["acts"].numpy(), data.__getitems__([1, 2])["acts"].numpy())
    for workers in (0, 2):
        loader = make_loader(data, batch_size=5, shuffle=True, num_workers=workers, seed=0)
        batches = list(loader)
        assert [len(b["acts"]) for b in batches] == [5, 5, 5, 3]
        episodes = torch.cat([b["episode"] for b in batches])
        assert sorted(episodes.tolist()) == sorted(np.repeat(np.arange(4), LENGTHS).tolist())


def test_shipped_cartpole_windows():
    ds = ildata.load(DATASETS / "cartpole-expert")
    data = WindowDataset(ds, 10, stride=10, keys=("obs", "acts"))
    batch = make_loader(data, batch_size=64, shuffle=False).__iter__().__next__()
    assert batch["obs"].shape == (64, 10, 4) and batch["obs"].dtype == torch.float32
    assert batch["acts"].dtype == torch.int64 and batch["mask"].all()
    np.testing.assert_array_equal(batch["obs"][1].numpy(), _array(ds[0].obs)[10:20])
