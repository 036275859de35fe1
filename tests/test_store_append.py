"""`ildata.store.append_episodes`: episodes added to an existing store as new shards (what
DAgger's GrowingStore does each round) give a store that loads, verifies, and holds exactly the
episodes appended, in order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import DATASETS, assert_same_batch, make_episodes, run_cli

import ildata
from ildata.episode import DataError, EpisodeBatch
from ildata.store import INFO_FILE, STATS_FILE, append_episodes, verify_store, write_dataset


def _expert_rounds() -> tuple[ildata.TrajectoryDataset, list[EpisodeBatch]]:
    expert = ildata.load(DATASETS / "cartpole-expert")
    return expert, [expert[0:10].to_batch(), expert[10:14].to_batch(), expert[14:30].to_batch()]


def test_appending_twice_gives_a_store_that_verifies_and_holds_every_episode(tmp_path: Path) -> None:
    expert, rounds = _expert_rounds()
    root = tmp_path / "grown"
    write_dataset(rounds[0], root, observation_space=expert.observation_space, action_space=expert.action_space, env_id=expert.env_id)
    for batch in rounds[1:]:
        append_episodes(root, batch, observation_space=expert.observation_space, action_space=expert.action_space)

    grown = ildata.load(root, verify=True)
    assert verify_store(root) == []
    assert len(grown) == 30 and grown.num_transitions == expert.num_transitions
    assert len(grown.meta.data_files) == 3
    assert_same_batch(grown.to_batch(), expert.to_batch())
    np.testing.assert_array_equal(grown.transitions().episode_index, np.repeat(np.arange(30), expert.lengths))

    once = ildata.save(expert.to_batch(), tmp_path / "once", observation_space=expert.observation_space, action_space=expert.action_space)
    # Shards are cut where the appends were: other files, so another fingerprint, same data.
    assert grown.fingerprint != once.fingerprint
    stats, whole = json.loads((root / STATS_FILE).read_text()), json.loads((once.path / STATS_FILE).read_text())
    assert stats["episodes"] == pytest.approx(whole["episodes"])
    for name in ("count", "mean", "std", "min", "max"):
        assert stats["features"]["obs"][name] == pytest.approx(whole["features"]["obs"][name], rel=1e-9, abs=1e-9)
    assert stats["features"]["obs"]["quantiles_exact"] is False

    done = run_cli("verify", str(root))
    assert done.returncode == 0 and "30 episodes" in done.stdout, done.stderr


def test_an_interrupted_append_is_dropped_by_the_next(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = EpisodeBatch.from_episodes(make_episodes((4, 5)))
    write_dataset(first, root)
    (root / "data" / "shard-00001.arrow").write_bytes(b"half-written")  # listed by no info.json
    append_episodes(root, EpisodeBatch.from_episodes(make_episodes((3, 6), seed=1)))
    ds = ildata.load(root, verify=True)
    assert len(ds) == 4 and ds.meta.data_files == ["data/shard-00000.arrow", "data/shard-00001.arrow"]
    assert ds.lengths.tolist() == [4, 5, 3, 6]


def test_episodes_unlike_the_store_are_refused_and_leave_it_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_dataset(EpisodeBatch.from_episodes(make_episodes((4, 5))), root)
    before = (root / INFO_FILE).read_text()
    with pytest.raises(DataError, match="features"):
        append_episodes(root, EpisodeBatch.from_episodes(make_episodes((3,), obs_dim=5)))
    with pytest.raises(DataError, match="features"):
        append_episodes(root, EpisodeBatch.from_episodes(make_episodes((3,), rewards=False)))
    assert (root / INFO_FILE).read_text() == before
    assert sorted(p.name for p in (root / "data").iterdir()) == ["shard-00000.arrow"]
    assert ildata.load(root, verify=True).lengths.tolist() == [4, 5]
