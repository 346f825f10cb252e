"""Layers: no stage imports another stage (what they share lives in twhin_bert.common), and
nothing in twhin_bert imports the pipelines or the CLI above it (common <- stages <- pipelines
<- cli)."""

from __future__ import annotations

import ast
from pathlib import Path

import twhin_bert

PACKAGE = Path(twhin_bert.__file__).parent
STAGES = twhin_bert.STAGES
#: Imports still to be moved to twhin_bert.common: (file, stage imported). Keep it empty.
PENDING: set[tuple[str, str]] = set()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def _stage_imports(path: Path) -> set[str]:
    out = set()
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "twhin_bert" and len(parts) > 1 and parts[1] in STAGES:
            out.add(parts[1])
    return out


def test_no_stage_imports_another() -> None:
    found = set()
    for stage in STAGES:
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            for other in _stage_imports(path) - {stage}:
                found.add((str(path.relative_to(PACKAGE)), other))
    assert found - PENDING == set(), "stages import other stages"
    assert PENDING - found == set(), "fixed: remove these from PENDING"


def test_the_package_never_imports_the_pipelines_or_the_cli() -> None:
    """twhin_bert is the library and its stages; twhin_bert_pipelines (pipelines, CLI) sits on
    top. A lazy import inside a function is an import too (it made a package cycle once)."""
    found = sorted(
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] == "twhin_bert_pipelines"
    )
    assert found == [], "twhin_bert imports the layer above it"
    assert not (PACKAGE / "cli.py").exists(), "the CLI lives in twhin_bert_pipelines.cli"
