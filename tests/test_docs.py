"""The docs are a reference that cannot drift: README is a short front door whose commands and Python example run,
every measurement table in docs/ equals its bench JSON, quoted tool output matches the code that prints it,
links resolve, and nothing reads as change history.

Conventions (docs/benchmarks.md repeats them for writers):

* `<!-- bench: bench/results/NAME.json -->` marks the next table as measured in that file. Every number in it,
  except in the first column (the row label) and inside `code`, must be a numeric leaf of the JSON rounded as
  displayed (units: `s`/`ms`, `MB`/`MiB`/`GiB`/`kB`, `%` convert). A row reads one record: its numbers lie
  under one JSON node (the row's anchor), the anchors of two rows never contain one another, rows follow the
  records' order in the file, and the k-th number of a column is the same field (path below the anchor) in
  every row. So an edited number fails, and so does a number moved to another row.
* `<!-- prints: agileir/path.py[, agileir/folder/] -->` marks the next fenced block as output of the tool: every
  line must be produced by string templates (f-string, `%`/`{}` format, literal) in those files, one template or
  one followed by another (a prefix), where a field may stand for a value (one token, or a list of numbers) or
  for the output of templates again.
"""
from __future__ import annotations

import ast
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
BENCHMARKS = DOCS / "benchmarks.md"
RESULTS = REPO / "bench" / "results"
README_MAX_LINES = 250

BENCH_MARK = re.compile(r"^<!--\s*bench:\s*(\S+?)\s*-->")
NUMBER = re.compile(r"(?<![\w.\-−/])([-−]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?([eE][-+−]?\d+)?"
                    r"(?:\s?(%|ms|s|MiB|MB|GiB|GB|KiB|kB|×|dB))?(?![\w.])")
UNIT_FACTORS = {"": (1.0,), "×": (1.0,), "dB": (1.0,), "%": (1.0, 100.0), "s": (1.0, 1e-3), "ms": (1.0, 1e3),
                "MB": (1.0, 1e-6), "kB": (1.0, 1e-3), "GB": (1.0, 1e-9), "MiB": (1.0, 2.0 ** -20),
                "KiB": (1.0, 2.0 ** -10), "GiB": (1.0, 2.0 ** -30, 2.0 ** -10)}
HISTORY = re.compile(r"\(earlier\)|\bearlier (?:run|rows?|version)s?\b|\bissue\s*#?\d+|(?<![\w&/])#\d+\b"
                     r"|\bbefore this change\b", re.I)


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# ---------------------------------------------------------------- README: size, the two commands, the example

