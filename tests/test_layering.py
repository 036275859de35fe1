"""The data layer works without the ML stack: importing every `ildata` module loads none of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "d3rlpy", "stable_baselines3", "minari", "h5py", "algos")


def test_ildata_modules_import_no_ml_stack():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "ildata").rglob("*.py")
        if p.name != "__init__.py" or p.parent != ROOT / "ildata"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.__init__'))\n"
        "import ildata.cli; ildata.cli.build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"ildata imports {done.stdout.strip()} at module level"


def test_algos_never_imported_by_ildata_source():
    for path in (ROOT / "ildata").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("import algos", "from algos")) or line.startswith((" ", "\t")), f"{path}: {line}"
