"""The layering of the code, read from the source (pure: no server, no TensorFlow import).

- ``udfs/cerebro_udfs`` runs inside PL/Python: every module imports alone in a fresh
  interpreter and none imports the client package ``cerebro``;
- no import cycle among its modules, counting imports inside functions (they hide cycles);
- the PL/Python bodies in ``sql/idempotent`` import only the facade ``cerebro_udfs.sql_api``;
- rows of ``cerebro.configs`` and ``cerebro.events`` are written by one module per side: the
  store (``udfs/cerebro_udfs/store.py``) and the scheduler's statements
  (``src/cerebro/scheduler/statements.py``).
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cerebro.cluster import BOOT

ROOT = Path(__file__).resolve().parent.parent
UDFS = ROOT / "udfs"
PACKAGE = "cerebro_udfs"
CLIENT = "cerebro"

STORE = UDFS / PACKAGE / "store.py"
STATEMENTS = ROOT / "src" / "cerebro" / "scheduler" / "statements.py"
# the client tools' steering (cerebro top, cerebro ui) types the same UPDATE/INSERT a person
# would, under the person's role: one module holds those statements
CATALOG = ROOT / "src" / "cerebro" / "catalog.py"
WRITES = re.compile(
    r"\b(insert\s+into|update|delete\s+from)\s+cerebro\.(configs|events)\b", re.IGNORECASE
)


# --- reading the package ----------------------------------------------------------------


def module_files() -> dict[str, Path]:
    """Dotted name -> file, for every module of cerebro_udfs (packages by their __init__)."""
    out = {}
    for path in sorted((UDFS / PACKAGE).rglob("*.py")):
        parts = path.relative_to(UDFS).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name as written (or resolved from a relative import)
    names: tuple[str, ...]  # for ``from target import names``; () for ``import target``
    line: int
    where: str  # "module level" or "in <function>"


def imports(module: str, path: Path) -> Iterator[Import]:
    """Every import statement of a module, at any depth, except under ``if TYPE_CHECKING``
    (those never run)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if is_package(module) else module.rpartition(".")[0]

    def visit(node: ast.AST, where: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from (i for c in child.orelse for i in visit_one(c, where))
                continue
            yield from visit_one(child, where)

    def visit_one(node: ast.AST, where: str) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno, where)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(target, tuple(a.name for a in node.names), node.lineno, where)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            where = f"in {node.name}()"
        if not isinstance(node, ast.Import | ast.ImportFrom):
            yield from visit(node, where)

    yield from visit(tree, "module level")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def internal_targets(module: str, imp: Import) -> list[str]:
    """The cerebro_udfs modules whose execution an import by ``module`` needs: the named
    submodules, and the target itself unless it is a package of ``module``'s own ancestry
    imported only for its submodules (``from . import heads`` inside ``roster``: the package
    is already in sys.modules, partly initialised, and only the submodule is loaded)."""
    if imp.target != PACKAGE and not imp.target.startswith(PACKAGE + "."):
        return []
    subs = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in MODULES]
    attributes = len(subs) < len(imp.names) or not imp.names
    ancestor = module.startswith(imp.target + ".")
    if imp.target in MODULES and (attributes or not ancestor):
        return [imp.target, *subs]
    return subs


def import_graph() -> dict[str, dict[str, Import]]:
    """module -> {imported module: the first import statement that loads it}."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for module, path in MODULES.items():
        for imp in imports(module, path):
            for target in internal_targets(module, imp):
                if target != module:
                    graph[module].setdefault(target, imp)
    return graph


def find_cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # breadth-first from start back to start inside the component
        paths = {start: [start]}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w == start:
                        found = [*paths[v], start]
                        break
                    if w in members and w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        cycles.append(found or comp)
    return cycles


def describe(cycle: list[str], graph: dict[str, dict[str, Import]]) -> str:
    steps = []
    for a, b in itertools.pairwise(cycle):
        imp = graph[a][b]
        steps.append(f"  {a} imports {b} ({MODULES[a].relative_to(ROOT)}:{imp.line}, {imp.where})")
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


# --- (a) every module alone, and never the client package --------------------------------


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_in_database_module_imports_alone_in_a_fresh_interpreter(module):
    """In layer order or not: a module that only imports after another one has been imported
    first (a hidden cycle) fails here. The client package must not be loaded as a side
    effect either."""
    probe = textwrap.dedent(f"""
        import sys
        import {module}
        leaked = sorted(m for m in sys.modules if m.partition(".")[0] == {CLIENT!r})
        assert not leaked, f"importing {module} loaded the client package: {{leaked}}"
    """)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(UDFS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=UDFS,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


def test_no_in_database_module_imports_the_client_package():
    offenders = [
        f"{path.relative_to(ROOT)}:{imp.line} ({imp.where}) imports {imp.target}"
        for module, path in MODULES.items()
        for imp in imports(module, path)
        if imp.target == CLIENT or imp.target.startswith(CLIENT + ".")
    ]
    assert offenders == []


# --- (b) no cycle -----------------------------------------------------------------------


def test_no_import_cycle_among_in_database_modules_counting_function_level_imports():
    graph = import_graph()
    assert len(graph) > 10 and any(graph.values())  # the reader found the package's imports
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c, graph) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path, monkeypatch):
    """The check above is only as good as its reader: a cycle closed by an import inside a
    function body is found and printed."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import g\n    return g\n")
    (pkg / "c.py").write_text("from cerebro_udfs import a\ndef g():\n    return a\n")
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "UDFS", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "MODULES", module_files())
    graph = import_graph()
    assert find_cycles(graph) == [[f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.c", f"{PACKAGE}.a"]]
    assert "in f()" in describe(find_cycles(graph)[0], graph)
    assert graph[f"{PACKAGE}.d"] == {}  # type-only imports do not count


# --- (c) PL/Python bodies import the facade only ----------------------------------------


def sql_statements(text: str) -> Iterator[tuple[str, list[str]]]:
    """(statement text outside dollar quotes and comments, its dollar-quoted bodies)."""
    outside: list[str] = []
    bodies: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif ch == "'":
            j = i + 1
            while True:
                j = text.index("'", j)
                if text.startswith("''", j):
                    j += 2
                    continue
                break
            outside.append(text[i : j + 1])
            i = j + 1
        elif ch == "$" and (m := re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])):
            tag = m.group(0)
            end = text.index(tag, i + len(tag))
            bodies.append(text[i + len(tag) : end])
            outside.append(" $body$ ")
            i = end + len(tag)
        elif ch == ";":
            yield "".join(outside), bodies
            outside, bodies = [], []
            i += 1
        else:
            outside.append(ch)
            i += 1
    if "".join(outside).strip():
        yield "".join(outside), bodies


