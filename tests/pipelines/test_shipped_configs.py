"""The shipped pipeline configs state only what differs from the defaults."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml
from twhin_bert_pipelines.config import BUILTIN_CONFIGS, PipelineConfig


def _restated(raw: dict[str, Any], default: dict[str, Any], path: str = "") -> list[str]:
    out = []
    for key, value in raw.items():
        dflt = default.get(key)
        if isinstance(value, dict) and isinstance(dflt, dict) and value:
            out += _restated(value, dflt, f"{path}{key}.")
        elif key in default and value == dflt:
            out.append(f"{path}{key}")
    return out


@pytest.mark.parametrize("name", sorted(BUILTIN_CONFIGS))
def test_every_key_differs_from_its_default(name: str) -> None:
    text = (resources.files("twhin_bert_pipelines") / "configs" / f"{name}.yaml").read_text()
    raw = yaml.safe_load(text)
    default = PipelineConfig().model_dump(mode="json")
    assert _restated(raw, default) == [], f"{name}.yaml restates defaults"


def test_the_check_finds_a_restated_default() -> None:
    default = PipelineConfig().model_dump(mode="json")
    raw = {"seed": default["seed"], "pretrain": {"threads": default["pretrain"]["threads"] + 1}}
    assert _restated(raw, default) == ["seed"]
