"""The house's rules, read from the code: packages import only what their docstrings allow, without cycles;
modules and functions fit on a screen or two."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lstmcast"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def package_of(module: str) -> str:
    """'lstmcast.data.frame' → 'data'; a module at the top ('lstmcast.config') is a base module, but for
    `python -m lstmcast`'s entry point, which is the command line's."""
    if module == "lstmcast.__main__":
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "base"


def imported(path: Path, known: set[str]) -> set[str]:
    """The lstmcast modules a file imports, at the top or inside a function (both run, sooner or later)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lstmcast":
            # `from package import module` depends on that module; `from module import name` on the module
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out |= {n for n in names if n in known and n != "lstmcast"}
    return out


def edges() -> dict[str, set[str]]:
    known = set(modules())
    return {name: imported(path, known) for name, path in modules().items()}


def allowed() -> dict[str, set[str]]:
    """Each package's (and the base's) 'May import:' line, from its docstring."""
    out = {}
    for name, path in modules().items():
        if path.name != "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        match = re.search(r"^May import: ([^—(.\n]*)", doc, flags=re.M)
        assert match, f"{path}: the docstring must say what the package may import ('May import: …')"
        package = "base" if name == "lstmcast" else package_of(name)
        out[package] = {p.strip() for p in match.group(1).split(",") if p.strip()} | {package}
    return out


def test_every_package_imports_only_what_its_docstring_allows() -> None:
    rules = allowed()
    wrong = [
        f"{source} ({package_of(source)}) imports {target} ({package_of(target)})"
        for source, targets in edges().items()
        for target in targets
        if package_of(target) not in rules[package_of(source)]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_package_graph_and_the_module_graph_are_acyclic() -> None:
    graph = edges()
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        packages.setdefault(package_of(source), set()).update(package_of(t) for t in targets)
    for nodes in (graph, packages):
        assert_acyclic({k: v - {k} for k, v in nodes.items()})


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, "import cycle: " + " → ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_modules_and_functions_fit_on_a_screen() -> None:
    too_long = []
    for path in modules().values():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE.parent)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)


def test_the_rules_can_fail() -> None:
    assert_acyclic({"a": {"b"}, "b": set()})
    try:
        assert_acyclic({"a": {"b"}, "b": {"a"}})
    except AssertionError as exc:
        assert "a → b → a" in str(exc)
    else:
        raise AssertionError("a cycle went unnoticed")
    assert package_of("lstmcast.config") == "base" and package_of("lstmcast.data.frame") == "data"
    assert package_of("lstmcast.data") == "data" and package_of("lstmcast.__main__") == "cli"