PLPYTHON = re.compile(r"\blanguage\s+'?plpython3u'?", re.IGNORECASE)
FUNCTION = re.compile(r"\bcreate\s+(?:or\s+replace\s+)?function\s+([\w.]+)", re.IGNORECASE)
FACADE = f"{PACKAGE}.sql_api"


def plpython_bodies() -> list[tuple[str, str, str]]:
    """(file, function name, body) of every plpython3u body in sql/idempotent."""
    out = []
    for path in sorted((ROOT / "sql" / "idempotent").glob("*.sql")):
        for stmt, bodies in sql_statements(path.read_text()):
            if PLPYTHON.search(stmt):
                m = FUNCTION.search(stmt)
                head = m.group(1) if m else " ".join(stmt.split())[:60]
                out.extend((path.name, head, body) for body in bodies)
    return out


def test_plpython_bodies_import_only_the_sql_api_facade():
    bodies = plpython_bodies()
    assert len(bodies) >= 20  # the parser found the bodies (24 in 0.2.0)
    offenders = []
    for file, head, body in bodies:
        # every body starts by finding cerebro's code (cerebro_python.path): without it a
        # server restarted by pg_ctl or systemd could not import it
        if not body.lstrip("\n").startswith(BOOT):
            offenders.append(f"{file}: {head}: does not start with cluster.BOOT")
            continue
        tree = ast.parse(textwrap.dedent(body.lstrip("\n").removeprefix(BOOT)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if a.name != FACADE]
            elif isinstance(node, ast.ImportFrom):
                ok = node.module == FACADE or (
                    node.module == PACKAGE and [a.name for a in node.names] == ["sql_api"]
                )
                bad = [] if ok and not node.level else [f"from {node.module} import ..."]
            else:
                continue
            offenders += [f"{file}: {head}: imports {b}" for b in bad]
    assert offenders == [], "\n".join(offenders)


def test_the_sql_reader_tells_python_bodies_from_sql_ones():
    text = """
        -- a comment; with $$ and 'quotes'
        create function a() returns int language sql as $$ select 1; $$;
        create function b() returns text as $f$
        import json
        return ';'
        $f$ language plpython3u;
        select 'it''s; fine', $$x$$;
    """
    stmts = list(sql_statements(text))
    assert [b for s, b in stmts if PLPYTHON.search(s)] == [
        ["\n        import json\n        return ';'\n        "]
    ]
    assert [len(b) for _, b in stmts] == [1, 1, 1]


# --- (d) one writer of configs and events per side ----------------------------------------


def sql_literals(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal of a Python file that is not a docstring."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


@pytest.mark.parametrize(
    "tree, owner",
    [(UDFS, (STORE,)), (ROOT / "src", (STATEMENTS, CATALOG))],
    ids=["udfs-store", "src-scheduler-statements-and-client-catalog"],
)
def test_configs_and_events_are_written_by_one_module_per_side(tree, owner):
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r}"
        for path in sorted(tree.rglob("*.py"))
        if path not in owner
        for line, text in sorted(sql_literals(path))
        for m in WRITES.finditer(text)
    ]
    assert offenders == [], (
        "SQL writing cerebro.configs/events outside "
        f"{', '.join(str(o.relative_to(ROOT)) for o in owner)}:\n" + "\n".join(offenders)
    )


def test_the_write_pattern_catches_the_usual_spellings():
    for sql in (
        "insert into cerebro.configs (x) values (1)",
        "UPDATE  cerebro.events set",
        "delete from\n  cerebro.configs where",
        "with x as (update cerebro.configs",
    ):
        assert WRITES.search(sql), sql
    for sql in (
        "select * from cerebro.configs",
        "update cerebro.configs_view",
        "insert into cerebro.metrics",
        "for update of cerebro.configs",
    ):
        assert not WRITES.search(sql), sql


# -- function length --------------------------------------------------------------------------

MAX_FUNCTION_LINES = 65  # "about 60"; a longer function needs a reason in a comment above it


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions in src/ and udfs/ longer than ``limit`` lines (signature and docstring
    included), unless the line above the ``def`` says why it must be one piece
    (``# one piece: ...``)."""
    out = []
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "udfs").rglob("*.py")]):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            reason = first >= 2 and lines[first - 2].strip().startswith("# one piece:")
            if length > limit and not reason:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_is_longer_than_about_sixty_lines():
    assert long_functions() == []


def test_the_length_check_finds_a_long_function():
    assert long_functions(limit=20), "some function in the tree is longer than 20 lines"
