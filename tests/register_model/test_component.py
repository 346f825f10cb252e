"""The KFP components compile with the documented inputs and outputs."""

from __future__ import annotations

from pathlib import Path

import yaml
from kfp import compiler
from twhin_bert.register_model.component import register_model, resolve_champion


def _compiled(component: object, tmp_path: Path) -> dict:
    out = tmp_path / "c.yaml"
    compiler.Compiler().compile(component, str(out))
    return yaml.safe_load(out.read_text())


def test_register_model_component(tmp_path: Path) -> None:
    spec = _compiled(register_model, tmp_path)
    comp = next(iter(spec["components"].values()))
    params = comp["inputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in params.items()} == {
        "config": "STRING",
        "pipeline_run_id": "STRING",
        "pipeline_config": "STRING",
        "data_window": "STRING",
        "evaluated_champion": "STRING",
    }
    assert params["evaluated_champion"]["isOptional"] is True
    arts = comp["inputDefinitions"]["artifacts"]
    assert arts["model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert arts["evaluation"]["artifactType"]["schemaTitle"] == "system.Dataset"
    outs = comp["outputDefinitions"]["artifacts"]
    assert outs["registration"]["artifactType"]["schemaTitle"] == "system.Artifact"
    assert outs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_resolve_champion_component(tmp_path: Path) -> None:
    spec = _compiled(resolve_champion, tmp_path)
    comp = next(iter(spec["components"].values()))
    assert comp["inputDefinitions"]["parameters"]["model_name"]["parameterType"] == "STRING"
    assert comp["outputDefinitions"]["artifacts"]["champion"]["artifactType"]["schemaTitle"] == (
        "system.Model"
    )
    assert comp["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "STRING"
