"""The package's imports point one way: commands (agileir.cli) -> subsystems -> models / metrics / io.

Every import in every module counts, those inside functions too (the lazy ones are what keep the base install
light, and they are still dependencies). Nodes are the sub-packages of agileir (agileir.runtime.tensorrt
counts as part of agileir.runtime) and the modules at its root.
"""
from __future__ import annotations

import ast
from pathlib import Path

import agileir

PACKAGE = Path(agileir.__file__).resolve().parent


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


def test_no_import_cycle_between_folders():
    graph = import_graph()
    assert {"cli", "runtime", "export", "calibration", "models"} <= set(graph) | {t for ts in graph.values() for t in ts}
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_only_the_cli_imports_the_cli():
    importers = sorted(src for src, targets in import_graph().items() if "cli" in targets)
    assert importers == ["__main__"], f"subsystems import agileir.cli: {importers}"  # python -m agileir


def test_models_and_io_import_no_subsystem():
    graph = import_graph()
    subsystems = {"cli", "export", "calibration", "runtime", "plugins", "training"}
    for low in ("models", "metrics", "imageio", "imresize", "tiling", "atomic"):
        assert not graph.get(low, set()) & subsystems, (low, graph.get(low))


def test_the_detector_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
