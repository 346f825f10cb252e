"""Config of the build_graph stage (defaults: tiny CPU settings)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator, model_validator

from twhin_bert.common.config import StrictModel
from twhin_bert.common.schemas import ENGAGEMENT_TYPES


class BuildGraphConfig(StrictModel):
    """How ingested engagements become the TwHIN in PyTorch-BigGraph's input format."""

    relations: list[str] = Field(
        list(ENGAGEMENT_TYPES),
        description="Engagement types kept as relations, in PBG relation-index order. "
        "Engagements of other (known) types are dropped and counted.",
    )
    min_user_degree: int = Field(
        1,
        ge=1,
        description="Users with fewer edges are dropped (applied with the tweet "
        "filter repeatedly until both hold: a k-core style filter).",
    )
    min_tweet_degree: int = Field(
        1, ge=1, description="Tweets with fewer edges are dropped (see min_user_degree)."
    )
    start: datetime | None = Field(
        None, description="Keep engagements at or after this time (ISO 8601, UTC if naive)."
    )
    end: datetime | None = Field(
        None, description="Keep engagements strictly before this time (ISO 8601, UTC if naive)."
    )
    window_days: float | None = Field(
        None,
        gt=0,
        description="A rolling window instead of start/end: keep the engagements of the "
        "window_days days before the window end (the run's window_end, else a recurring "
        "KFP run's scheduled time, else the run's creation time). Retraining schedules set it.",
    )
    valid_fraction: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Share of edges in the valid split (not trained on; embed_graph measures "
        "link prediction on it with eval_split: valid).",
    )
    test_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of edges in the test split (not trained on; embed_graph's link "
        "prediction by default).",
    )
    holdout_valid_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of tweets (by a seeded hash of the id) kept out of the graph, and "
        "so out of pair mining and stage-2 training, for the evaluate stage's validation "
        "split. Their engagements are dropped and counted (dropped.eval_holdout).",
    )
    holdout_test_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of tweets kept out of the graph for the evaluate stage's test "
        "split (see holdout_valid_fraction). 0 and 0 disable the holdout: evaluate then "
        "splits on its own and its engagement numbers include tweets seen in training.",
    )
    num_partitions: int = Field(
        1, ge=1, description="PBG partitions per entity type (buckets = partitions squared)."
    )
    batch_rows: int = Field(
        1_000_000, ge=1_000, description="Rows per batch when reading the ingested engagements."
    )
    workers: int = Field(
        0,
        ge=0,
        description="Processes reading the engagements (checks, filters, dictionary encoding "
        "of pieces of about batch_rows rows) in parallel: 0 = every CPU the pod may use (its "
        "affinity mask, capped by a cgroup CPU limit), 1 = in the stage's own process. The "
        "graph does not depend on it.",
    )
    seed: int = Field(0, description="Seed of the partition assignment and the edge split.")

    @field_validator("relations")
    @classmethod
    def _known_relations(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in ENGAGEMENT_TYPES]
        if unknown:
            raise ValueError(f"unknown engagement types {unknown}; known: {list(ENGAGEMENT_TYPES)}")
        if not v or len(set(v)) != len(v):
            raise ValueError(f"relations must be non-empty and unique, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> BuildGraphConfig:
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"valid_fraction + test_fraction must be < 1 (got "
                f"{self.valid_fraction} + {self.test_fraction}): no edges left to train on"
            )
        if self.holdout_valid_fraction + self.holdout_test_fraction >= 1.0:
            raise ValueError(
                f"holdout_valid_fraction + holdout_test_fraction must be < 1 (got "
                f"{self.holdout_valid_fraction} + {self.holdout_test_fraction}): no tweet left "
                "for the graph"
            )
        if self.window_days is not None and (self.start is not None or self.end is not None):
            raise ValueError("window_days replaces start/end: set one or the other")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"time window is empty: start {self.start} >= end {self.end}")
        return self
