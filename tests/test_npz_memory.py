"""`ildata convert` and `ildata inspect` of an imitation npz whose members inflate to much more
than a memory-limited process has to spare.

The limit is an address-space limit (RLIMIT_AS, what `ulimit -v` sets) in the child process,
set above the address space the same command uses on a tiny file, since that baseline (thread
arenas, Arrow's allocator) differs from machine to machine. Under it, `convert` must pick store
shards small enough to write and then load the store (ildata/memory_limits.py); a store bigger
than the address space left is checked a shard at a time and kept; where memory really runs out,
the answer is one line naming the file, exit 2, and no output left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import LEGACY, make_episodes

import ildata

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limits and /proc/self/status are Linux's"),
]

# The child: `limit` (0: none) as RLIMIT_AS, then the ildata CLI; with `limit` 0 it reports its
# peak address space (VmPeak) on the last stderr line.
CHILD = r"""
import resource, sys
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from ildata.cli import main
rc = main(sys.argv[2:])
if not limit:
    peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmPeak:"))
    print(f"VmPeak {int(peak) * 1024}", file=sys.stderr)
sys.exit(rc)
"""

STEPS, TRAJECTORIES, OBS_DIM = 2_400_000, 200, 60  # obs inflates to 576 MB; the store holds about 1.2 GB


def _cli(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(limit), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Peak address space of `convert` on a tiny npz: what any convert needs before its data."""
    out = tmp_path_factory.mktemp("baseline") / "store"
    done = _cli(0, "convert", str(LEGACY / "n1-cartpole-v1-final.npz"), str(out))
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1].split()[1])


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid N1 npz (as `np.savez_compressed` writes it, at the fastest level) of zeros: a few
    MB on disk, 600 MB once inflated."""
    path = tmp_path_factory.mktemp("npz") / "big.npz"
    arrays: dict[str, np.ndarray] = {
        "obs": np.zeros((STEPS + TRAJECTORIES, OBS_DIM), np.float32),  # untouched zero pages: no memory
        "acts": np.zeros((STEPS, 1), np.float32),
        "rews": np.zeros(STEPS, np.float32),
        "indices": np.arange(1, TRAJECTORIES) * (STEPS // TRAJECTORIES),
        "terminal": np.ones(TRAJECTORIES, dtype=bool),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array)
    return path


def test_convert_and_inspect_fit_under_an_address_space_limit(baseline: int, big_npz: Path, tmp_path: Path) -> None:
    # Room for the written store to be mapped once, but not for it to be held in memory besides:
    # with one default-sized (4 GiB) shard, convert buffers the whole store and fails here.
    limit = baseline + 1_600_000_000
    out = tmp_path / "store"
    converted = _cli(limit, "convert", str(big_npz), str(out))
    assert converted.returncode == 0, converted.stderr
    inspected = _cli(limit, "inspect", str(big_npz))
    assert inspected.returncode == 0, inspected.stderr
    assert "imitation-npz-N1" in inspected.stdout

    ds = ildata.load(out)
    assert len(ds) == TRAJECTORIES
    assert ds.num_transitions == STEPS
    assert ds.lengths.tolist() == [STEPS // TRAJECTORIES] * TRAJECTORIES
    assert len(ds.info["data_files"]) > 1  # smaller shards than the default, chosen for the limit


@pytest.mark.parametrize("margin", [0, 10_000_000])
def test_a_limit_at_the_baseline_converts_or_is_one_line_naming_the_source(
    baseline: int, big_npz: Path, tmp_path: Path, margin: int
) -> None:
    """Convert sizes its shards to the room left, so whether a limit barely above what any convert
    needs is enough varies by a few MB from run to run. Either way there is no crash: the store is
    complete, or one line names the source and says memory ran out, and nothing is left behind."""
    out = tmp_path / "store"
    done = _cli(baseline + margin, "convert", str(big_npz), str(out))
    if done.returncode == 0:
        ds = ildata.load(out, verify=True)
        assert ds.num_transitions == STEPS
        return
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(big_npz) in lines[0] and "memory" in lines[0], done.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folder left either


def test_memory_error_while_writing_is_one_line_naming_the_source(tmp_path: Path) -> None:
    """A MemoryError outside the readers' own guard (here from the statistics the store writer
    computes) is the same one line and exit 2, and the half-written store is removed."""
    child = (
        "import sys, ildata.stats\n"
        "def add(self, values):\n"
        "    raise MemoryError\n"
        "ildata.stats.FeatureStats.add = add\n"
        "from ildata.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    source, out = LEGACY / "n1-cartpole-v1-final.npz", tmp_path / "store"
    done = subprocess.run([sys.executable, "-c", child, "convert", str(source), str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ildata: error: {source}: not enough memory to finish (this process reached its memory limit)"
    ]
    assert [p.name for p in tmp_path.iterdir()] == []


# The child: RLIMIT_AS set to what it already uses (all imports done) plus argv[1] bytes, then the
# ildata CLI on the rest of argv; what a process with little address space left sees.
LIMITED_FROM_HERE = r"""
import resource, sys
import ildata.cli.commands.inspect, ildata.store, rich.console, rich.table
from ildata.cli import main
used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + int(sys.argv[1]),) * 2)
sys.exit(main(sys.argv[2:]))
"""


# The child: `ildata.convert` under RLIMIT_AS `limit`, printing the error that stopped it, if any.
CONVERT_IN_PYTHON = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]),) * 2)
import ildata
try:
    ildata.convert(sys.argv[2], sys.argv[3])
except ildata.DataError as exc:
    print(f"{exc.subject}: {exc}")
"""


