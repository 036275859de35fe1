"""Fixtures shared by every test module. Plain helpers and paths live in `support.py`.

`pytest -m "not slow"` is the fast developer tier; the default run (the README's test command)
includes the `slow` training-to-quality tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import DATASETS, make_episodes

import ildata


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `slow` training tests first (each takes minutes): with one worker per core, the many
    short tests then fill in around them instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def one_core_per_test_process() -> Iterator[None]:
    """pytest runs one process per core (xdist `-n auto`); each computes on one thread, as a recipe
    with `threads: 1` does, so that two workers never crowd each other's core. Subprocesses a test
    starts (the CLI) set their own threads."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):  # numpy's BLAS and the OpenMP runtimes loaded by now (torch's)
        yield


@pytest.fixture(scope="session")
def cartpole_expert() -> ildata.TrajectoryDataset:
    """The CartPole expert demonstrations shipped in datasets/ (read-only, memory-mapped)."""
    return ildata.load(DATASETS / "cartpole-expert")


@pytest.fixture
def small_store(tmp_path: Path) -> ildata.TrajectoryDataset:
    """A four-episode store of random float32 observations and continuous actions."""
    return ildata.save(make_episodes(), tmp_path / "small-store")
