"""The layout is the data flow: imports go one way (STYLE rule 1).

tasks -> compiler -> formats -> runtime -> hwmodel. hwmodel imports nothing of edgemti but ``edgemti.errors``;
runtime never imports compiler or tasks; formats (the on-disk formats) imports none of compiler, runtime, tasks or
hwmodel: the bridge from a build to the hardware model's ``Workload`` is ``runtime/workload.py``, on the side that
needs it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "hwmodel": ("edgemti.tasks", "edgemti.compiler", "edgemti.formats", "edgemti.runtime", "edgemti.cli",
                "edgemti.studies"),
    "runtime": ("edgemti.compiler", "edgemti.tasks", "edgemti.cli", "edgemti.studies"),
    "formats": ("edgemti.compiler", "edgemti.runtime", "edgemti.tasks", "edgemti.hwmodel", "edgemti.cli",
                "edgemti.studies"),
    "tasks": ("edgemti.compiler", "edgemti.runtime", "edgemti.formats", "edgemti.hwmodel", "edgemti.cli"),
    "compiler": ("edgemti.runtime", "edgemti.cli"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.append("." * node.level + (node.module or ""))
    return out


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_import_directions(pkg):
    bad = []
    for py in sorted((ROOT / pkg).rglob("*.py")):
        for mod in _imports(py):
            if mod.startswith(".."):
                bad.append(f"{py.relative_to(ROOT)}: relative import {mod} leaves the package")
            if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[pkg]):
                bad.append(f"{py.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_package_dirs_map_to_top_level_folders():
    import edgemti.compiler
    import edgemti.formats
    import edgemti.hwmodel
    import edgemti.runtime
    import edgemti.tasks

    for mod, folder in [(edgemti.compiler, "compiler"), (edgemti.formats, "formats"), (edgemti.hwmodel, "hwmodel"),
                        (edgemti.runtime, "runtime"), (edgemti.tasks, "tasks")]:
        assert Path(mod.__file__).resolve().parent == ROOT / folder


def _module_files() -> dict[str, Path]:
    """Every module of the installed package shape: ``edgemti.<folder>.<name>`` -> its file."""
    mods = {}
    roots = {"edgemti": ROOT / "edgemti", **{f"edgemti.{p}": ROOT / p for p in FORBIDDEN}}
    for prefix, folder in roots.items():
        for py in sorted(folder.rglob("*.py")):
            rel = py.relative_to(folder).with_suffix("").parts
            if rel and rel[0] in FORBIDDEN and prefix == "edgemti":
                continue  # edgemti/<room>/ does not exist; the rooms are top-level folders
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            mods[".".join((prefix, *parts))] = py
    return mods


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    """No module imports (at the top or inside a function) a module that imports it back, directly or round."""
    mods = _module_files()
    graph: dict[str, set[str]] = {}
    for name, py in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(py.read_text(), filename=str(py))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in mods and t != name}
        # a package's own __init__ re-exporting its modules is not a circle of ideas
        graph[name] = {d for d in deps if not (name.startswith(d + ".") and mods[d].name == "__init__.py")}
    found = _cycles(graph)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_circle_check_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_private_name_of_another():
    """``from edgemti.x import _name`` reaches into another module's insides: make the name public or move it."""
    bad = []
    for py in _module_files().values():
        for node in ast.walk(ast.parse(py.read_text(), filename=str(py))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgemti"):
                bad += [f"{py.relative_to(ROOT)}: {a.name} from {node.module}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)
