"""Minari interoperability against the real minari package: datasets made by
`minari.create_dataset_from_buffers` for every backend are imported exactly (Dict and Tuple
spaces, infos, seeds, terminations and truncations, JPEG images), and datasets ildata writes are
read back by `minari.load_dataset` unchanged."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer
from support import assert_same_batch

import ildata
from ildata.conversion import convert
from ildata.episode import DataError, Episode, EpisodeBatch, flatten_obs
from ildata.formats import minari_dir, read_source

BACKENDS = ["arrow", "parquet", "hdf5"]
# (length, terminated, truncated) of each episode: every combination gymnasium allows.
EPISODES = [(4, True, False), (6, False, True), (3, True, True), (5, False, False), (1, False, True)]

OBS_SPACE = gym.spaces.Dict(
    {
        "pos": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
        "pair": gym.spaces.Tuple((gym.spaces.Discrete(4), gym.spaces.Box(0.0, 5.0, (2, 2), np.float64))),
    }
)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


@pytest.fixture()
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _buffers(seed: int = 0) -> list[EpisodeBuffer]:
    rng = np.random.default_rng(seed)
    buffers = []
    for i, (length, terminated, truncated) in enumerate(EPISODES):
        obs = {
            "pos": rng.uniform(-1, 1, (length + 1, 3)).astype(np.float32),
            "pair": (rng.integers(0, 4, length + 1), rng.uniform(0, 5, (length + 1, 2, 2))),
        }
        flags = np.zeros(length, dtype=bool)
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=100 + i,
                observations=obs,
                actions=rng.uniform(-1, 1, (length, 2)).astype(np.float32),
                rewards=list(rng.normal(size=length)),
                terminations=list(np.where(np.arange(length) == length - 1, terminated, flags)),
                truncations=list(np.where(np.arange(length) == length - 1, truncated, flags)),
                # T+1 infos, the first from reset(), as minari's DataCollector records them.
                infos={"step": list(range(length + 1)), "vel": rng.normal(size=(length + 1, 2)), "ok": [True] * (length + 1)},
            )
        )
    return buffers


def _create(dataset_id: str, buffers: list[EpisodeBuffer], data_format: str, **kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari warns about every missing author/description field
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=kwargs.pop("observation_space", OBS_SPACE),
            action_space=kwargs.pop("action_space", ACT_SPACE),
            data_format=data_format,
            **kwargs,
        )


def _minari_obs(obs) -> dict[str, np.ndarray]:
    """minari's observations (dicts and tuples) -> ildata's flat keys."""
    if isinstance(obs, tuple):
        obs = {str(i): v for i, v in enumerate(obs)}
    if isinstance(obs, dict):
        return {f"{k}.{sk}".strip("."): sv for k, v in obs.items() for sk, sv in _minari_obs(v).items()}
    return {"": obs}


def _dict_infos(batch: EpisodeBatch) -> list[dict[str, Any]]:
    """The batch's step infos, each a dict (what minari's columnar infos become)."""
    assert batch.infos is not None
    infos = [info for info in batch.infos if isinstance(info, dict)]
    assert len(infos) == len(batch.infos)
    return infos


def _assert_matches_minari(batch, dataset) -> None:
    """Every episode of `batch` equals what minari's own reader returns, dtypes included."""
    flat = flatten_obs(batch.obs)
    obs_start = step_start = 0
    episodes = list(dataset.iterate_episodes())
    assert len(episodes) == batch.num_episodes
    for i, ep in enumerate(episodes):
        length = len(ep)
        assert batch.lengths[i] == length
        for key, values in _minari_obs(ep.observations).items():
            ours = flat[key][obs_start : obs_start + length + 1]
            assert ours.dtype == values.dtype, key
            np.testing.assert_array_equal(ours, values)
        steps = slice(step_start, step_start + length)
        np.testing.assert_array_equal(batch.acts[steps], ep.actions)
        assert batch.acts.dtype == ep.actions.dtype
        np.testing.assert_array_equal(batch.rews[steps], ep.rewards)
        assert batch.terminated[i] == bool(ep.terminations[-1])
        assert batch.truncated[i] == bool(ep.truncations[-1])
        assert not ep.terminations[:-1].any() and not ep.truncations[:-1].any()
        obs_start += length + 1
        step_start += length


