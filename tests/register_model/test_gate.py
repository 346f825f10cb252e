"""The promotion gate, its config and its tags: hand-computed cases, no MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from twhin_bert.register_model.config import GateConfig, GateMetric, RegisterModelConfig
from twhin_bert.register_model.gate import (
    GateVerdict,
    evaluate_gate,
    metrics_from_tags,
    metrics_to_tags,
)
from twhin_bert.register_model.register import gate_reference, read_primary_metrics

GATE = GateConfig(
    metrics={
        "engagement_hits@10": {"min_delta": 0.0},
        "hashtag_macro_f1": {"min_delta": -0.01},
        "loss": {"min_delta": 0.05, "higher_is_better": False},
    }
)
CHAMPION = {"engagement_hits@10": 0.20, "hashtag_macro_f1": 0.50, "loss": 2.0}


def test_no_champion_passes_and_says_so() -> None:
    v = evaluate_gate(
        GATE, {"engagement_hits@10": 0.01, "hashtag_macro_f1": 0.0, "loss": 9.0}, None, None
    )
    assert v.passed and v.champion_version is None and v.comparison == {}
    assert "no champion" in v.reasons[0]
    # ... unless the challenger lacks a gated metric.
    v = evaluate_gate(GATE, {"engagement_hits@10": 0.3, "hashtag_macro_f1": None}, None, None)
    assert not v.passed and len(v.reasons) == 2 and v.reasons[0].startswith("hashtag_macro_f1")


@pytest.mark.parametrize(
    ("hits", "f1", "loss", "failing"),
    [
        (0.20, 0.50, 2.0, ["loss"]),  # equal everywhere; loss must improve by 0.05
        (0.20, 0.50, 1.95, []),
        (0.2 + 1e-15, 0.491, 1.9, []),  # f1 may lose up to 0.01
        (0.199, 0.50, 1.9, ["engagement_hits@10"]),
        (0.25, 0.489, 1.9, ["hashtag_macro_f1"]),
        (0.25, 0.60, 1.96, ["loss"]),  # lower is better: improvement 0.04 < 0.05
        (0.10, 0.30, 2.5, ["engagement_hits@10", "hashtag_macro_f1", "loss"]),
    ],
)
def test_margins_and_directions(hits: float, f1: float, loss: float, failing: list[str]) -> None:
    challenger = {"engagement_hits@10": hits, "hashtag_macro_f1": f1, "loss": loss}
    v = evaluate_gate(GATE, challenger, CHAMPION, "4")
    assert v.passed == (not failing)
    assert [k for k, row in v.comparison.items() if not row["passed"]] == failing
    assert [r.split(":")[0] for r in v.reasons if ": FAIL" in r] == failing
    assert v.comparison["loss"]["improvement"] == pytest.approx(2.0 - loss)
    assert v.comparison["hashtag_macro_f1"]["delta"] == pytest.approx(f1 - 0.50)
    assert all("champion v4" in r for r in v.reasons)


def test_missing_values() -> None:
    gate = GateConfig(metrics=[GateMetric(name="a"), GateMetric(name="b")])
    v = evaluate_gate(gate, {"a": 0.5, "b": float("nan")}, {"a": 0.4}, "2")
    assert not v.passed
    assert v.comparison["a"]["passed"] and not v.comparison["b"]["passed"]
    assert "challenger has no value" in v.reasons[1]
    # The champion never recorded b: fails by default, passes when configured.
    v = evaluate_gate(gate, {"a": 0.5, "b": 0.1}, {"a": 0.4}, "2")
    assert not v.passed and "champion v2 has no recorded value" in v.reasons[1]
    lenient = GateConfig(metrics=gate.metrics, on_missing_champion_metric="pass")
    assert evaluate_gate(lenient, {"a": 0.5, "b": 0.1}, {"a": 0.4}, "2").passed


def test_verdict_and_metrics_round_trip_through_tags() -> None:
    v = evaluate_gate(
        GATE, {"engagement_hits@10": 0.1, "hashtag_macro_f1": 0.6, "loss": 1.0}, CHAMPION, "3"
    )
    tags = v.to_tags()
    assert tags["gate.verdict"] == "failed" and tags["gate.champion_version"] == "3"
    back = GateVerdict.from_tags(tags)
    assert back == v
    assert GateVerdict.from_tags({}) is None
    primary = {"engagement_hits@10": 0.25, "tweeteval emoji/f1": None}
    mtags = metrics_to_tags(primary)
    assert mtags["metric.engagement_hits_at_10"] == "0.25"
    assert mtags["metric.tweeteval emoji/f1"] == "null"  # common.metrics.mlflow_key: legal as is
    assert metrics_from_tags(mtags) == primary
    assert metrics_from_tags({}) is None


def test_config_validation() -> None:
    cfg = RegisterModelConfig.model_validate(
        {"gate": {"metrics": {"engagement_hits@10": {"min_delta": 0.01}}}, "auto_promote": True}
    )
    assert cfg.gate.metrics == [GateMetric(name="engagement_hits@10", min_delta=0.01)]
    assert [m.name for m in RegisterModelConfig().gate.metrics] == [
        "engagement_hits@10",
        "hashtag_macro_f1",
    ]
    with pytest.raises(ValidationError, match="unique"):
        GateConfig(metrics=[GateMetric(name="a"), GateMetric(name="a", min_delta=1)])
    with pytest.raises(ValidationError):
        GateConfig(metrics=[])
    with pytest.raises(ValidationError, match="extra"):
        RegisterModelConfig.model_validate({"gate": {"metrics": {"a": {"margin": 0.1}}}})
    with pytest.raises(ValidationError, match="quotes"):
        RegisterModelConfig(model_name="x'y")


def test_read_primary_metrics_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"metrics\.json: missing"):
        read_primary_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"models": {}}))
    with pytest.raises(ValueError, match="'primary'"):
        read_primary_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"primary": {"a": 0.5, "b": "high"}}))
    with pytest.raises(ValueError, match=r"primary\.b = 'high'"):
        read_primary_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"primary": {"a": 1, "b": None}}))
    assert read_primary_metrics(tmp_path) == {"a": 1.0, "b": None}


def test_gate_prefers_the_champion_evaluated_in_the_same_run(tmp_path: Path) -> None:
    same_run = {"engagement_hits@10": 0.31, "hashtag_macro_f1": 0.4}
    (tmp_path / "metrics.json").write_text(
        json.dumps(
            {
                "primary": {"engagement_hits@10": 0.30, "hashtag_macro_f1": 0.45},
                "baseline": {"name": "champion", "primary": same_run},
            }
        )
    )
    # the evaluated version is still the champion: its same-split numbers win over its tags
    ref, source = gate_reference(tmp_path, "3", "3", CHAMPION)
    assert ref == same_run and "evaluated in this run" in source
    verdict = evaluate_gate(GATE, {"engagement_hits@10": 0.30, "hashtag_macro_f1": 0.45}, ref, "3")
    assert not verdict.passed  # 0.30 < 0.31 on the same split, though > 0.20 registered
    # the champion moved meanwhile: back to the registered metrics, and the note says why
    ref, source = gate_reference(tmp_path, "3", "4", CHAMPION)
    assert ref == CHAMPION and "no longer the champion" in source
    # no champion evaluated (the pretrain pipeline's ablation twin is not the champion)
    (tmp_path / "metrics.json").write_text(
        json.dumps({"primary": {"a": 1.0}, "baseline": {"name": "mlm_only", "primary": {"a": 2}}})
    )
    assert gate_reference(tmp_path, None, "2", CHAMPION) == (
        CHAMPION,
        "champion v2's registered metrics",
    )
    assert gate_reference(tmp_path, None, None, None) == (None, "no champion")
