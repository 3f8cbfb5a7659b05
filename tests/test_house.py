"""The house rules that keep each rule in one place, checked on the source itself.

A convention that only reviews enforce drifts; these fail the build when a module starts
keeping its own clock, its own NPS thresholds, its own CSV writer or SQL in a view, or when
the library's modules import each other in a circle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "survey_mailer"
APP = ROOT / "landing"


def sources(*folders: Path) -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text("utf-8")
            for folder in folders for p in sorted(folder.rglob("*.py"))}


def offending(pattern: str, allowed: set[str], *folders: Path) -> list[str]:
    found = []
    for name, text in sources(*folders).items():
        if name in allowed:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_time_comes_from_the_one_clock():
    # clock.frozen() moves every module's time in tests; a module with its own clock escapes.
    assert offending(r"datetime\.now\(|datetime\.utcnow\(|date\.today\(|\btime\.time\(\)",
                     {"survey_mailer/clock.py"}, LIBRARY, APP) == []


def test_nps_thresholds_are_written_once():
    assert offending(r"score\w*\s*(<|<=|>|>=)\s*[6-9]\b", {"survey_mailer/scores.py"},
                     LIBRARY, APP) == []


def test_csv_is_written_in_one_place():
    # csvfiles defuses formulas; a second writer would forget to.
    assert offending(r"csv\.(writer|DictWriter)\(", {"survey_mailer/csvfiles.py"},
                     LIBRARY, APP) == []


def test_views_hold_no_sql():
    assert offending(r"\.execute\(|\bSELECT\b|\bINSERT\b|\bUPDATE\b|\bDELETE FROM\b",
                     {"landing/db.py"}, APP) == []


def library_imports() -> dict[str, set[str]]:
    """Return each survey_mailer module's imports of other survey_mailer modules."""
    graph = {}
    for path in LIBRARY.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(
            ".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found = set()
        # Module-level imports only: an import inside a function (a backend chosen by a
        # setting) runs after every module has loaded, so it makes no circle.
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level \
                    else node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                found.update(n for n in [target, *names] if n.startswith("survey_mailer."))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("survey_mailer."))
        graph[module] = found
    modules = set(graph)
    return {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}


def test_the_library_has_no_import_circle():
    graph = library_imports()
    assert len(graph) > 30 and graph["survey_mailer.cli"]  # the walk found the modules
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_blueprints_import_nothing_back_from_the_app_package():
    # Extensions live in landing/extensions.py, so no module imports a name defined in
    # landing/__init__.py (create_app's module): only sibling modules, by name.
    found = []
    for path in APP.rglob("*.py"):
        if path == APP / "__init__.py":
            continue
        depth = len(path.relative_to(APP).parts)  # 1 in landing/, 2 in landing/staff/
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.level == depth and not node.module:
                found += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names
                          if not (APP / f"{a.name}.py").exists() and not (APP / a.name).is_dir()]
            if isinstance(node, ast.ImportFrom) and node.module == "landing":
                found += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names]
    assert found == []