def readme_command(text: str, number: int) -> str:
    """Command N of README: the line after '# N) ' and its continuation lines, up to the closing fence."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"# {number}) "):
            out = []
            for follow in lines[i + 1:]:
                if follow.startswith("```"):
                    break
                out.append(follow)
                if not follow.endswith("\\"):
                    break
            return "\n".join(out)
    return ""


def test_readme_is_short_and_has_both_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, f"README.md has {len(text.splitlines())} lines"
    main, tests = readme_command(text, 1), readme_command(text, 2)
    assert "agileir-export" in main and "agileir-infer" in main, main
    assert "pip install" in tests and "python -m pytest" in tests, tests
    for command in (main, tests):
        assert "\n" in command and not command.endswith("\\"), "commands are written on continued lines"
        assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0, command


def test_ci_runs_readme_command_2_as_written(tmp_path):
    ci = REPO / ".ci" / "run"
    printed = subprocess.run(["bash", str(ci), "--print"], capture_output=True, text=True, check=True).stdout
    assert printed.rstrip("\n") == readme_command(README.read_text(), 2)
    fake = tmp_path / "repo"  # no command: CI fails; a failing command's status (pytest's 5: no tests) is CI's
    (fake / ".ci").mkdir(parents=True)
    (fake / ".ci" / "run").write_bytes(ci.read_bytes())
    (fake / "README.md").write_text("# agileir\n")
    assert subprocess.run(["bash", str(fake / ".ci" / "run")], capture_output=True).returncode == 1
    (fake / "README.md").write_text("```bash\n# 2) tests\necho testing && \\\n  exit 5\n```\n")
    run = subprocess.run(["bash", str(fake / ".ci" / "run")], capture_output=True, text=True)
    assert run.returncode == 5 and "testing" in run.stdout


def test_readme_python_example_runs_verbatim(tmp_path):
    """README's Python example, as written, in a working directory beside ../shared (as README command 1 runs)
    that holds what the example names: a photo.png and a folder frames/ (real LR images from Set5 x4)."""
    shared = REPO.parent / "shared"
    lr = shared / "data" / "benchmarks" / "Set5" / "LR_bicubic" / "X4"
    if not lr.is_dir():
        pytest.skip(f"{lr} not found (../shared beside the checkout)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text().split("## Python API", 1)[-1], re.S)
    assert blocks, "README.md has no python example"
    work = tmp_path / "checkout"
    (work / "frames").mkdir(parents=True)
    (tmp_path / "shared").symlink_to(shared)
    shutil.copy(lr / "butterflyx4.png", work / "photo.png")
    for name in ("birdx4.png", "headx4.png"):
        shutil.copy(lr / name, work / "frames" / name)
    run = subprocess.run([sys.executable, "-c", blocks[0]], cwd=work, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]


# ---------------------------------------------------------------- links and history

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: p.name)
def test_doc_links_resolve(doc):
    missing = [target for target in LINK.findall(doc.read_text())
               if not re.match(r"[a-z]+:", target) and not target.startswith("#")
               and not (doc.parent / target.split("#", 1)[0]).exists()]
    assert not missing, f"{doc.name} links to missing files: {missing}"


def test_readme_links_every_doc():
    linked = {Path(t.split("#", 1)[0]).name for t in LINK.findall(README.read_text())}
    assert not [d.name for d in DOCS.glob("*.md") if d.name not in linked], "README's docs table misses a doc"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: p.name)
def test_no_change_history(doc):
    hits = [(n, line.strip()) for n, line in enumerate(doc.read_text().splitlines(), 1) if HISTORY.search(line)]
    assert not hits, f"{doc.name}: change history or issue numbers: {hits}"


# ---------------------------------------------------------------- measurement tables equal their JSON

def markdown_tables(text: str, marker: re.Pattern) -> list[tuple[int, str, list[list[str]]]]:
    """(line number, marker argument or '', rows of cells) for every table; a marker applies to the next table
    when only prose lies between them."""
    lines = text.splitlines()
    tables, pending, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        found = marker.match(line)
        if found:
            pending = found.group(1)
        elif line.startswith("#"):
            pending = None
        elif line.startswith("|"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            rows = [split_row(r) for r in lines[start:i]]
            tables.append((start + 1, pending or "", [r for n, r in enumerate(rows) if n != 1]))
            pending = None
            continue
        i += 1
    return tables


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def numbers_in(cell: str) -> list[tuple[tuple[int, int], float, int, str, str]]:
    """((segment, index), value, decimals, unit, as written) for each number; segments are split by '/'."""
    cell = re.sub(r"`[^`]*`", "", cell)
    out = []
    for s, segment in enumerate(re.split(r"\s/\s", cell)):
        for k, m in enumerate(NUMBER.finditer(segment)):
            sign, whole, frac, exp, unit = m.groups()
            text = whole.replace(",", "") + (frac or "") + (exp or "").replace("−", "-")
            value = float(text) * (-1 if sign else 1)
            decimals = len(frac) - 1 if frac else 0
            if exp:
                decimals -= int(exp[1:].replace("−", "-"))
            out.append(((s, k), value, decimals, unit or "", m.group(0)))
    return out


def numeric_leaves(node, path=()) -> list[tuple[tuple, float]]:
    """(path, value) of every finite number; a path step is (position, key), so paths sort in file order."""
    if isinstance(node, dict):
        return [leaf for i, (key, value) in enumerate(node.items())
                for leaf in numeric_leaves(value, path + ((i, str(key)),))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in numeric_leaves(value, path + ((i, i),))]
    if isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node):
        return [(path, float(node))]
    return []


def matches(value: float, decimals: int, unit: str, leaf: float) -> bool:
    tolerance = 0.5 * 10.0 ** -decimals * (1 + 1e-6) + 1e-12
    return any(abs(leaf * f - value) <= tolerance for f in UNIT_FACTORS[unit])


def nested(a: tuple, b: tuple) -> bool:
    return a[:len(b)] == b or b[:len(a)] == a


def check_table(data, rows: list[list[str]]) -> list[str]:
    """Why the table does not equal the JSON ([] when it does): see the module docstring."""
    leaves = numeric_leaves(data)
    problems, per_row = [], []
    for row in rows[1:]:
        items = []
        for c, cell in enumerate(row[1:], 1):
            for key, value, decimals, unit, written in numbers_in(cell):
                paths = [p for p, leaf in leaves if matches(value, decimals, unit, leaf)]
                if not paths:
                    problems.append(f"row {row[0]!r}: {written!r} is not in the JSON")
                items.append(((c,) + key, written, paths))
        per_row.append((row[0], items))
    if problems:
        return problems
    options = []  # per row: [(anchor, {column key: set of relative paths})]
    for label, items in per_row:
        if not items:
            options.append([((), {})])
            continue
        anchors = {p[:n] for p in items[0][2] for n in range(len(p))}
        row_options = []
        for anchor in sorted(anchors, key=len, reverse=True):
            rel = {key: {tuple(step[1] for step in p[len(anchor):]) for p in paths if p[:len(anchor)] == anchor}
                   for key, _, paths in items}
            if all(rel.values()):
                row_options.append((anchor, rel))
        if not row_options:
            return [f"row {label!r}: its numbers do not lie under one JSON node"]
        options.append(row_options)
    if not assign(options, 0, [], {}):
        return ["the rows do not read one record each with the same field per column "
                "(a number edited or moved between rows?)"]
    return []


def assign(options, r: int, anchors: list, fields: dict) -> bool:
    """Pick an anchor per row: rows in the JSON's order, no anchor inside another, one field per column."""
    if r == len(options):
        return True
    previous = next((a for a in reversed(anchors) if a is not None), None)
    for anchor, rel in options[r]:
        if rel and any(nested(anchor, other) for other in anchors if other is not None):
            continue
        if rel and previous is not None and anchor < previous:
            continue
        narrowed = dict(fields)
        for key, paths in rel.items():
            narrowed[key] = fields[key] & paths if key in fields else paths
        if all(narrowed.values()) and assign(options, r + 1, anchors + [anchor if rel else None], narrowed):
            return True
    return False


