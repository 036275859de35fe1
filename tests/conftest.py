"""Fixtures shared by every test module. Plain helpers and paths live in `support.py`.

`pytest -m "not slow"` is the fast developer tier; the default run (the README's test command)
includes the `slow` training-to-quality tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import DATASETS, make_episodes

import ildata


@pytest.fixture(scope="session")
def cartpole_expert() -> ildata.TrajectoryDataset:
    """The CartPole expert demonstrations shipped in datasets/ (read-only, memory-mapped)."""
    return ildata.load(DATASETS / "cartpole-expert")


@pytest.fixture
def small_store(tmp_path: Path) -> ildata.TrajectoryDataset:
    """A four-episode store of random float32 observations and continuous actions."""
    return ildata.save(make_episodes(), tmp_path / "small-store")
