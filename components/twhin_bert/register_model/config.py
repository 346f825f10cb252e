"""Configuration of the register_model stage: registered model, task, promotion gate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from twhin_bert.common.config import StrictModel
from twhin_bert.common.metrics import ENGAGEMENT_HITS, HASHTAG_MACRO_F1


class GateMetric(StrictModel):
    """One metric of the promotion gate and the margin the challenger must clear."""

    name: str = Field(
        ...,
        min_length=1,
        description="Name of one of the evaluate stage's primary metrics, e.g. "
        f"'{ENGAGEMENT_HITS}' ('engagement_hits@<evaluate.engagement.k>'), "
        f"'{HASHTAG_MACRO_F1}', '<benchmark>_<metric>'; checked when the pipeline config loads.",
    )
    min_delta: float = Field(
        0.0,
        description="Smallest improvement over the champion that passes, in the metric's units "
        "and in its good direction: 0.0 = no worse; -0.01 = may lose up to 0.01; 0.005 = must "
        "gain at least 0.005.",
    )
    higher_is_better: bool = Field(
        True, description="Direction of the metric (False for losses, latencies, ...)."
    )


def _default_gate_metrics() -> list[GateMetric]:
    return [
        GateMetric(name=ENGAGEMENT_HITS, min_delta=0.0),
        GateMetric(name=HASHTAG_MACRO_F1, min_delta=-0.01),
    ]


class GateConfig(StrictModel):
    """The promotion gate: the challenger passes when every configured metric clears its margin.

    ``metrics`` is a list of :class:`GateMetric`; the mapping form
    ``{name: {"min_delta": 0.0}, ...}`` is accepted too and converted.
    """

    metrics: list[GateMetric] = Field(
        default_factory=_default_gate_metrics,
        min_length=1,
        description="The metrics compared with the champion's, each with its margin and "
        "direction. At least one: a gate without metrics would promote anything.",
    )
    on_missing_champion_metric: Literal["fail", "pass"] = Field(
        "fail",
        description="Verdict for a metric the champion has no recorded value for (e.g. a metric "
        "added to the gate after the champion was registered): 'fail' asks a human to approve "
        "with --force once; 'pass' skips the comparison.",
    )

    require_beat_base: bool = Field(
        False,
        description="Also require the challenger to beat the untouched base encoder it was "
        "continued from (pretrain.base_model), scored by evaluate on the same split: every "
        "gate metric clears its min_delta over the base's value, as over a champion's. "
        "Fails when no base was evaluated.",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _mapping_form(cls, v: Any) -> Any:
        """Accepts ``{name: {min_delta, higher_is_better}}`` besides the list form."""
        if isinstance(v, dict):
            return [{"name": k, **(spec or {})} for k, spec in v.items()]
        return v

    @field_validator("metrics")
    @classmethod
    def _unique_names(cls, v: list[GateMetric]) -> list[GateMetric]:
        names = [m.name for m in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"gate.metrics names must be unique; repeated: {dupes}")
        return v


class RegisterModelConfig(StrictModel):
    """How the exported model is registered in the MLflow Model Registry and gated."""

    model_name: str = Field(
        "twhin-bert",
        min_length=1,
        max_length=256,
        description="Name of the registered model in the MLflow Model Registry.",
    )
    task: Literal["feature-extraction"] = Field(
        "feature-extraction",
        description="transformers pipeline task the model is logged with (mlflow.transformers).",
    )
    gate: GateConfig = Field(
        default_factory=GateConfig,
        description="Promotion gate comparing the new version (challenger) with the champion.",
    )
    auto_promote: bool = Field(
        False,
        description="Move the `champion` alias to the new version when it passes the gate "
        "(scheduled retraining); otherwise a human approves with `twhin-bert registry approve`.",
    )

    @field_validator("model_name")
    @classmethod
    def _name_chars(cls, v: str) -> str:
        if v != v.strip() or "'" in v or '"' in v:
            raise ValueError(
                f"model_name {v!r}: no surrounding spaces or quotes (it goes into MLflow filters)"
            )
        return v
