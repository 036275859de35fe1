"""Converting and inspecting a dataset larger than the memory the process may use.

Usage: python benchmarks/larger_than_memory.py [--dataset-gb 1.5] [--limit-mb 500] [--shard-mb 32]
       [--chunk-mb 16] [--work DIR] [--results benchmarks/RESULTS-large.md]

1. Writes (streaming, in this process) a synthetic imitation HF directory (`save_to_disk`
   layout: Arrow stream shards with one row per trajectory) of DATASET_GB: obs float32[64],
   acts float32[8], rewards, infos.
2. In a child process whose memory is limited with RLIMIT_DATA, runs `ildata.convert` (read
   piece by piece, written as a multi-shard store), then `inspect`'s report, `ds.stats()` of a
   subset, `ds.verify()` and a pass over `ds.transition_chunks()`.
3. Reports the child's peak resident memory (ru_maxrss) and its peak private memory (RssAnon,
   sampled) against the dataset size and the limit; writes RESULTS_FILE.

Why RLIMIT_DATA: since Linux 4.7 it bounds a process's private writable mappings (heap, anonymous
mmaps: every copy numpy or Arrow makes), but not file-backed mappings. A memory-mapped store is
file-backed page cache that the kernel can drop at any time, so it is not "memory the process
uses"; RLIMIT_AS would count every mapped shard and make reading any store larger than the limit
impossible by construction, and RLIMIT_RSS is not enforced by Linux. A cgroup memory limit would
also count page cache and needs privileges. An allocation past the limit raises MemoryError, so
success means the copies never exceeded it. ru_maxrss includes mapped file pages that were
touched (e.g. while verify reads every value), so it can exceed the limit without any private
memory doing so: the sampled RssAnon peak is the number that shows the bound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

OBS_DIM, ACT_DIM, EPISODE_STEPS = 64, 8, 1000
STEP_BYTES = 4 * (OBS_DIM + ACT_DIM + 1)  # obs (T+1 per episode, ~T) + acts + rews
EPISODES_PER_FILE = 100


def write_hf_source(folder: Path, total_bytes: int) -> dict[str, int]:
    """An imitation `save_to_disk` folder of about `total_bytes`, one file at a time."""
    import pyarrow as pa

    folder.mkdir(parents=True)
    episodes = max(1, total_bytes // (STEP_BYTES * EPISODE_STEPS))
    rng = np.random.default_rng(0)
    names, written, steps = [], 0, 0
    n_files = -(-episodes // EPISODES_PER_FILE)
    for f in range(n_files):
        count = min(EPISODES_PER_FILE, episodes - written)
        lengths = np.full(count, EPISODE_STEPS, dtype=np.int32)
        obs = rng.standard_normal((count * (EPISODE_STEPS + 1), OBS_DIM), dtype=np.float32)
        acts = rng.uniform(-1, 1, (count * EPISODE_STEPS, ACT_DIM)).astype(np.float32)
        rews = rng.standard_normal(count * EPISODE_STEPS, dtype=np.float32)

        def per_trajectory(values: pa.Array, steps_each: np.ndarray) -> pa.Array:
            offsets = np.concatenate([[0], np.cumsum(steps_each)]).astype(np.int32)
            return pa.ListArray.from_arrays(pa.array(offsets), values)

        table = pa.table(
            {
                "obs": per_trajectory(pa.FixedSizeListArray.from_arrays(pa.array(obs.reshape(-1)), OBS_DIM), lengths + 1),
                "acts": per_trajectory(pa.FixedSizeListArray.from_arrays(pa.array(acts.reshape(-1)), ACT_DIM), lengths),
                "infos": per_trajectory(pa.array(["{}"] * int(lengths.sum()), type=pa.string()), lengths),
                "terminal": pa.array(np.ones(count, dtype=bool)),
                "rews": per_trajectory(pa.array(rews), lengths),
            }
        )
        name = f"data-{f:05d}-of-{n_files:05d}.arrow"
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=10)  # datasets writes many small record batches
        names.append(name)
        written += count
        steps += int(lengths.sum())
        del table, obs, acts, rews
    (folder / "dataset_info.json").write_text(json.dumps({"description": "synthetic", "features": {}}))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names]}))
    return {"episodes": written, "steps": steps, "bytes": sum((folder / n).stat().st_size for n in names)}


def status_mb(key: str) -> float:
    """A /proc/self/status field: RssAnon (private resident memory), VmData (what RLIMIT_DATA counts)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> None:
    """Runs under the memory limit: convert, then inspect, stats, verify, transitions."""
    peak = {"anon": 0.0, "data": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["anon"] = max(peak["anon"], status_mb("RssAnon"))
            peak["data"] = max(peak["data"], status_mb("VmData"))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    import ildata
    from ildata import formats
    from ildata.report import report

    formats.CHUNK_BYTES = int(args.chunk_mb * 1e6)
    timings: dict[str, float] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - start
        print(f"  {name:<28} {timings[name]:7.1f} s   peak RssAnon {peak['anon']:6.0f} MB, VmData {peak['data']:6.0f} MB", flush=True)
        return result

    store = Path(args.work) / "store"
    ds = timed("convert", lambda: ildata.convert(Path(args.work) / "source", store, shard_bytes=int(args.shard_mb * 1e6)))
    ds = timed("load", lambda: ildata.load(store))
    timed("ds.stats() (meta/stats.json)", ds.stats)
    timed("ds.stats() of a subset", lambda: ds[::3].stats())  # computed shard by shard
    problems = timed("ds.verify()", ds.verify)
    checksum = timed("transition_chunks() pass", lambda: sum(float(tr.obs.sum(dtype=np.float64)) for tr in ds.transition_chunks()))
    timed("inspect report", lambda: report(store))  # `ildata inspect`: shard by shard too
    done.set()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "timings_s": timings,
        "maxrss_mb": usage.ru_maxrss / 1024,
        "peak_rss_anon_mb": max(peak["anon"], status_mb("RssAnon")),
        "peak_vm_data_mb": max(peak["data"], status_mb("VmData")),
        "store_bytes": sum(f.stat().st_size for f in store.rglob("*") if f.is_file()),
        "shards": len(ds.meta.data_files),
        "transitions": ds.num_transitions,
        "verify_problems": problems,
        "checksum": checksum,
    }
    Path(args.work, "child.json").write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-gb", type=float, default=1.5, help="source size (default 1.5)")
    parser.add_argument("--limit-mb", type=float, default=500, help="RLIMIT_DATA of the child (default 500)")
    parser.add_argument("--shard-mb", type=float, default=32, help="store shard size (default 32)")
    parser.add_argument("--chunk-mb", type=float, default=16, help="source chunk size (default 16)")
    parser.add_argument("--work", help="working folder (default: a temporary one under /tmp, removed after)")
    parser.add_argument("--results", default=str(Path(__file__).with_name("RESULTS-large.md")))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    total = int(args.dataset_gb * 1e9)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ildata-large-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    # Source + store (which keeps obs twice: ~1.9x the source) + slack.
    needed = int(total * 3.2)
    free = shutil.disk_usage(work).free
    if free < needed:
        sys.exit(f"not enough disk at {work}: {free / 1e9:.1f} GB free, {needed / 1e9:.1f} GB needed (lower --dataset-gb)")
    try:
        summary = work / "source.json"
        if summary.is_file():  # a --work folder from an earlier run: its source is reused
            source = json.loads(summary.read_text())
        else:
            print(f"writing a {args.dataset_gb} GB imitation HF source in {work} ...", flush=True)
            source = write_hf_source(work / "source", total)
            summary.write_text(json.dumps(source))
        shutil.rmtree(work / "store", ignore_errors=True)
        print(f"  {source['episodes']} episodes, {source['steps']:,} steps, {source['bytes'] / 1e9:.2f} GB", flush=True)
        limit = int(args.limit_mb * 1e6)

        def limit_memory() -> None:  # in the child, before Python starts
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        # RLIMIT_DATA counts address space reserved, not only used: jemalloc (Arrow's default pool)
        # and glibc's per-thread malloc arenas (64 MB each) reserve ahead, so both are tamed.
        env = {
            **os.environ,
            "ARROW_DEFAULT_MEMORY_POOL": "system",
            "MALLOC_ARENA_MAX": "2",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        command = [
            sys.executable,
            __file__,
            "--child",
            "--work",
            str(work),
            "--shard-mb",
            str(args.shard_mb),
            "--chunk-mb",
            str(args.chunk_mb),
        ]
        print(f"child limited to {args.limit_mb:.0f} MB (RLIMIT_DATA):", flush=True)
        started = time.perf_counter()
        result = subprocess.run(command, preexec_fn=limit_memory, env=env, check=False)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"the limited child failed (exit {result.returncode})")
        out = json.loads((work / "child.json").read_text())
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    ratio = source["bytes"] / limit
    lines = [
        "# Larger than memory (benchmarks/larger_than_memory.py)",
        "",
        f"Command: `python benchmarks/larger_than_memory.py --dataset-gb {args.dataset_gb} --limit-mb {args.limit_mb:.0f} "
        f"--shard-mb {args.shard_mb:.0f} --chunk-mb {args.chunk_mb:.0f}` ({os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}).",
        "",
        "| | |",
        "|---|---|",
        f"| source (imitation HF dir) | {source['bytes'] / 1e9:.2f} GB, {source['episodes']} episodes, {source['steps']:,} steps |",
        f"| store written | {out['store_bytes'] / 1e9:.2f} GB in {out['shards']} shards |",
        f"| memory limit (RLIMIT_DATA) | {limit / 1e6:.0f} MB: source is {ratio:.1f}x the limit, store {out['store_bytes'] / limit:.1f}x |",
        f"| peak private memory (RssAnon, sampled) | {out['peak_rss_anon_mb']:.0f} MB |",
        f"| peak data segment (VmData, sampled: what the limit counts, reserved included) | {out['peak_vm_data_mb']:.0f} MB |",
        f"| peak resident memory (ru_maxrss, incl. mapped file pages) | {out['maxrss_mb']:.0f} MB |",
        *(
            f"| {name} | {'over the limit (MemoryError)' if seconds != seconds else f'{seconds:.1f} s'} |"
            for name, seconds in out["timings_s"].items()
        ),
        f"| verify | {'OK' if not out['verify_problems'] else out['verify_problems']} |",
        f"| child wall time | {wall:.1f} s |",
        "",
        "ru_maxrss counts the pages of the memory-mapped shards that were touched (verify and the",
        "transitions pass read every value); those are page cache the kernel can drop, not copies.",
        "The limit holds because everything, `ildata inspect`'s report included, is done shard by",
        "shard and chunk by chunk.",
        "",
    ]
    Path(args.results).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
