"""The untouched base encoder as evaluate's third model, and the gate that can require
beating it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from twhin_bert.evaluate.config import (
    BenchmarkConfig,
    EngagementConfig,
    EvaluateConfig,
    FinetuneConfig,
    HashtagConfig,
)
from twhin_bert.register_model.config import GateConfig
from twhin_bert.register_model.gate import beats_base


def small_config() -> EvaluateConfig:
    """test_evaluate's small settings, without fine-tuning (the base adds a third model)."""
    return EvaluateConfig(
        max_length=32,
        threads=1,
        engagement=EngagementConfig(epochs=3, seeds=1, batch_size=256, negatives=4, candidates=100),
        hashtag=HashtagConfig(top_n=4, min_examples=30),
        benchmarks=BenchmarkConfig(
            max_train=240, max_val=60, max_test=120, few_shot=[2, 8], few_shot_seeds=2
        ),
        finetune=FinetuneConfig(enabled=False),
    )


def test_base_is_scored_in_every_task(
    tiny_model_dir: Path, eval_inputs: tuple[Path, Path], sample_data: Path, tmp_path: Path
) -> None:
    from twhin_bert.evaluate.evaluate import run_evaluate

    cfg = small_config().model_copy(update={"base": "released"})
    ingested, graph = eval_inputs
    out = tmp_path / "evaluation"
    # The same weights under three names: seeded runs on one split agree exactly.
    res = run_evaluate(
        cfg,
        out,
        models={
            "twhin_bert": tiny_model_dir,
            "mlm_only": tiny_model_dir,
            "released": tiny_model_dir,
        },
        ingested=ingested,
        graph_embeddings=graph,
        benchmarks=[str(sample_data / "umsab" / "english")],
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["models"]) == {"twhin_bert", "mlm_only", "released"}
    assert set(saved["models"]["released"]) == {"engagement", "hashtag", "english"}
    assert saved["base"]["name"] == "released"
    assert saved["base"]["primary"] == pytest.approx(res["primary"])
    assert "released" in (out / "report.md").read_text()
    # The gate's base check over these numbers: equal passes min_delta 0, not a margin.
    gate = GateConfig(require_beat_base=True)
    assert beats_base(gate, res["primary"], saved["base"]["primary"])[0]
    strict = GateConfig(metrics={"engagement_hits@10": {"min_delta": 0.01}})
    ok, lines = beats_base(strict, res["primary"], saved["base"]["primary"])
    assert not ok and "FAIL vs base" in lines[0]


def test_gate_requires_an_evaluated_base() -> None:
    ok, lines = beats_base(GateConfig(require_beat_base=True), {"engagement_hits@10": 0.1}, None)
    assert not ok and "no base model" in lines[0]
    ok, _ = beats_base(
        GateConfig(metrics={"engagement_hits@10": {"min_delta": 0.0}}),
        {"engagement_hits@10": 0.09},
        {"engagement_hits@10": 0.1},
    )
    assert not ok


def test_model_names_must_differ() -> None:
    with pytest.raises(ValidationError, match="must name different models"):
        EvaluateConfig(base="twhin_bert")