def test_a_store_bigger_than_the_address_space_left_is_converted_and_kept(baseline: int, big_npz: Path, tmp_path: Path) -> None:
    """Room to write the store a shard at a time but not to map it whole: convert checks it one
    shard at a time and keeps it (before, its final `load` failed and left the store behind).
    `ildata.convert`, which returns the opened store, keeps it too and says why it cannot open it."""
    limit = baseline + 600_000_000
    out = tmp_path / "store"
    converted = _cli(limit, "convert", str(big_npz), str(out))
    assert converted.returncode == 0, converted.stderr
    assert f"{TRAJECTORIES} episodes, {STEPS} transitions" in converted.stderr
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) > 600_000_000  # more than the room left
    assert [p.name for p in tmp_path.iterdir()] == ["store"]

    ds = ildata.load(out)  # here, with room to map it
    assert len(ds) == TRAJECTORIES and ds.num_transitions == STEPS
    assert ds.lengths.tolist() == [STEPS // TRAJECTORIES] * TRAJECTORIES

    in_python = tmp_path / "in-python"
    done = subprocess.run(
        [sys.executable, "-c", CONVERT_IN_PYTHON, str(limit), str(big_npz), str(in_python)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    if done.stdout:  # this process had no room to open what it wrote (how much room is left varies)
        assert done.stdout.startswith(f"{in_python}: converted and checked one shard at a time"), done.stdout
        assert "not enough memory to map the shard" in done.stdout
    assert ildata.load(in_python).fingerprint == ds.fingerprint


def test_no_room_to_map_a_shard_is_one_line_saying_so(big_npz: Path, tmp_path: Path) -> None:
    """Opening a store with too little address space left names the shard and the lack of memory,
    not 'corrupted data'."""
    out = tmp_path / "store"
    ildata.convert(big_npz, out, shard_bytes=200_000_000)
    child = [sys.executable, "-c", LIMITED_FROM_HERE, str(300_000_000), "inspect", str(out)]
    done = subprocess.run(child, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"ildata: error: {out / 'data'}/shard-") and "not enough memory to map the shard" in lines[0], lines[0]
    assert "corrupted" not in lines[0]


def test_the_shard_at_a_time_check_finds_counts_that_disagree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What convert falls back on when it cannot map the whole store: it passes a sound
    multi-shard store and names the counts when info.json's transitions differ from the shards'."""
    from ildata.store import layout
    from ildata.store.shards import check_shards_one_at_a_time

    monkeypatch.setattr(layout, "SHARD_BYTES", 300)
    store = ildata.save(make_episodes([5, 7, 3, 9, 4]), tmp_path / "store").path
    assert len(ildata.load(store).info["data_files"]) > 2
    check_shards_one_at_a_time(store)

    info_path = store / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["totals"]["transitions"] += 1
    info["totals"]["observations"] += 1
    info_path.write_text(json.dumps(info))
    with pytest.raises(ildata.DataError, match=r"the transitions counted disagree \(the shards: 28, meta/info.json: 29, meta/episodes"):
        check_shards_one_at_a_time(store)