@pytest.mark.parametrize("backend", BACKENDS)
def test_import_matches_minari(minari_root: Path, backend: str) -> None:
    _create(f"test/dict-{backend}-v0", _buffers(), backend)
    source = read_source(minari_dir.resolve_minari_spec(f"minari:test/dict-{backend}-v0"))
    assert source.format == f"minari-{backend}"
    assert source.observation_space == OBS_SPACE and source.action_space == ACT_SPACE
    batch = source.batch
    _assert_matches_minari(batch, minari.load_dataset(f"test/dict-{backend}-v0"))
    # The episode that is both terminated and truncated keeps both flags.
    np.testing.assert_array_equal(batch.terminated, [e[1] for e in EPISODES])
    np.testing.assert_array_equal(batch.truncated, [e[2] for e in EPISODES])
    np.testing.assert_array_equal(batch.seeds, 100 + np.arange(len(EPISODES)))
    # Step t's info is minari's info row t+1 (row 0 came from reset()).
    step_rows = [r for length, *_ in EPISODES for r in range(1, length + 1)]
    infos = _dict_infos(batch)
    assert [info["step"] for info in infos] == step_rows
    vel = np.concatenate([b.infos["vel"][1:] for b in _buffers()])
    np.testing.assert_array_equal(np.array([info["vel"] for info in infos]), vel)
    assert any("reset" in note for note in source.notes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jpeg_images_import_as_minari_decodes_them(minari_root: Path, backend: str) -> None:
    rng = np.random.default_rng(1)
    image = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    buffers = [
        EpisodeBuffer(
            observations=rng.integers(0, 255, (length + 1, 32, 32, 3), dtype=np.uint8),
            actions=list(rng.integers(0, 3, length)),
            rewards=[1.0] * length,
            terminations=[False] * (length - 1) + [True],
            truncations=[False] * length,
        )
        for length in (3, 2)
    ]
    _create(f"test/img-{backend}-v0", buffers, backend, observation_space=image, action_space=gym.spaces.Discrete(3))
    source = read_source(minari_root / "test" / f"img-{backend}-v0")
    _assert_matches_minari(source.batch, minari.load_dataset(f"test/img-{backend}-v0"))
    assert any("JPEG" in note for note in source.notes)


def _store(path: Path) -> ildata.TrajectoryDataset:
    rng = np.random.default_rng(2)
    episodes = []
    for i, (length, terminated, truncated) in enumerate(EPISODES):
        episodes.append(
            Episode(
                obs={
                    "pos": rng.uniform(-1, 1, (length + 1, 3)).astype(np.float32),
                    "pair": {"0": rng.integers(0, 4, length + 1), "1": rng.uniform(0, 5, (length + 1, 2, 2))},
                },
                acts=rng.uniform(-1, 1, (length, 2)).astype(np.float32),
                rews=rng.normal(size=length).astype(np.float32),
                terminated=terminated,
                truncated=truncated,
                infos=[{"t": t, "xy": [float(t), -1.5]} for t in range(length)],
                seed=7 * i,
            )
        )
    return ildata.save(episodes, path, observation_space=OBS_SPACE, action_space=ACT_SPACE, env_id="CartPole-v1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_reads_back_in_minari_and_ildata(minari_root: Path, tmp_path: Path, backend: str) -> None:
    ds = _store(tmp_path / "store")
    dst = minari_dir.resolve_minari_spec(f"minari:out/export-{backend}-v2")
    notes = minari_dir.write(ds, dst, data_format=backend)
    assert notes == []
    loaded = minari.load_dataset(f"out/export-{backend}-v2")
    assert loaded.spec.dataset_id == f"out/export-{backend}-v2"
    assert loaded.observation_space == OBS_SPACE and loaded.action_space == ACT_SPACE
    assert loaded.total_episodes == len(ds) and loaded.total_steps == ds.num_transitions
    assert loaded.spec.env_spec is not None and loaded.spec.env_spec.id == "CartPole-v1"
    batch = ds.to_batch()
    _assert_matches_minari(batch, loaded)
    # ... and back: ildata -> minari -> ildata is exact, infos and seeds included.
    back = read_source(dst)
    assert_same_batch(batch, back.batch)
    assert back.env_id == "CartPole-v1"


def test_minari_round_trip_both_ways(minari_root: Path, tmp_path: Path) -> None:
    """minari -> ildata store -> minari gives minari the same episodes it started with."""
    _create("test/orig-v0", _buffers(3), "arrow")
    ds = convert("minari:test/orig-v0", tmp_path / "store")
    assert isinstance(ds, ildata.TrajectoryDataset) and len(ds) == len(EPISODES)
    minari_dir.write(ds, minari_root / "test" / "copy-v0", data_format="hdf5")
    original = list(minari.load_dataset("test/orig-v0").iterate_episodes())
    copy = list(minari.load_dataset("test/copy-v0").iterate_episodes())
    for a, b in zip(original, copy):
        for key, values in _minari_obs(a.observations).items():
            np.testing.assert_array_equal(values, _minari_obs(b.observations)[key])
        for name in ("actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        # Step infos survive; the reset() info is the one thing ildata does not keep.
        np.testing.assert_array_equal(a.infos["vel"][1:], b.infos["vel"][1:])


def test_images_export_lossless(minari_root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    image = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    episodes = [
        Episode(obs=rng.integers(0, 255, (n + 1, 32, 32, 3), dtype=np.uint8), acts=rng.integers(0, 3, n), rews=np.ones(n), terminated=True)
        for n in (3, 4)
    ]
    ds = ildata.save(episodes, tmp_path / "store", observation_space=image, action_space=gym.spaces.Discrete(3))
    minari_dir.write(ds, minari_root / "img" / "raw-v0")
    meta = json.loads((minari_root / "img" / "raw-v0" / "data" / "metadata.json").read_text())
    assert meta["jpeg_encoding"] is False
    _assert_matches_minari(ds.to_batch(), minari.load_dataset("img/raw-v0"))


def test_bad_minari_datasets_raise_data_error(minari_root: Path, tmp_path: Path) -> None:
    _create("bad/base-v0", _buffers(), "arrow")
    base = minari_root / "bad" / "base-v0"

    missing = tmp_path / "missing"
    shutil.copytree(base, missing)
    shutil.rmtree(missing / "data" / "2")
    with pytest.raises(DataError, match="episode folder 2 is missing"):
        read_source(missing)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(base, corrupt)
    (corrupt / "data" / "1" / "part-0.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(DataError, match="corrupted arrow file") as excinfo:
        read_source(corrupt)
    assert excinfo.value.subject == corrupt / "data" / "1" / "part-0.arrow"

    early = EpisodeBuffer(
        observations=np.zeros((4, 2), np.float32),
        actions=np.zeros((3, 2), np.float32),
        rewards=[0.0] * 3,
        terminations=[False, True, True],
        truncations=[False] * 3,
    )
    box = gym.spaces.Box(-1, 1, (2,), np.float32)
    _create("bad/early-v0", [early], "hdf5", observation_space=box, action_space=box)
    with pytest.raises(DataError, match="terminations set before its last step"):
        read_source(minari_root / "bad" / "early-v0")

    with pytest.raises(DataError, match="bad Minari dataset id"):
        minari_dir.resolve_minari_spec("minari:no-version")
    with pytest.raises(DataError, match="already exists"):
        minari_dir.write(convert(base, tmp_path / "store"), base)


def test_resolution_and_sniffing(minari_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert minari_dir.resolve_minari_spec("minari:D4RL/door/human-v2") == minari_root / "D4RL" / "door" / "human-v2"
    monkeypatch.delenv("MINARI_DATASETS_PATH")
    assert minari_dir.resolve_minari_spec("minari:ns/b-v0") == Path.home() / ".minari" / "datasets" / "ns" / "b-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    _create("sniff/x-v0", _buffers(), "parquet")
    folder = minari_root / "sniff" / "x-v0"
    assert minari_dir.sniff(folder) and minari_dir.sniff(folder / "data")
    assert not minari_dir.sniff(folder / "data" / "0")
    assert minari_dir.dataset_id_for(folder) == "sniff/x-v0"
    assert minari_dir.dataset_id_for(Path("/elsewhere/my data")) == "my_data-v0"


def test_cli_convert_from_and_to_minari(minari_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ildata.cli import main

    _create("cli/src-v0", _buffers(), "parquet")
    assert main(["convert", "minari:cli/src-v0", str(tmp_path / "store"), "--quiet"]) == 0
    ds = ildata.load(tmp_path / "store")
    _assert_matches_minari(ds.to_batch(), minari.load_dataset("cli/src-v0"))
    assert ds.observation_space == OBS_SPACE

    assert main(["convert", str(tmp_path / "store"), str(minari_root / "cli" / "dst-v0"), "--to", "minari", "--quiet"]) == 0
    _assert_matches_minari(ds.to_batch(), minari.load_dataset("cli/dst-v0"))

    capsys.readouterr()
    assert main(["convert", "minari:cli/absent-v0", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ildata: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_other_spaces_missing_rewards_and_unknown_terminations_round_trip(minari_root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    space = gym.spaces.Dict(
        {
            "d": gym.spaces.Discrete(5),
            "mb": gym.spaces.MultiBinary(3),
            "s": gym.spaces.Box(-1, 1, (), np.float64),
            "md": gym.spaces.MultiDiscrete([2, 3]),
        }
    )
    episodes = [
        Episode(
            obs={
                "d": rng.integers(0, 5, n + 1),
                "mb": rng.integers(0, 2, (n + 1, 3)).astype(np.int8),
                "s": rng.uniform(-1, 1, n + 1),
                "md": rng.integers(0, 2, (n + 1, 2)),
            },
            acts=rng.integers(0, 4, n),
            terminated=True,
            termination_known=known,
        )
        for n, known in ((2, False), (3, True))
    ]
    ds = ildata.save(episodes, tmp_path / "store", observation_space=space, action_space=gym.spaces.Discrete(4))
    for backend in ("arrow", "hdf5"):
        dst = minari_root / "other" / f"spaces-{backend}-v0"
        notes = minari_dir.write(ds, dst, data_format=backend)
        assert any("no rewards" in n for n in notes) and any("termination" in n for n in notes)
        loaded = minari.load_dataset(f"other/spaces-{backend}-v0")
        assert loaded.observation_space == space
        _assert_matches_minari(_with_zero_rewards(ds.to_batch()), loaded)
        back = read_source(dst).batch
        assert back.rews is None
        assert_same_batch(ds.to_batch(), back)
    # written under the Minari root, the datasets are listed by minari under their ids
    assert {"other/spaces-arrow-v0", "other/spaces-hdf5-v0"} <= set(minari.list_local_datasets())
    from minari.namespace import list_local_namespaces

    assert "other" in list_local_namespaces()


def _with_zero_rewards(batch):
    batch.rews = np.zeros(batch.num_transitions)
    return batch
