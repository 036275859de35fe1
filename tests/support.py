"""Paths, episode factories and comparisons shared by the test modules (not a test module itself).

Every fixture a test reads lives inside the repository (tests/fixtures/, datasets/), so a fresh
clone with nothing beside it runs the whole suite.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ildata.episode import Episode, EpisodeBatch, flatten_obs

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
LEGACY = FIXTURES / "imitation-legacy"
DATASETS = REPO / "datasets"
EXPERT_ZIP = DATASETS / "experts" / "ppo-cartpole-v1-sb3.zip"


def manifest_rows() -> list[dict[str, str]]:
    """The facts table of LEGACY/MANIFEST.md (computed independently of this project), one dict per file."""
    lines = [line for line in (LEGACY / "MANIFEST.md").read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def as_printed(text: str) -> object:
    """A manifest number, compared to the precision it was printed with (half a last digit)."""
    import pytest

    decimals = len(text.partition(".")[2])
    return pytest.approx(float(text), rel=1e-9, abs=0.5 * 10**-decimals + 1e-9)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`ildata ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "ildata.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def make_episodes(
    lengths: Sequence[int] = (4, 6, 3, 5),
    *,
    seed: int = 0,
    obs_dim: int = 3,
    act_dim: int | None = 2,
    n_actions: int = 3,
    obs_dtype: type = np.float32,
    rewards: bool = True,
    dict_obs: bool = False,
    flags: Sequence[tuple[bool, bool]] | None = None,
    termination_known: Sequence[bool] | None = None,
    infos: bool = False,
    seeds: bool = False,
) -> list[Episode]:
    """Random episodes of the given lengths.

    `act_dim=None` gives discrete actions in [0, n_actions); `flags` gives (terminated, truncated)
    per episode (default: alternately terminated and truncated).
    """
    rng = np.random.default_rng(seed)
    episodes = []
    for i, length in enumerate(lengths):
        if dict_obs:
            obs: object = {
                "pos": rng.normal(size=(length + 1, obs_dim)).astype(np.float32),
                "img": rng.integers(0, 255, (length + 1, 2, 4), dtype=np.uint8),
            }
        else:
            obs = rng.normal(size=(length + 1, obs_dim)).astype(obs_dtype)
        if act_dim is None:
            acts = rng.integers(0, n_actions, length)
        else:
            acts = rng.uniform(-1, 1, (length, act_dim)).astype(np.float32)
        terminated, truncated = flags[i] if flags is not None else (i % 2 == 0, i % 2 == 1)
        episodes.append(
            Episode(
                obs=obs,  # type: ignore[arg-type]
                acts=acts,
                rews=rng.normal(size=length).astype(np.float32) if rewards else None,
                terminated=terminated,
                truncated=truncated,
                termination_known=True if termination_known is None else termination_known[i],
                infos=[{"step": t} for t in range(length)] if infos else None,
                seed=i if seeds else None,
            )
        )
    return episodes


def assert_same_batch(a: EpisodeBatch, b: EpisodeBatch, *, infos: bool = True) -> None:
    """Two EpisodeBatches hold identical arrays (dtypes included) and episode flags."""
    fa, fb = flatten_obs(a.obs), flatten_obs(b.obs)
    assert fa.keys() == fb.keys()
    for key in fa:
        assert fa[key].dtype == fb[key].dtype, key
        np.testing.assert_array_equal(fa[key], fb[key])
    assert (a.rews is None) == (b.rews is None)
    for name in ("acts", "rews", "lengths", "terminated", "truncated", "termination_known", "seeds"):
        x, y = getattr(a, name), getattr(b, name)
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y)
    if infos:
        assert a.infos == b.infos


def interrupted_then_resumed(
    tmp_path: Path, recipe: Path, stop_at: int, monkeypatch: Any, *, checkpoint_file: str | None = None
) -> tuple[Path, Path]:
    """`ildata train` of `recipe` uninterrupted into tmp_path/whole, and again into tmp_path/resumed
    interrupted (Ctrl-C) when the metrics row of `stop_at` is shown, then resumed with --resume.
    Checks the interrupted run left its checkpoint (holding `checkpoint_file`, if given) and no run."""
    from algos.train import Console
    from ildata.cli import main

    whole = tmp_path / "whole"
    assert main(["train", str(recipe), "--out", str(whole), "--quiet"]) == 0
    show = Console.row

    def interrupt(self: Console, step: int, metrics: dict[str, float]) -> None:
        if step == stop_at:
            raise KeyboardInterrupt
        show(self, step, metrics)

    resumed = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        patch.setattr(Console, "row", interrupt)
        assert main(["train", str(recipe), "--out", str(resumed), "--quiet"]) == 130
    checkpoint = tmp_path / "resumed.partial" / "checkpoint"
    assert checkpoint.is_dir() and not resumed.exists()
    if checkpoint_file is not None:
        assert (checkpoint / checkpoint_file).is_file()
    assert main(["train", str(recipe), "--resume", str(resumed), "--quiet"]) == 0
    return whole, resumed


def minari_toy_dataset(dataset_id: str, lengths: Sequence[int], data_format: str, *, infos: bool = True) -> None:
    """A small Minari dataset made by minari itself (`create_dataset_from_buffers`) under
    $MINARI_DATASETS_PATH: Box(3) observations, Box(2) actions, each episode terminated, and a
    `step` info per step unless `infos` is false (then none are recorded)."""
    import warnings

    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(0)
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=i,
            observations=rng.normal(size=(length + 1, 3)).astype(np.float32),
            actions=rng.uniform(-1, 1, (length, 2)).astype(np.float32),
            rewards=list(rng.normal(size=length)),
            terminations=[False] * (length - 1) + [True],
            truncations=[False] * length,
            infos={"step": list(range(length + 1))} if infos else {},
        )
        for i, length in enumerate(lengths)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari warns about every missing author/description field
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            action_space=gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
            data_format=data_format,
        )