def marked_tables():
    out = []
    for doc in sorted(DOCS.glob("*.md")):
        for line, source, rows in markdown_tables(doc.read_text(), BENCH_MARK):
            if source:
                out.append(pytest.param(doc, line, source, rows, id=f"{doc.name}:{line}"))
    return out


@pytest.mark.parametrize("doc, line, source, rows", marked_tables())
def test_measurement_table_equals_its_json(doc, line, source, rows):
    path = REPO / source
    assert path.is_file(), f"{doc.name}:{line} names {source}, which does not exist"
    problems = check_table(json.loads(path.read_text()), rows)
    assert not problems, f"{doc.name}:{line} vs {source}: " + "; ".join(problems)


def test_every_benchmarks_table_names_its_json_with_date_machine_and_command():
    text = BENCHMARKS.read_text()
    tables = markdown_tables(text, BENCH_MARK)
    assert tables and all(source for _, source, _ in tables), \
        [line for line, source, _ in tables if not source]
    sections = re.split(r"\n(?=## )", text)
    for section in sections:
        if re.search(BENCH_MARK.pattern, section, re.M):
            head = section.split("<!--", 1)[0]
            assert re.search(r"\b20\d\d-\d\d-\d\d\b", head), f"no date in: {head[:80]!r}"
            assert re.search(r"[Mm]achine:", head) and re.search(r"[Cc]ommand: `", head), head[:200]


