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
