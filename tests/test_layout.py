"""The package's layout is its architecture: each folder imports only the folders below it
(README, "Layout"), every import of the package's own modules included, function-local ones too."""
from __future__ import annotations

import ast
from pathlib import Path

import lstm_bench

PACKAGE = Path(lstm_bench.__file__).parent

# folder -> the folders it may import (itself always). The README's layout table, as data.
MAY_IMPORT = {
    "core": set(),
    "machine": {"core"},
    "impls": {"core", "machine"},
    "adapters": {"core", "machine", "impls"},
    "conformance": {"core", "machine", "impls", "adapters"},
    "bench": {"core", "machine", "impls", "adapters", "conformance"},
    "comparison": {"core", "machine", "impls", "adapters", "conformance", "bench"},
    "flow": {"core", "machine", "impls", "bench"},  # bench: its matplotlib loader (bench/plots.pyplot)
    "report": {"core", "machine", "impls", "adapters", "conformance", "bench", "comparison"},
    "cli": {"core", "machine", "impls", "adapters", "conformance", "bench", "comparison", "flow", "report"},
}
# The one cycle: the registry loads the built-in implementations on first use.
ALLOWED = {("core/registry.py", "impls")}
TOP = {"__init__.py", "__main__.py", "version.py", "testing.py"}  # the public face: may import anything


def imported_folders(path: Path) -> set[str]:
    """The folders of lstm_bench that the module at `path` imports from, anywhere in it."""
    tree = ast.parse(path.read_text(), str(path))
    here = path.relative_to(PACKAGE).parent.parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = list(here[:len(here) - (node.level - 1)]) if node.level > 1 else list(here)
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts + [a.name] for a in node.names] if not node.module else [parts]
            elif node.module and node.module.split(".")[0] == "lstm_bench":
                parts = node.module.split(".")[1:]
                names = [parts + [a.name] for a in node.names] if not parts else [parts]
            else:
                continue
            found |= {p[0] for p in names if p}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lstm_bench.")}
    return found


def test_every_folder_imports_only_the_folders_below_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            assert rel.name in TOP, f"{rel}: a module at the top of the package; put it in the folder of its role"
            continue
        folder = rel.parts[0]
        assert folder in MAY_IMPORT, f"{folder}/ is a folder the layout does not name (README, Layout)"
        for other in imported_folders(path) - {folder}:
            if other in MAY_IMPORT and other not in MAY_IMPORT[folder] and (rel.as_posix(), other) not in ALLOWED:
                wrong.append(f"{rel} imports {other}/")
    assert not wrong, "imports running up the layers:\n" + "\n".join(wrong)


def test_the_layout_check_sees_an_import_that_runs_up(tmp_path):
    bad = tmp_path / "lstm_bench" / "core" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from ..bench.grid import Point\n    from lstm_bench.cli import main\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "lstm_bench"
    try:
        assert imported_folders(bad) == {"bench", "cli"}
    finally:
        PACKAGE = saved
