"""The package's imports point one way: commands (agileir.cli) -> subsystems -> models / quality / io.

Every import in every module counts, those inside functions too (the lazy ones are what keep the deploy install
light, and they are still dependencies). Folder nodes are the sub-packages of agileir (agileir.runtime.tensorrt
counts as part of agileir.runtime) and the modules at its root; file nodes are the modules themselves.
"""
from __future__ import annotations

import ast
from pathlib import Path

import agileir

PACKAGE = Path(agileir.__file__).resolve().parent

# A folder imports only folders of a lower rank (siblings of one rank are independent of each other).
RANKS = {
    "io": 0,
    "quality": 1, "models": 1,
    "upscale": 2, "plugins": 2, "export": 2,
    "runtime": 3,
    "calibration": 4, "training": 4,
    "cluster": 5, "deploy": 5,
    "cli": 6,
    "api": 7, "__main__": 7,
}
ROOT_MODULES_ALLOWED = {"__init__", "__main__", "api"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import runtime`
    return {m for m in found if m == "agileir" or m.startswith("agileir.")}


def _node(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    candidate = PACKAGE / parts[1]
    return parts[1] if candidate.is_dir() or (PACKAGE / f"{parts[1]}.py").is_file() else None


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        src = _node(_module_name(path))
        if src is None:
            continue
        for target in map(_node, _imports(path)):
            if target is not None and target != src:
                graph.setdefault(src, set()).add(target)
    return graph


def file_graph() -> dict[str, set[str]]:
    """Module -> the agileir modules it imports (`from .x import name` counts as x unless name is a module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {m for m in _imports(path) if m in modules and m != name}
        # `from .pkg import mod` adds both pkg and pkg.mod: a package's __init__ is an edge only when named alone
        targets = {m for m in targets if not any(t.startswith(m + ".") for t in targets) or m == "agileir"}
        targets.discard("agileir")
        graph[name] = targets - {n for n in targets if name.startswith(n + ".")}  # a package's own __init__
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_every_folder_has_a_rank_and_a_purpose():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders <= set(RANKS), f"folders without a rank: {sorted(folders - set(RANKS))}"
    for folder in folders:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert doc, f"agileir/{folder}/__init__.py has no one-line purpose"


def test_package_root_holds_layers_not_loose_modules():
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose <= ROOT_MODULES_ALLOWED, f"loose modules at the package root: {sorted(loose - ROOT_MODULES_ALLOWED)}"


def test_imports_point_down():
    upward = [(src, dst) for src, targets in import_graph().items() for dst in targets
              if RANKS.get(dst, -1) >= RANKS.get(src, 99)]
    assert not upward, "imports that do not point down: " + ", ".join(f"{s} -> {d}" for s, d in sorted(upward))


def test_no_import_cycle_between_folders():
    graph = import_graph()
    assert {"cli", "runtime", "export", "calibration", "models", "upscale", "io"} <= set(graph) | {
        t for ts in graph.values() for t in ts}
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_no_import_cycle_between_files():
    cycle = _cycle(file_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_only_the_cli_and_the_entry_points_import_the_cli():
    importers = sorted(src for src, targets in import_graph().items() if "cli" in targets)
    assert importers == ["__main__"], f"modules that import agileir.cli: {importers}"  # python -m agileir


def test_the_detector_sees_a_cycle_and_an_upward_arrow():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
    assert RANKS["io"] < RANKS["models"] < RANKS["runtime"] < RANKS["cli"]
