"""Horizon verdicts and the fixed-horizon transforms."""

from __future__ import annotations

import numpy as np
import pytest
from support import LEGACY, run_cli

import ildata
from ildata.episode import DataError, Episode, EpisodeBatch
from ildata.horizon import VariableHorizonError, check_fixed_horizon, make_fixed_horizon, verdict

FIXTURES = LEGACY


def _batch(lengths, terminated=True, truncated=False) -> EpisodeBatch:
    episodes = []
    for i, n in enumerate(lengths):
        obs = np.arange((n + 1) * 2, dtype=np.float32).reshape(n + 1, 2) + 100 * i
        episodes.append(Episode(obs=obs, acts=np.arange(n) % 2 + 1, rews=np.ones(n), terminated=terminated, truncated=truncated))
    return EpisodeBatch.from_episodes(episodes)


def test_verdict_and_error():
    assert verdict(np.array([5, 5, 5])).fixed
    result = verdict(np.array([3, 5, 5]))
    assert not result.fixed and result.histogram == {3: 1, 5: 2}
    with pytest.raises(VariableHorizonError, match="leak"):
        check_fixed_horizon(np.array([3, 5]))
    assert not check_fixed_horizon(np.array([3, 5]), allow_variable_horizon=True).fixed


def test_absorbing_padding_keeps_real_steps_and_flags_padding():
    batch = _batch([2, 4])
    fixed = make_fixed_horizon(batch, "absorbing")
    assert fixed.lengths.tolist() == [4, 4]
    obs, flag = fixed.obs["obs"], fixed.obs["absorbing"]
    # episode 0: 3 real observations, then its final observation repeated twice, flagged
    np.testing.assert_array_equal(obs[:3], batch.obs[:3])
    np.testing.assert_array_equal(obs[3:5], np.repeat(batch.obs[2:3], 2, axis=0))
    assert flag[:5].tolist() == [0, 0, 0, 1, 1] and flag[5:].tolist() == [0] * 5
    assert fixed.acts[:4].tolist() == [1, 2, 0, 0] and fixed.rews[:4].tolist() == [1, 1, 0, 0]
    assert fixed.terminated.tolist() == [False, True] and fixed.truncated.tolist() == [True, False]


def test_absorbing_refuses_to_pad_truncated_episodes():
    with pytest.raises(DataError, match="truncated"):
        make_fixed_horizon(_batch([2, 4], terminated=False, truncated=True), "absorbing")


def test_truncate_cuts_to_common_length():
    batch = _batch([3, 5, 2])
    fixed = make_fixed_horizon(batch, "truncate", horizon=3)
    assert fixed.lengths.tolist() == [3, 3]  # the 2-step episode is dropped
    np.testing.assert_array_equal(fixed.obs[4:8], batch.obs[4:8])  # second episode's first 4 obs
    assert fixed.truncated.tolist() == [False, True] and fixed.terminated.tolist() == [True, False]


def test_convert_fixed_horizon_on_a_real_file(tmp_path):
    src = FIXTURES / "n1-cartpole-v1-final.npz"
    ds = ildata.convert(src, tmp_path / "abs", fixed_horizon="absorbing", env_id="CartPole-v1")
    assert set(ds.lengths.tolist()) == {500}
    assert ds.observation_space["absorbing"].shape == ()
    assert "obs" in ds.observation_space.spaces
    original = ildata.convert(src, tmp_path / "orig")
    short = int(np.flatnonzero(original.lengths < 500)[0])
    padded = ds[short]
    n = int(original.lengths[short])
    np.testing.assert_array_equal(padded.obs["obs"][: n + 1], original[short].obs)
    assert padded.obs["absorbing"][n + 1 :].all() and not padded.obs["absorbing"][: n + 1].any()
    check_fixed_horizon(ds.lengths)  # no error any more
    cut = ildata.convert(src, tmp_path / "cut", fixed_horizon="truncate")
    assert set(cut.lengths.tolist()) == {393} and len(cut) == 57


def test_cli_horizon_without_fixed_horizon_is_an_error(tmp_path):
    done = run_cli("convert", str(FIXTURES / "n1-cartpole-v1-final.npz"), str(tmp_path / "out"), "--horizon", "100")
    assert (
        done.returncode == 2
        and done.stderr == "ildata: error: --horizon needs --fixed-horizon absorbing|truncate (alone it would be ignored)\n"
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ildata.DataError, match="horizon needs fixed_horizon"):
        ildata.convert(FIXTURES / "n1-cartpole-v1-final.npz", tmp_path / "out", horizon=100)


def test_truncate_notes_count_the_kept_episodes(tmp_path):
    done = run_cli(
        "convert", str(FIXTURES / "p4-cartpole-dataclass.pkl"), str(tmp_path / "cut"), "--fixed-horizon", "truncate", "--horizon", "500"
    )
    assert done.returncode == 0, done.stderr
    assert "55 episodes, 27500 transitions" in done.stderr
    assert "truncate kept 55 of 56 episodes, dropping 1 shorter than 500 steps" in done.stderr
    assert "before --fixed-horizon truncate: 56 of 56 episodes" in done.stderr
    notes = ildata.load(tmp_path / "cut").info["provenance"]["notes"]
    assert notes[-1].startswith("--fixed-horizon truncate kept 55 of 56")
