"""Config fields are strict (issue 9, item 11): no boolean for a number, no made-up
Kubernetes quantity. Both rules live in twhin_bert.common.config, so every config has them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from twhin_bert.common.config import (
    ConfigError,
    K8sQuantity,
    StrictModel,
    _misplaced_bool,
    load_stage_config,
)
from twhin_bert.ingest.config import IngestConfig

ROOT = Path(__file__).resolve().parents[2]


def _all_config_models() -> list[type[StrictModel]]:
    sys.path.insert(0, str(ROOT))
    import pipelines.config  # noqa: F401  (imports every stage's config)

    seen: list[type[StrictModel]] = []
    todo = [StrictModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen and sub.__module__.startswith(("twhin_bert", "pipelines")):
                seen.append(sub)
                todo.append(sub)
    return seen


def test_batch_size_true_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="expected a number, got the boolean true"):
        IngestConfig(batch_size=True)
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("batch_size: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="batch_size"):
        load_stage_config(IngestConfig, cfg, "ingest")
    assert IngestConfig(batch_size=3).batch_size == 3
    c = IngestConfig()
    with pytest.raises(ValidationError, match="boolean"):
        c.langid_min_confidence = False  # assignment is validated too


def test_every_numeric_field_of_every_config_refuses_booleans() -> None:
    models = _all_config_models()
    assert len(models) >= 15  # every stage and the pipeline config
    checked = 0
    for model in models:
        for name, field in model.model_fields.items():
            if not _misplaced_bool(True, field.annotation):
                continue
            with pytest.raises(ValidationError) as e:
                model.model_validate({name: True})
            mine = [err for err in e.value.errors() if err["loc"] == (name,)]
            assert mine and "boolean" in mine[0]["msg"], (model.__name__, name)
            checked += 1
    assert checked >= 50


def test_booleans_still_fine_where_wanted_and_in_containers() -> None:
    assert IngestConfig(trust_input_lang=False).trust_input_lang is False
    assert _misplaced_bool([1, True], list[int])
    assert _misplaced_bool({"a": False}, dict[str, float])
    assert _misplaced_bool((1, True), tuple[int, ...])
    assert not _misplaced_bool(True, bool | int)
    assert not _misplaced_bool([True], list[bool])
    assert not _misplaced_bool(1, int)


class _Res(StrictModel):
    q: K8sQuantity | None = None


@pytest.mark.parametrize(
    "value",
    ["4", "500m", "0.5", ".5", "1.", "16Gi", "512Mi", "32G", "1k", "1e9", "1E3", "2E", "0"],
)
def test_kubernetes_quantities_accepted(value: str) -> None:
    assert _Res(q=value).q == value


@pytest.mark.parametrize("value", ["lots", "-1", " 4", "4 Gi", "1ki", "1GB", "1e", "", "Gi", "+-1"])
def test_bad_kubernetes_quantities_refused_in_one_line(value: str) -> None:
    with pytest.raises(ValidationError) as e:
        _Res(q=value)
    msg = e.value.errors()[0]["msg"]
    assert "is not a Kubernetes quantity" in msg and "\n" not in msg


def test_yaml_numbers_are_quantities() -> None:
    assert _Res(q=4).q == "4"
    assert _Res(q=0.5).q == "0.5"
    with pytest.raises(ValidationError):
        _Res(q=True)


def test_pipeline_resources_validate_quantities(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from pipelines.config import TaskResources, load_pipeline_config

    for field in ("cpu_request", "cpu_limit", "memory_request", "memory_limit", "shm_size"):
        with pytest.raises(ValidationError, match="not a Kubernetes quantity"):
            TaskResources(**{field: "lots"})
    data = yaml.safe_load((ROOT / "pipelines" / "configs" / "tiny.yaml").read_text())
    data.setdefault("resources", {}).setdefault("pretrain", {})["memory_request"] = "lots"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(bad)
    assert "resources.pretrain.memory_request" in str(e.value)
    assert "'lots' is not a Kubernetes quantity" in str(e.value)
    assert "\n" not in str(e.value)
    for name in ("tiny", "prod"):  # the shipped configs are valid
        load_pipeline_config(name)