def test_every_bench_json_has_a_table():
    named = {source for doc in DOCS.glob("*.md") for _, source, _ in markdown_tables(doc.read_text(), BENCH_MARK)}
    missing = [p.name for p in sorted(RESULTS.glob("*.json")) if f"bench/results/{p.name}" not in named]
    assert not missing, f"bench JSON without a table in docs/benchmarks.md: {missing}"


def mutated(rows: list[list[str]], r: int, c: int, how) -> list[list[str]] | None:
    cell = rows[r][c]
    m = next((m for m in NUMBER.finditer(re.sub(r"`[^`]*`", lambda x: " " * len(x.group(0)), cell))), None)
    if m is None:
        return None
    new = [list(row) for row in rows]
    new[r][c] = cell[:m.start()] + how(m.group(0)) + cell[m.end():]
    return new


def bump_last_digit(written: str, step: int = 3) -> str:
    i = max(i for i, ch in enumerate(written) if ch.isdigit())
    return written[:i] + str((int(written[i]) + step) % 10) + written[i + 1:]


def edited(data) -> Callable[[str], str]:
    """An edit of a number into one that is no numeric leaf of `data` at all (in any unit): an edit that lands on
    another field's value of the same record (6.3 s -> 6.6 s where another stage took 6.6 s), or on 0.0 (which
    a value in the smaller unit rounds to), is indistinguishable from a correct cell by construction."""
    leaves = [leaf for _, leaf in numeric_leaves(data)]

    def edit(written: str) -> str:
        for step in range(3, 10):
            new = bump_last_digit(written, step)
            (_, value, decimals, unit, _), = numbers_in(new)
            if not any(matches(value, decimals, unit, leaf) for leaf in leaves):
                return new
        return bump_last_digit(written)
    return edit


@pytest.mark.parametrize("doc, line, source, rows", marked_tables())
def test_an_edited_or_moved_number_is_caught(doc, line, source, rows):
    """The check above can fail: every edited number and every swap of two rows' numbers is reported."""
    data = json.loads((REPO / source).read_text())
    for r in range(1, len(rows)):
        for c in range(1, len(rows[r])):
            new = mutated(rows, r, c, edited(data))
            if new is not None:
                assert check_table(data, new), f"edited {rows[r][c]!r} in row {rows[r][0]!r} went unnoticed"
    for c in range(1, len(rows[0])):
        cells = [(r, rows[r][c]) for r in range(1, len(rows)) if numbers_in(rows[r][c])]
        for (r1, a), (r2, b) in zip(cells, cells[1:]):
            if [n[1:4] for n in numbers_in(a)] != [n[1:4] for n in numbers_in(b)]:
                new = [list(row) for row in rows]
                new[r1][c], new[r2][c] = b, a
                assert check_table(data, new), f"swapping column {rows[0][c]!r} of rows {r1} and {r2} went unnoticed"


def test_table_check_on_a_known_json():
    data = {"results": [{"name": "a", "ms": 1234.5, "bytes": 89470092}, {"name": "b", "ms": 99.0, "bytes": 5}]}
    good = [["x", "ms", "MB"], ["a", "1.23 s", "89.5 MB"], ["b", "99 ms", "0.000005 MB"]]
    assert check_table(data, good) == []
    assert check_table(data, [good[0], ["a", "1.24 s", "89.5 MB"], good[2]])
    assert check_table(data, [good[0], ["a", "99 ms", "89.5 MB"], ["b", "1.23 s", "0.000005 MB"]])


# ---------------------------------------------------------------- quoted output equals what the code prints

