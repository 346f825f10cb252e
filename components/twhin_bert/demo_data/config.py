"""Config of the demo TwHIN generator: sizes, seed and the rates of the planted structure."""

from __future__ import annotations

from pydantic import Field, model_validator

from twhin_bert.common.config import StrictModel


class DemoDataConfig(StrictModel):
    """Knobs of :func:`twhin_bert.demo_data.generate.generate`; defaults make ~100K engagements."""

    users: int = Field(2000, ge=10, description="Number of users.")
    tweets: int = Field(10000, ge=10, description="Number of tweets.")
    seed: int = Field(0, ge=0, description="Seed of every random choice (same seed, same bytes).")
    days: int = Field(28, ge=1, le=3650, description="Length of the time window in days.")
    start: str = Field(
        "2026-09-01T00:00:00Z", description="Start of the window (ISO 8601 UTC, whole seconds)."
    )
    engagements_per_tweet: float = Field(
        10.0, gt=0, le=10000, description="Mean engagements drawn per tweet (before dedup)."
    )
    parallel_pairs: int = Field(300, ge=0, description="Translation pairs in parallel.jsonl.")
    interest_follow: float = Field(
        0.85,
        ge=0,
        le=1,
        description="Share of engagements whose topic is drawn from the user's interests "
        "(the rest go to tweets drawn by popularity alone: noise).",
    )
    same_language: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Share of interest-driven engagements with tweets in the user's language.",
    )
    max_interests: int = Field(
        4, ge=1, le=8, description="Most topics a user is interested in (1 to this, Dirichlet)."
    )
    author_on_topic: float = Field(
        0.9, ge=0, le=1, description="Share of tweets whose topic is one of the author's interests."
    )
    type_rates: dict[str, float] = Field(
        default_factory=lambda: {"fave": 0.70, "retweet": 0.15, "reply": 0.10, "quote": 0.05},
        description="Relative rates of the engagement types fave, retweet, reply, quote.",
    )
    generic_text: float = Field(
        0.25, ge=0, le=1, description="Share of tweets whose sentence says nothing about a topic."
    )
    group_phrase: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Share of topical sentences that use a phrase shared by the topic's group.",
    )
    neighbour_phrase: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Share of topical sentences that use a neighbouring topic's own phrase.",
    )
    topic_hashtag: float = Field(
        0.4, ge=0, le=1, description="Share of tweets carrying one of their topic's hashtags."
    )
    group_hashtag: float = Field(
        0.08, ge=0, le=1, description="Share of tweets carrying their topic group's hashtag."
    )
    generic_hashtag: float = Field(
        0.1, ge=0, le=1, description="Share of tweets carrying a hashtag unrelated to topics."
    )
    mention: float = Field(0.15, ge=0, le=1, description="Share of tweets with an @mention.")
    url: float = Field(0.2, ge=0, le=1, description="Share of tweets with a t.co URL.")
    emoji: float = Field(0.45, ge=0, le=1, description="Share of tweets with emoji.")
    popularity_sigma: float = Field(
        1.8,
        ge=0,
        le=4,
        description="Log-normal spread of tweet popularity (heavier tail with larger values).",
    )

    @model_validator(mode="after")
    def _check(self) -> DemoDataConfig:
        types = ("fave", "retweet", "reply", "quote")
        if set(self.type_rates) != set(types):
            raise ValueError(
                f"type_rates: expected exactly the keys {list(types)}, got {sorted(self.type_rates)}"
            )
        if any(v < 0 for v in self.type_rates.values()) or sum(self.type_rates.values()) <= 0:
            raise ValueError(
                f"type_rates: rates must be >= 0 with a positive sum: {self.type_rates}"
            )
        if self.group_phrase + self.neighbour_phrase > 1:
            raise ValueError(
                f"group_phrase + neighbour_phrase must be <= 1, "
                f"got {self.group_phrase} + {self.neighbour_phrase}"
            )
        if self.topic_hashtag + self.group_hashtag + self.generic_hashtag > 1:
            raise ValueError("topic_hashtag + group_hashtag + generic_hashtag must be <= 1")
        return self
