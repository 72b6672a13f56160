"""The package's layers and cycles (docs/architecture.md), checked by import-linter.

`lint-imports` reads the contracts in pyproject.toml: each stage imports only the stages
below it, the library imports without pytest, and no module imports itself back through
others. The second test shows, once, that the check fails on an upward import.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the package under `root`, with `root`'s pyproject.toml."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          check=False)


def test_the_stages_import_only_downward() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_an_upward_import_and_a_cycle_break_the_check(tmp_path: Path) -> None:
    """A parser importing the pytest glue breaks the layers (and brings in pytest); a
    module of the glue importing another that imports it back is a cycle."""
    shutil.copytree(REPO / "pytest_lkft", tmp_path / "pytest_lkft",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with (tmp_path / "pytest_lkft" / "parsers" / "model.py").open("a") as model:
        model.write("\nfrom pytest_lkft.pytestplugin import options  # noqa: E402, F401\n")
    with (tmp_path / "pytest_lkft" / "pytestplugin" / "naming.py").open("a") as naming:
        naming.write("\nfrom pytest_lkft.pytestplugin import fixtures  # noqa: E402, F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1
    assert "Contracts: 0 kept, 3 broken." in done.stdout
    assert "pytest_lkft.parsers.model -> pytest_lkft.pytestplugin.options" in done.stdout
    assert "No cycles are allowed in pytest_lkft.pytestplugin." in done.stdout
    assert ".naming -> .fixtures (1 import)" in done.stdout


def plain_code_faults(source: str) -> list[str]:
    """Where `source` is hard to read: a conditional expression inside another, a line
    continued with a backslash (issue 13 unpacked them all; merges bring them back)."""
    faults = []
    for node in ast.walk(ast.parse(source)):
        inner = [child for child in ast.walk(node) if child is not node]
        if isinstance(node, ast.IfExp) and any(isinstance(c, ast.IfExp) for c in inner):
            faults.append(f"line {node.lineno}: a conditional expression inside another")
    for number, line in enumerate(source.splitlines(), start=1):
        if line.endswith("\\") and not line.lstrip().startswith("#"):
            faults.append(f"line {number}: a backslash continuation")
    return faults


def test_the_code_has_no_nested_conditional_expression_or_backslash_continuation() -> None:
    faults = [f"{path.relative_to(REPO)} {fault}"
              for path in sorted((REPO / "pytest_lkft").rglob("*.py"))
              for fault in plain_code_faults(path.read_text())]
    assert faults == []


def test_the_plain_code_check_finds_both_faults() -> None:
    source = 'a = 1 if b else 2 if c else 3\nd = 1 + \\\n    2\n'
    assert plain_code_faults(source) == ["line 1: a conditional expression inside another",
                                         "line 2: a backslash continuation"]
