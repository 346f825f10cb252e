"""The files of a generated demo TwHIN: names written by :func:`.generate.generate_demo`,
read by ``twhin-bert run`` and the benchmarks (one definition)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DemoFolder:
    """A demo TwHIN folder: raw inputs in the formats a user supplies, plus the planted truth."""

    TWEETS = "tweets.jsonl"
    ENGAGEMENTS = "engagements.jsonl"
    PARALLEL = "parallel.jsonl"
    SUMMARY = "demo.json"
    TRUTH_DIR = "truth"
    TWEET_TOPICS = "tweet_topics.parquet"
    USER_INTERESTS = "user_interests.parquet"
    TOPICS = "topics.json"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def tweets(self) -> Path:
        return self.root / self.TWEETS

    @property
    def engagements(self) -> Path:
        return self.root / self.ENGAGEMENTS

    @property
    def parallel(self) -> Path:
        return self.root / self.PARALLEL

    @property
    def summary(self) -> Path:
        return self.root / self.SUMMARY

    @property
    def truth(self) -> Path:
        return self.root / self.TRUTH_DIR

    @property
    def tweet_topics(self) -> Path:
        return self.truth / self.TWEET_TOPICS

    def complete(self) -> bool:
        """Whether a finished generation is here (the summary is written last)."""
        return self.summary.is_file() and self.engagements.is_file()

    def counts(self) -> dict[str, Any]:
        """The generated counts (users, tweets, engagements, ...) from the summary."""
        return dict(json.loads(self.summary.read_text(encoding="utf-8"))["counts"])

    @classmethod
    def files(cls) -> list[str]:
        """The folder's files, relative to it."""
        truth = (cls.TWEET_TOPICS, cls.USER_INTERESTS, cls.TOPICS)
        return [cls.TWEETS, cls.ENGAGEMENTS, cls.PARALLEL, *(f"{cls.TRUTH_DIR}/{f}" for f in truth)]
