"""d3rlpy interoperability: h5 dumps ildata writes are loaded by d3rlpy's own
`ReplayBuffer.load` with every transition aligned, read back by ildata exactly; dumps d3rlpy
writes are imported with what d3rlpy itself samples; the in-memory adapter trains d3rlpy's BC."""

from __future__ import annotations

from pathlib import Path

import d3rlpy
import gymnasium as gym
import h5py
import numpy as np
import pytest
from d3rlpy.dataset import BasicTransitionPicker, InfiniteBuffer, MDPDataset, ReplayBuffer
from support import (
    assert_same_batch,
    make_episodes,
)

import ildata
from algos.d3rlpy_adapter import to_mdp_dataset
from ildata.episode import DataError, Episode, flatten_obs
from ildata.formats import d3rlpy_h5, read_source

# (length, terminated, truncated): every combination gymnasium allows.
EPISODES = [(4, True, False), (6, False, True), (3, True, True), (5, False, False), (1, False, True), (1, True, False)]


def _episodes(dict_obs: bool, discrete: bool, rewards: bool = True) -> list[Episode]:
    """float64 observations (kept as float64) or a Dict of float32 and uint8 images."""
    lengths = [length for length, _, _ in EPISODES]
    flags = [(terminated, truncated) for _, terminated, truncated in EPISODES]
    return make_episodes(
        lengths,
        obs_dim=5,
        obs_dtype=np.float64,
        dict_obs=dict_obs,
        act_dim=None if discrete else 2,
        rewards=rewards,
        flags=flags,
        seeds=True,
    )


def _assert_aligned(buffer: ReplayBuffer, ds: ildata.TrajectoryDataset) -> None:
    """d3rlpy's own transition picker yields exactly ildata's transitions, in order."""
    tr = ds.transitions()
    obs, next_obs = flatten_obs(tr.obs), flatten_obs(tr.next_obs)
    keys = list(obs)
    picker = BasicTransitionPicker()
    row = 0
    assert buffer.transition_count == ds.num_transitions
    for episode in buffer.episodes:
        for index in range(episode.transition_count):
            t = picker(episode, index)
            o = t.observation if isinstance(t.observation, list) else [t.observation]
            no = t.next_observation if isinstance(t.next_observation, list) else [t.next_observation]
            for j, key in enumerate(keys):
                np.testing.assert_array_equal(o[j], obs[key][row])
                if not t.terminal:  # d3rlpy puts zeros after a terminal; nothing to compare
                    np.testing.assert_array_equal(no[j], next_obs[key][row])
            np.testing.assert_array_equal(np.reshape(t.action, -1), np.reshape(tr.acts[row], -1))
            if tr.rews is not None:
                assert t.reward[0] == tr.rews[row]
            assert t.terminal == float(tr.terminated[row])
            row += 1
    assert row == ds.num_transitions


@pytest.mark.parametrize("dict_obs,discrete", [(True, True), (False, False)])
def test_dump_round_trip_and_d3rlpy_reads_it(tmp_path: Path, dict_obs: bool, discrete: bool) -> None:
    ds = ildata.save(_episodes(dict_obs, discrete), tmp_path / "store", env_id="CartPole-v1")
    dump = tmp_path / "data.h5"
    notes = d3rlpy_h5.write(ds, dump)
    assert any("both terminated and truncated" in n for n in notes)
    assert d3rlpy_h5.sniff(dump)

    with open(dump, "rb") as f:
        buffer = ReplayBuffer.load(f, InfiniteBuffer())
    assert len(buffer.episodes) == len(EPISODES)
    # terminal only for real terminations (terminal wins over truncation), never both flags
    assert [bool(e.terminated) for e in buffer.episodes] == [t for _, t, _ in EPISODES]
    _assert_aligned(buffer, ds)

    back = read_source(dump)
    assert back.format == "d3rlpy-h5"
    assert_same_batch(ds.to_batch(), back.batch, infos=False)
    assert back.observation_space == ds.observation_space and back.action_space == ds.action_space
    assert back.env_id == "CartPole-v1"


def test_dataset_without_rewards_round_trips(tmp_path: Path) -> None:
    ds = ildata.save(_episodes(False, True, rewards=False), tmp_path / "store")
    dump = tmp_path / "data.h5"
    assert any("no rewards" in n for n in d3rlpy_h5.write(ds, dump))
    assert_same_batch(ds.to_batch(), read_source(dump).batch, infos=False)


def test_adapter_builds_aligned_mdp_dataset_and_trains_bc(tmp_path: Path) -> None:
    ds = ildata.save(_episodes(False, True), tmp_path / "store")
    mdp = to_mdp_dataset(ds)
    assert isinstance(mdp, MDPDataset)
    assert mdp.dataset_info.action_size == 3
    _assert_aligned(mdp, ds)
    bc = d3rlpy.algos.DiscreteBCConfig(batch_size=8).create(device="cpu:0")
    bc.fit(mdp, n_steps=20, n_steps_per_epoch=20, logger_adapter=d3rlpy.logging.NoopAdapterFactory(), show_progress=False)
    actions = bc.predict(flatten_obs(ds.transitions().obs)[""][:4].astype(np.float32))
    assert actions.shape == (4,) and set(actions.tolist()) <= {0, 1, 2}


def test_adapter_rejects_unusable_action_space(tmp_path: Path) -> None:
    episodes = [Episode(obs=np.zeros((3, 2), np.float32), acts=np.array([1, 2]), rews=np.zeros(2), terminated=True)]
    ds = ildata.save(episodes, tmp_path / "store", action_space=gym.spaces.Discrete(2, start=1))
    with pytest.raises(DataError, match="numbered from 0"):
        to_mdp_dataset(ds)