def templates(source: Path) -> list[re.Pattern]:
    """Every string the module can print, as a regex whose groups are its fields."""
    out, tree = [], ast.parse(source.read_text())
    pieces = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    pieces |= {id(node.format_spec) for node in ast.walk(tree) if isinstance(node, ast.FormattedValue)}
    for node in ast.walk(tree):
        if id(node) in pieces:  # a piece of an f-string, not a string of its own
            continue
        if isinstance(node, ast.JoinedStr):
            pattern = "".join(re.escape(v.value) if isinstance(v, ast.Constant) else "(.+?)" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
            pattern = re.sub(r"\\\{[^{}]*?\\\}|%[-+ 0#]*\d*(?:\\\.\d+)?[sdfrieg]", "(.+?)", re.escape(node.value))
        else:
            continue
        if re.sub(r"\(\.\+\?\)", "", pattern).strip():
            out.append(re.compile(pattern))
    return out


def is_value(text: str) -> bool:
    """A field's text that needs no template: one token (a path, a number, a name) or a list without words."""
    return " " not in text.strip() or not re.search(r"[A-Za-z]{3,}", text)


def wordy(pattern: re.Pattern) -> bool:
    """Whether a template's own text (its fields left out) has a word in it."""
    return bool(re.search(r"[A-Za-z]{3,}", pattern.pattern.replace("(.+?)", "")))


def printed_by(line: str, patterns: list[re.Pattern], depth: int = 0, wordy_only: bool = False) -> bool:
    """Whether `line` is what the templates print: one template's output, or one's output followed by more
    (`prefix + text`); each field is a value or, again, templates' output. A template without a word of its own
    (f"{what} ...") takes for its fields only values or the output of templates that have words."""
    if depth > 6 or not line:
        return False
    usable = [(p, wordy(p)) for p in patterns if not wordy_only or wordy(p)]
    for pattern, has_words in usable:
        m = pattern.fullmatch(line)
        if m and all(is_value(g) or printed_by(g, patterns, depth + 1, not has_words) for g in m.groups()):
            return True
    for pattern, has_words in usable:
        m = pattern.match(line)
        if m and 0 < m.end() < len(line) and not pattern.pattern.endswith("(.+?)") \
                and all(is_value(g) or printed_by(g, patterns, depth + 1, not has_words) for g in m.groups()) \
                and printed_by(line[m.end():], patterns, depth + 1, wordy_only):
            return True
    return False


def sources_of(marker: str) -> list[Path]:
    """The files a prints marker names: files, or folders (every .py below them)."""
    paths = [REPO / name for name in re.split(r"[,\s]+", marker) if name]
    missing = [p for p in paths if not p.exists()]
    assert not missing, f"prints marker names missing paths: {missing}"
    return [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]


def quoted_outputs():
    out = []
    for doc in doc_files():
        text = doc.read_text()
        for m in re.finditer(r"(?m)^<!--\s*prints:\s*(.+?)\s*-->\s*\n```[a-z]*\n(.*?)```", text, re.S):
            line = text[:m.start()].count("\n") + 1
            out.append(pytest.param(doc, m.group(1), m.group(2), id=f"{doc.name}:{line}"))
    return out


@pytest.mark.parametrize("doc, sources, block", quoted_outputs())
def test_quoted_output_is_what_the_code_prints(doc, sources, block):
    patterns = [p for source in sources_of(sources) for p in templates(source)]
    wrong = [line for line in block.splitlines() if line.strip() and not printed_by(line, patterns)]
    assert not wrong, f"{doc.name}: lines no template in {sources} prints: {wrong}"


def test_quoted_output_check_can_fail(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('echo(f"[{form}] wrote {path} ({size / 1e6:.1f} MB, {n} nodes)")\n'
                      'print("error: %s" % message)\nprint("{} is not installed".format(name))\n'
                      'line = (f"[{label}] " if label else "") + text\nnote(f"{what} ...")\n'
                      'stage(what=f"building from {src} on {where}")\nwhere = f"the CPU (for {targets})"\n')
    patterns = templates(module)
    assert printed_by("[standard] wrote out/x4/model.onnx (72.3 MB, 4592 nodes)", patterns)
    assert printed_by("error: onnx is not installed", patterns)
    assert printed_by("[model.plan] building from model.onnx on the CPU (for 8.6, 8.9) ...", patterns)
    assert not printed_by("[standard] wrote out/x4/model.onnx (72.3 MB, 4592 nodes, 56 per block)", patterns)
    assert not printed_by("error: something the code never says", patterns)
    assert not printed_by("[model.plan] building from model.onnx on a GPU ...", patterns)


def test_docs_quote_output_somewhere():
    assert quoted_outputs(), "no '<!-- prints: ... -->' block in README.md or docs/"
