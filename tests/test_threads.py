"""A run stays on the cores its recipe's `threads:` gives it: torch, numpy's BLAS and every OpenMP
runtime are held to that many threads while it trains (and put back after), and a BLAS-heavy step
inside a `threads: 1` run uses one core's worth of CPU time.

Both checks read one real (tiny) BC training in a fresh Python, so no limit set by another test leaks in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "bc-cartpole.yaml"
TINY = ["config.n_gradient_steps=40", "config.log_interval=10", "config.rollout_interval=0", "eval.episodes=1", "eval.n_envs=1"]

# Runs in the child: trains `RECIPE` with `threads:` from argv, and at every console line records
# the thread pools, torch's pool sizes and the thread variables a subprocess would inherit; with
# the CPU time / wall time of a BLAS-heavy numpy step done inside the run (at the first line).
CHILD = """
import json, os, sys, time
import numpy as np
from threadpoolctl import threadpool_info
from algos.recipe import load_recipe
from algos.train import run_recipe

recipe_path, out, threads, *sets = sys.argv[1:]
seen, ratios = [], []
a = np.random.default_rng(0).standard_normal((700, 700))

def echo(line):
    if not line.startswith("step"):
        return
    import torch
    seen.append({
        "pools": [(p["internal_api"], p["num_threads"]) for p in threadpool_info()],
        "torch": [torch.get_num_threads(), torch.get_num_interop_threads()],
        "env": os.environ.get("OMP_NUM_THREADS"),
    })
    if not ratios:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(12):
            a @ a
        ratios.append((time.process_time() - cpu) / (time.perf_counter() - wall))

before = [(p["filepath"], p["num_threads"]) for p in threadpool_info()]
recipe = load_recipe(recipe_path, [*sets, f"threads={threads}"])
run_recipe(recipe, out=out, echo=echo, progress="lines")
after = [(p["filepath"], p["num_threads"]) for p in threadpool_info() if p["filepath"] in dict(before)]
print(json.dumps({"seen": seen, "ratios": ratios, "before": before, "after": after}))
"""


@pytest.fixture(scope="module")
def one_thread_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("threads") / "run"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(RECIPE), str(out), "1", *TINY], capture_output=True, text=True, cwd=ROOT, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_thread_pool_is_held_to_the_recipes_threads_during_a_run(one_thread_run: dict) -> None:
    assert one_thread_run["seen"], "the run logged nothing"
    for moment in one_thread_run["seen"]:
        kinds = {api for api, _ in moment["pools"]}
        assert {"openblas", "openmp"} <= kinds, moment["pools"]  # numpy's BLAS and torch's OpenMP are both loaded
        assert all(n == 1 for _, n in moment["pools"]), moment["pools"]
        assert moment["torch"] == [1, 1]
        assert moment["env"] == "1"  # what a subprocess started by the run inherits
    # Limits are for the run: the pools that existed before it are back to their sizes after it.
    assert one_thread_run["after"] == one_thread_run["before"]


def test_blas_heavy_step_in_a_one_thread_run_uses_one_core(one_thread_run: dict) -> None:
    [ratio] = one_thread_run["ratios"]
    assert ratio <= 1.3, f"CPU time / wall time {ratio:.2f} for a threads: 1 run"