def test_import_dump_written_by_d3rlpy(tmp_path: Path) -> None:
    """A foreign dump: time-outs lose their unsampled last step, terminals get a zero final
    observation, (N, 1) discrete actions become scalars; transitions equal d3rlpy's own."""
    rng = np.random.default_rng(5)
    n = 12
    observations = [rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 2))]
    actions = rng.integers(0, 4, n)
    rewards = rng.normal(size=n).astype(np.float32)
    terminals = np.zeros(n, np.float32)
    timeouts = np.zeros(n, np.float32)
    terminals[3] = 1  # episode of 4 steps, terminated
    timeouts[8] = 1  # episode of 5 rows: 4 usable steps, time-out
    timeouts[9] = 1  # a one-row time-out episode: d3rlpy itself keeps no transition of it
    terminals[11] = 1  # terminated, 2 steps
    mdp = MDPDataset(observations, actions, rewards, terminals, timeouts)
    dump = tmp_path / "theirs.h5"
    with open(dump, "w+b") as f:
        mdp.dump(f)

    source = read_source(dump)
    batch = source.batch
    assert source.format == "d3rlpy-h5" and source.observation_space is None
    np.testing.assert_array_equal(batch.lengths, [4, 4, 2])
    np.testing.assert_array_equal(batch.terminated, [True, False, True])
    np.testing.assert_array_equal(batch.truncated, [False, True, False])
    assert batch.acts.ndim == 1 and batch.acts.dtype == actions.dtype
    np.testing.assert_array_equal(batch.acts, np.concatenate([actions[0:4], actions[4:8], actions[10:12]]))
    np.testing.assert_array_equal(batch.rews, np.concatenate([rewards[0:4], rewards[4:8], rewards[10:12]]))
    # observations: terminated episodes get a zero final row; the time-out keeps all 5 rows
    first = batch.obs["0"]
    np.testing.assert_array_equal(first[0:4], observations[0][0:4])
    np.testing.assert_array_equal(first[4], 0)
    np.testing.assert_array_equal(first[5:10], observations[0][4:9])
    np.testing.assert_array_equal(first[10:12], observations[0][10:12])
    assert batch.obs["1"].dtype == np.float64
    assert any("time-out" in n for n in source.notes) and any("zeros" in n for n in source.notes)

    ds = ildata.save(batch, tmp_path / "store")
    with open(dump, "rb") as f:
        _assert_aligned_ignoring_empty(ReplayBuffer.load(f, InfiniteBuffer()), ds)


def _assert_aligned_ignoring_empty(buffer: ReplayBuffer, ds: ildata.TrajectoryDataset) -> None:
    buffer = ReplayBuffer(InfiniteBuffer(), episodes=[e for e in buffer.episodes if e.transition_count > 0])
    _assert_aligned(buffer, ds)


def test_single_row_time_out_episode_is_dropped_with_a_note(tmp_path: Path) -> None:
    from d3rlpy.dataset import Episode as D3Episode
    from d3rlpy.dataset.io import dump

    rng = np.random.default_rng(6)
    episodes = [
        D3Episode(rng.normal(size=(3, 2)), rng.normal(size=(3, 1)), np.ones((3, 1), np.float32), False),
        D3Episode(rng.normal(size=(1, 2)), rng.normal(size=(1, 1)), np.ones((1, 1), np.float32), False),
    ]
    path = tmp_path / "d.h5"
    with open(path, "w+b") as f:
        dump(episodes, f)
    source = read_source(path)
    np.testing.assert_array_equal(source.batch.lengths, [2])
    assert source.batch.acts.shape == (2, 1)  # float (N, 1) actions stay continuous vectors
    assert any("single step dropped" in n for n in source.notes)


def test_bad_dumps(tmp_path: Path) -> None:
    not_d3 = tmp_path / "other.h5"
    with h5py.File(not_d3, "w") as h5:
        h5.create_dataset("observations", data=np.zeros((3, 2)))
    assert not d3rlpy_h5.sniff(not_d3)

    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as h5:
        h5.create_dataset("columns", data=["observations", "actions", "rewards", "terminated"])
        h5.create_dataset("num_episodes", data=1)
        h5.create_dataset("version", data="2.1")
        h5.create_dataset("observations_0", data=np.zeros((3, 2)))
        h5.create_dataset("actions_0", data=np.zeros((2, 1)))
        h5.create_dataset("rewards_0", data=np.zeros((3, 1)))
        h5.create_dataset("terminated_0", data=True)
    with pytest.raises(DataError, match="different lengths"):
        read_source(broken)

    truncated_file = tmp_path / "cut.h5"
    ds = ildata.save(_episodes(False, True), tmp_path / "store")
    d3rlpy_h5.write(ds, tmp_path / "full.h5")
    truncated_file.write_bytes((tmp_path / "full.h5").read_bytes()[:2000])
    with pytest.raises(DataError):
        read_source(truncated_file)
    with pytest.raises(DataError, match="already exists"):
        d3rlpy_h5.write(ds, tmp_path / "full.h5")


def test_cli_convert_to_and_from_d3rlpy(tmp_path: Path) -> None:
    from ildata.cli import main

    ds = ildata.save(_episodes(True, False), tmp_path / "store")
    dump = tmp_path / "out.h5"
    assert main(["convert", str(tmp_path / "store"), str(dump), "--to", "d3rlpy", "--quiet"]) == 0
    with open(dump, "rb") as f:
        _assert_aligned(ReplayBuffer.load(f, InfiniteBuffer()), ds)
    assert main(["convert", str(dump), str(tmp_path / "back"), "--quiet"]) == 0
    assert_same_batch(ds.to_batch(), ildata.load(tmp_path / "back").to_batch(), infos=False)
