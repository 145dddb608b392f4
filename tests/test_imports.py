"""The layers of src/arena_seg: every module imports in a fresh interpreter, no module imports itself through
others (imports inside functions count too), ``bench`` does not reach into ``commands``, and the library never
imports monailabel or the app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import arena_seg

PACKAGE_DIR = Path(arena_seg.__file__).resolve().parent
ROOT = "arena_seg"


def _module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the package (in a wheel install, not the app and sample model shipped inside it)."""
    shipped = {PACKAGE_DIR / "_app", PACKAGE_DIR / "_sample"}
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if not shipped & set(p.parents)}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """arena_seg modules that ``name`` imports anywhere in its file (``from pkg import sub`` counts as pkg.sub)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                       for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_relative_and_lazy_imports():
    graph = _graph()
    assert "arena_seg.models.spec" in graph["arena_seg.models.checkpoint"]  # from .spec import ...
    assert "arena_seg.models.registry" in graph["arena_seg.models"]  # from . import registry
    assert "arena_seg.data.phantoms" in graph["arena_seg.serving"]  # inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


# bench/fewshot.py is being reworked (issue 14); its import of the helpers moves to arena_seg.data.pairing then
PENDING = {("arena_seg.bench.fewshot", "arena_seg.commands.common")}


def test_bench_does_not_import_commands():
    graph = _graph()
    reached = {(m, t) for m, targets in graph.items() if m.startswith(f"{ROOT}.bench")
               for t in targets if t.startswith(f"{ROOT}.commands")}
    assert reached <= PENDING


def test_library_does_not_import_monailabel_or_the_app():
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = {a.name if isinstance(node, ast.Import) else node.module or "" for a in node.names}
                # the app benchmark drives a server through monailabel's client, as Slicer does
                modules -= {"monailabel.client"}
                assert not {m.split(".")[0] for m in modules} & {"monailabel", "lib", "main"}, name


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(_modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
