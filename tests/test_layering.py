"""The data layer works without the ML stack: importing every `ildata` module loads none of it,
and no two `ildata` modules import each other (directly or round a loop) at module level."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: top level, and inside top-level try/if
    blocks (except `if TYPE_CHECKING:`); not those inside functions or classes."""
    stack: list[ast.stmt] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            body = node.orelse if _is_type_checking(node.test) else [*node.body, *node.orelse]
            stack.extend(reversed(body))
        elif isinstance(node, ast.Try):
            stack.extend(reversed([*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody]))


def import_graph() -> dict[str, set[str]]:
    """ildata module -> the ildata modules its module-level imports execute.

    `from P import n` imports the submodule P.n when there is one; importing a module also runs
    its parent packages, except the importer's own (a package's submodules run inside it) unless
    the import names that package itself."""
    paths = {_module_name(p): p for p in (ROOT / "ildata").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                found = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            for target in found:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    module = ".".join(parts[:i])
                    explicit = i == len(parts)
                    if module in paths and module != name and (explicit or module not in own_ancestors):
                        targets.add(module)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_cycle_finder_sees_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_ildata_modules():
    graph = import_graph()
    assert "ildata.episode" in graph["ildata.fsutil"]  # the graph sees real imports
    assert find_cycles(graph) == []
