"""Process-wide settings a run depends on: seeds, thread pools, and quiet imports of noisy libraries.

The bottom of `algos`: it imports no other `algos` module, so policies, algorithms, recipes and
the runner can all use it.

Threads: a run uses several thread pools: torch's intra-op (OpenMP) and inter-op pools, numpy's
and scipy's BLAS (OpenBLAS), and any other OpenMP runtime a library loads. Each defaults to one
thread per core, so a `threads: 1` run that pinned torch alone still used two cores through BLAS,
and runs side by side in a sweep slowed each other down many times over. `run_threads` pins all
of them for one run (threadpoolctl for BLAS and OpenMP, torch's own setters for torch), and
`thread_env` gives the environment variables that pin them in a process that has not loaded the
libraries yet (a sweep's Ray workers, subprocesses).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import random
from collections.abc import Iterator
from types import ModuleType

import numpy as np

# Read by OpenMP, OpenBLAS, MKL, BLIS, Apple Accelerate and numexpr when they start.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def quiet_import(module: str) -> ModuleType:
    """Import a module whose import prints legacy `gym`'s deprecation banner to stderr.

    stable-baselines3 and d3rlpy import the old `gym` package when it is installed (d3rlpy
    pins it); its banner says nothing about ildata and would land in every CLI run.
    """
    with contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(module)


def thread_env(threads: int) -> dict[str, str]:
    """The environment variables that pin every thread pool to `threads` in a process started with them."""
    return dict.fromkeys(THREAD_ENV_VARS, str(threads))


def pin_torch_threads(threads: int) -> None:
    """torch's intra-op pool to `threads` and, while torch still allows it, its inter-op pool too.

    On a small shared machine torch's default (one thread per core) made a BC step 10-40x
    slower. torch accepts an inter-op size only before its first parallel work; after that the
    pool keeps its size (one more thread that runs only when a model forks work onto it).
    """
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, numpy and torch; with `threads`, pin torch's thread pools (`pin_torch_threads`).

    BLAS and OpenMP are pinned for a whole run by `run_threads` (which `algos.train` wraps
    every run in); this function is also what tests and benchmarks call on their own.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        pin_torch_threads(threads)


@contextlib.contextmanager
def run_threads(threads: int) -> Iterator[None]:
    """Every thread pool of this process limited to `threads` while the block runs.

    BLAS and OpenMP through threadpoolctl (it finds the libraries loaded so far and those loaded
    inside the block are limited through the environment variables, which subprocesses also
    inherit); torch through its own setters. Everything but torch's pool sizes (process-wide in
    torch, and set again by the next run) is restored afterwards.
    """
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    os.environ.update(thread_env(threads))
    try:
        pin_torch_threads(threads)  # loads torch (and its OpenMP) first, so threadpoolctl sees it
        with threadpool_limits(limits=threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
