"""No stage imports another stage: what they share lives in twhin_bert.common."""

from __future__ import annotations

import ast
from pathlib import Path

import twhin_bert

PACKAGE = Path(twhin_bert.__file__).parent
STAGES = (
    "ingest",
    "build_graph",
    "embed_graph",
    "mine_pairs",
    "train_tokenizer",
    "pretrain",
    "embed",
    "evaluate",
    "register_model",
)
#: Imports still to be moved to twhin_bert.common: (file, stage imported). Keep it empty.
PENDING: set[tuple[str, str]] = set()


def _stage_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
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
