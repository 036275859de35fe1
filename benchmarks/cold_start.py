"""Cold start: fresh-process wall time and peak memory of `import ildata`, `ildata.load(STORE)`
and `ildata inspect STORE`, against `python -c pass` measured in the same run; plus what each
imports. Run from the repository root: `python benchmarks/cold_start.py [STORE] [--repeat N]`.

Every case is a new interpreter (nothing cached in-process); the median of N runs is printed.
The OS page cache is warm after the first run, which is the common case for a dataset in use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

HEAVY = ("pandas", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.compute", "polars", "gymnasium", "rich", "huggingface_hub", "ildata.hub")

# Each snippet ends by reporting its peak RSS and loaded modules on a pipe (stdout belongs to the CLI).
REPORT = (
    "import json, os, resource, sys\n"
    "with os.fdopen({fd}, 'w') as f: json.dump({{'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
    "'modules': sorted(sys.modules)}}, f)\n"
)


def cases(store: str) -> dict[str, str]:
    return {
        "python -c pass": "pass\n",
        "import ildata": "import ildata\n",
        "import numpy, pyarrow, pyarrow.ipc": "import numpy, pyarrow, pyarrow.ipc\n",  # the floor for any load
        "ildata.load(store)": f"import ildata\nildata.load({store!r})\n",
        # (the shipped stores may fail verification until regenerated: the full work is done either way)
        "ildata.load(store, verify=True)": f"import ildata\ntry:\n    ildata.load({store!r}, verify=True)\nexcept ildata.DataError:\n    pass\n",
        "load + transitions() + ds[0]": f"import ildata\nds = ildata.load({store!r})\nds.transitions(); ds[0]\n",
        "ildata inspect store": f"import sys\nfrom ildata.cli import main\nsys.argv = ['ildata', 'inspect', {store!r}]\nmain(sys.argv[1:])\n",
    }


def run_once(code: str) -> tuple[float, dict[str, Any]]:
    import os

    read, write = os.pipe()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code + REPORT.format(fd=write)], pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    os.close(write)
    with os.fdopen(read) as f:
        report = f.read()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {code}\n{err.decode()}")
    return elapsed, json.loads(report)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", nargs="?", default="datasets/cartpole-expert")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, tuple[float, float, dict[str, Any]]] = {}
    for name, code in cases(args.store).items():
        times: list[float] = []
        report: dict[str, Any] = {}
        for _ in range(args.repeat):
            elapsed, report = run_once(code)
            times.append(elapsed)
        results[name] = (statistics.median(times), min(times), report)
    base = results["python -c pass"][0]
    base_ildata = results["import ildata"][0]
    print(
        f"{'case':34} {'median s':>9} {'min s':>7} {'- pass':>8} {'- import ildata':>16} {'peak MB':>8} {'modules':>8}  heavy modules loaded"
    )
    for name, (median, best, report) in results.items():
        heavy = ",".join(m for m in HEAVY if m in report.get("modules", ())) or "-"
        print(
            f"{name:34} {median:9.3f} {best:7.3f} {median - base:8.3f} {median - base_ildata:16.3f} "
            f"{report.get('rss_mb', 0):8.1f} {len(report.get('modules', ())):8d}  {heavy}"
        )


if __name__ == "__main__":
    main()
