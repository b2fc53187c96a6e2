"""Size limits that keep the code readable: no module over 400 lines, no class over 150 and no function over 80
anywhere in the package, and no library function over 8 parameters - options travel as objects (RunnerSpec, TilingOptions, ExportRequest ...), not as
long keyword lists. Exempt from the parameter count: agileir/cli and click commands elsewhere (one parameter
per option, parsed into objects at once), and callbacks whose parameter list an outside API dictates."""
from __future__ import annotations

import ast
from pathlib import Path

import agileir

PACKAGE = Path(agileir.__file__).resolve().parent
MAX_LINES, MAX_PARAMS = 80, 8
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 150
# tensorrt.plugin binds an AOT implementation's parameters by name: its inputs, attributes, outputs, tactic
DICTATED_SIGNATURES = {("agileir/runtime/tensorrt/qdp.py", "gswa_aot_impl")}


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(PACKAGE.parent), node


def _classes():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                yield path.relative_to(PACKAGE.parent), node


def _is_click_command(fn: ast.FunctionDef) -> bool:
    return any("click" in ast.unparse(d) or ast.unparse(d).endswith("_options") for d in fn.decorator_list)


def _params(fn: ast.FunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return len([n for n in names if n not in ("self", "cls")])


def test_no_function_over_80_lines():
    long = [f"{path}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)" for path, fn in _functions()
            if fn.end_lineno - fn.lineno + 1 > MAX_LINES]
    assert not long, "functions over 80 lines: " + "; ".join(long)


def test_no_library_function_over_8_parameters():
    wide = [f"{path}:{fn.lineno} {fn.name} ({_params(fn)} parameters)" for path, fn in _functions()
            if path.parts[1] != "cli" and not _is_click_command(fn) and (str(path), fn.name) not in DICTATED_SIGNATURES
            and _params(fn) > MAX_PARAMS]
    assert not wide, "library functions over 8 parameters: " + "; ".join(wide)


def test_no_module_over_400_lines():
    long = [f"{path.relative_to(PACKAGE.parent)} ({n} lines)" for path in sorted(PACKAGE.rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "modules over 400 lines: " + "; ".join(long)


def test_no_class_over_150_lines():
    long = [f"{path}:{cls.lineno} {cls.name} ({cls.end_lineno - cls.lineno + 1} lines)" for path, cls in _classes()
            if cls.end_lineno - cls.lineno + 1 > MAX_CLASS_LINES]
    assert not long, "classes over 150 lines: " + "; ".join(long)


def test_the_limits_can_fail():
    tree = ast.parse("def f(a, b, c, d, e, f, g, h, i):\n" + "    x = 1\n" * 81)
    fn = tree.body[0]
    assert _params(fn) == 9 and fn.end_lineno - fn.lineno + 1 == 82
    cls = ast.parse("class C:\n" + "    x = 1\n" * 150).body[0]
    assert cls.end_lineno - cls.lineno + 1 == 151 > MAX_CLASS_LINES
