"""`ildata render`: stored image frames written directly; other episodes replayed from their seed
in an env that renders rgb_array (a small env defined here: CartPole needs pygame to render),
with a divergence between the replay and the stored observations reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image
from support import DATASETS, run_cli

import ildata
from ildata.cli import main
from ildata.episode import DataError, Episode
from ildata.render import render_episode

WALK = "ildata_test/Walk-v0"


class Walk(gym.Env):
    """A point on a line: reset at a seeded position, actions 0/1 step left/right; renders a bar."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-100, 100, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0

    def reset(self, *, seed: int | None = None, options: Any = None):
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, 10))
        return np.array([self.pos], np.float32), {}

    def step(self, action: int):
        self.pos += 1 if action else -1
        return np.array([self.pos], np.float32), 1.0, False, False, {}

    def render(self) -> Any:
        frame = np.zeros((16, 40, 3), np.uint8)
        frame[:, max(0, min(39, self.pos + 20))] = 255
        return frame


def make_walk(**kwargs: Any) -> gym.Env:
    return Walk(**kwargs)


if WALK not in gym.registry:
    gym.register(WALK, entry_point=make_walk)


def walk_episodes(n: int = 3, length: int = 6) -> list[Episode]:
    env = gym.make(WALK)
    episodes = []
    rng = np.random.default_rng(0)
    for seed in range(n):
        obs, _ = env.reset(seed=seed)
        observations, actions = [obs], rng.integers(0, 2, length)
        for a in actions:
            observations.append(env.step(int(a))[0])
        episodes.append(
            Episode(obs=np.stack(observations), acts=actions, rews=np.ones(length), terminated=False, truncated=True, seed=seed)
        )
    return episodes


def frames_of(path: Path) -> int:
    with Image.open(path) as image:
        assert image.format == "GIF"
        return int(getattr(image, "n_frames", 1))


def test_replay_from_the_seed_writes_every_frame(tmp_path, capsys):
    ds = ildata.save(walk_episodes(), tmp_path / "walk", env_id=WALK)
    out = tmp_path / "ep1.gif"
    result = render_episode(ds, 1, out)
    assert result.frames == 7 and result.diverged_at is None and "seed 1" in result.source
    assert frames_of(out) == 7
    # through the command line (in process: the env is registered here)
    assert main(["render", str(ds.path), str(tmp_path / "last.gif"), "--episode", "-1"]) == 0
    captured = capsys.readouterr()
    assert "7 frames from replay of ildata_test/Walk-v0 (seed 2)" in captured.out and "diverges" not in captured.err


def test_a_replay_that_diverges_is_reported(tmp_path, capsys):
    episodes = walk_episodes()
    obs = episodes[0].obs
    assert isinstance(obs, np.ndarray)
    obs[4:] += 3.0  # the stored episode no longer matches what the env does from step 4
    ds = ildata.save(episodes, tmp_path / "walk", env_id=WALK)
    result = render_episode(ds, 0, tmp_path / "ep0.gif")
    assert result.diverged_at == 4 and result.max_error == pytest.approx(3.0)
    assert frames_of(tmp_path / "ep0.gif") == 7  # frames are still written
    assert main(["render", str(ds.path), str(tmp_path / "cli.gif")]) == 0
    err = capsys.readouterr().err
    assert "diverges from the stored observations at step 4" in err and err.count("\n") == 1


def test_image_observations_are_written_directly(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (9, 12, 10, 3), dtype=np.uint8)
    episode = Episode(obs=frames, acts=np.zeros(8, np.int64), rews=None, terminated=True, truncated=False)
    ds = ildata.save([episode], tmp_path / "pixels")  # no env, no seed: not needed
    result = render_episode(ds, 0, tmp_path / "px.gif")
    assert result.source == "stored images" and result.frames == 9
    assert frames_of(tmp_path / "px.gif") == 9
    with Image.open(tmp_path / "px.gif") as image:
        assert image.size == (10, 12)


def test_refusals_are_one_line_and_write_nothing(tmp_path):
    episodes = walk_episodes(1)
    episodes[0].seed = None
    ds = ildata.save(episodes, tmp_path / "noseed", env_id=WALK)
    with pytest.raises(DataError, match="no recorded reset seed"):
        render_episode(ds, 0, tmp_path / "a.gif")
    with pytest.raises(DataError, match="out of range"):
        render_episode(ds, 5, tmp_path / "a.gif")
    (tmp_path / "exists.gif").write_bytes(b"keep")
    seeded = ildata.save(walk_episodes(1), tmp_path / "seeded", env_id=WALK)
    with pytest.raises(DataError, match="already exists"):
        render_episode(seeded, 0, tmp_path / "exists.gif")
    assert (tmp_path / "exists.gif").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.gif", "noseed", "seeded"]


def test_shipped_cartpole_episode_replays_without_divergence(tmp_path):
    """CartPole renders through pygame (a dependency); the replay from the recorded seed matches the stored obs."""
    done = run_cli("render", str(DATASETS / "cartpole-expert"), str(tmp_path / "cp.gif"), "--episode", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "501 frames from replay of CartPole-v1 (seed 2)" in done.stdout
    from PIL import Image

    with Image.open(tmp_path / "cp.gif") as gif:
        assert gif.n_frames > 1 and gif.size == (600, 400)
