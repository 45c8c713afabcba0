"""The shape of the library (issue 16): no module of xinc/ over 400 lines, no function over 80,
the trainers' functions under 60, and no import cycle among xinc's modules.

Read from the source with `ast`, nothing is imported. The import graph has an edge A → B for
every `import xinc…` / `from xinc… import …` in module A that names module B, wherever it
stands: at the top, in a function (a lazy import) or under `if TYPE_CHECKING:`. Lazy imports
count because a function-level import that closes a loop still makes the two modules depend on
each other (it only hides the loop from Python's import order, as `from_authors_state_dict`
did). A name a package's `__init__` re-exports (`from xinc.data import generate`) is an edge to
the module that defines it (`xinc.data.synth`), and a submodule named in a from-import
(`from xinc.data import textures`) an edge to that submodule. Importing a submodule is not
counted as importing its package's `__init__` as well: Python runs `__init__` first, but only
for the re-exports resolved above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xinc"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
#: Functions allowed above MAX_FUNCTION_LINES, "path:qualified.name" -> why. Keep it empty.
FUNCTION_EXCEPTIONS: dict[str, str] = {}
#: The trainers of issue 16: each of their module's functions stays under this many lines.
TRAINER_MODULES = ("xinc/train/nerv.py", "xinc/train/ffn.py", "xinc/train/ffn_batched.py")
MAX_TRAINER_FUNCTION_LINES = 59


def module_name(path: Path) -> str:
    """`xinc/data/synth.py` -> `xinc.data.synth`, `xinc/data/__init__.py` -> `xinc.data`."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
            if "__pycache__" not in p.parts}


@cache
def tree(name: str) -> ast.Module:
    path = modules()[name]
    return ast.parse(path.read_text(), filename=str(path))


def functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """(qualified name, node) of every function and method below `node`, nested ones too."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child
            yield from functions(child, f"{name}.")
        else:
            yield from functions(child, prefix)


def n_lines(node: ast.AST) -> int:
    """Lines of a function from its `def` to its last line (decorators not counted)."""
    return node.end_lineno - node.lineno + 1


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a from-import names, relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    is_package = modules()[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


def nearest_module(name: str) -> str | None:
    """`name` if it is a module of the package, else its longest prefix that is (or None)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules():
            return ".".join(parts[:i])
    return None


def origin(package: str, name: str, seen: frozenset[str] = frozenset()) -> str:
    """The module that defines `name` as seen from `package`: the submodule it is, the module
    a re-export in `package` comes from (followed further), else `package` itself."""
    if f"{package}.{name}" in modules():
        return f"{package}.{name}"
    if package in seen:
        return package
    for node in tree(package).body:
        if isinstance(node, ast.ImportFrom):
            source = absolute(package, node)
            for alias in node.names:
                if (alias.asname or alias.name) == name and nearest_module(source):
                    return origin(nearest_module(source), alias.name, seen | {package})
    return package


def imported(module: str) -> set[str]:
    """The xinc modules `module` imports, anywhere in its source."""
    out: set[str] = set()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            out.update(m for alias in node.names if (m := nearest_module(alias.name)))
        elif isinstance(node, ast.ImportFrom):
            source = nearest_module(absolute(module, node))
            if source is None:
                continue
            out.update(origin(source, alias.name) for alias in node.names
                       if alias.name != "*")
    out.discard(module)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def rel(name: str) -> str:
    return str(modules()[name].relative_to(ROOT))


def test_no_module_over_400_lines():
    long = {rel(name): n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_no_function_over_80_lines():
    long = {f"{rel(name)}:{qual}": n for name in modules()
            for qual, node in functions(tree(name)) if (n := n_lines(node)) > MAX_FUNCTION_LINES}
    stale = set(FUNCTION_EXCEPTIONS) - set(long)
    assert not stale, f"FUNCTION_EXCEPTIONS names functions that are short now: {stale}"
    long = {key: n for key, n in long.items() if key not in FUNCTION_EXCEPTIONS}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_trainer_functions_under_60_lines():
    long = {f"{path}:{qual}": n for path in TRAINER_MODULES
            for qual, node in functions(tree(module_name(ROOT / path)))
            if (n := n_lines(node)) > MAX_TRAINER_FUNCTION_LINES}
    assert not long, f"trainer functions of 60 lines or more: {long}"


def test_no_import_cycle():
    graph = {name: imported(name) for name in modules()}
    found = cycles(graph)
    detail = ["; ".join(f"{a} -> {sorted(graph[a] & set(c))}" for a in c) for c in found]
    assert not found, "import cycles among xinc modules:\n" + "\n".join(detail)


def test_the_checks_find_what_they_look_for():
    """The graph and the cycle finder on known cases: a re-export resolves to its origin, a
    submodule import names the submodule, a lazy import counts, cycles are found."""
    assert {"xinc", "xinc.data", "xinc.models.nerv", "xinc.train.nerv"} <= set(modules())
    assert "xinc.data.synth" in imported("xinc.data")  # __init__ re-exports generate
    assert "xinc.data.textures" in imported("xinc.data.scene")  # from xinc.data import textures
    assert origin("xinc.data", "generate") == "xinc.data.synth"
    assert origin("xinc.models", "build_model") == "xinc.models"  # defined in the __init__
    assert {"xinc.data.synth", "xinc.config"} <= imported("xinc.cli")  # imported in functions
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert functions(ast.parse("class A:\n    def f(self):\n        def g():\n"
                               "            pass\n")).__next__()[0] == "A.f"
