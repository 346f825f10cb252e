"""Configuration of the ingest stage."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from twhin_bert.common.config import StrictModel
from twhin_bert.common.schemas import ENGAGEMENT_TYPES

#: Engagement type spellings accepted besides the canonical ones (matched case-insensitively,
#: surrounding whitespace ignored). Canonical types map to themselves implicitly.
DEFAULT_ENGAGEMENT_ALIASES: dict[str, str] = {
    "like": "fave",
    "liked": "fave",
    "favorite": "fave",
    "favourite": "fave",
    "fav": "fave",
    "favorited": "fave",
    "rt": "retweet",
    "retweeted": "retweet",
    "repost": "retweet",
    "replied": "reply",
    "comment": "reply",
    "quote_tweet": "quote",
    "quote-tweet": "quote",
    "quotetweet": "quote",
    "quoted": "quote",
    "qt": "quote",
}


class IngestConfig(StrictModel):
    """How raw tweets and engagements are read, validated, normalised and quarantined."""

    batch_size: int = Field(
        8192,
        ge=1,
        le=1_000_000,
        description="Rows parsed, validated and written per batch (bounds memory; one Parquet "
        "row group per batch).",
    )
    workers: int = Field(
        0,
        ge=0,
        description="Processes that parse, validate, normalise and language-identify input "
        "pieces in parallel: 0 = every CPU the pod may use (its affinity mask, capped by a "
        "cgroup CPU limit), 1 = in the stage's own process. Deduplication, the tweet-id checks "
        "and the quarantine stay serial in input order, so the output does not depend on it.",
    )
    piece_bytes: int = Field(
        4 << 20,
        ge=1 << 16,
        description="Input files are cut into pieces of about this many bytes, the unit of "
        "parallel work: uncompressed JSONL at line starts, Parquet by whole row groups; CSV, "
        "gzip and text files are one piece each. The pieces (and so the output's row groups) "
        "depend on this size, never on workers.",
    )
    read_chunk_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Bytes read from an input at a time when splitting line-based files.",
    )
    max_line_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Longest accepted line/row; longer ones are quarantined as unparseable_line "
        "without being held in memory.",
    )
    raw_max_chars: int = Field(
        4000,
        ge=16,
        description="The raw row text kept in quarantine.parquet is cut to this many characters.",
    )
    csv_delimiter: str = Field(
        ",", min_length=1, max_length=1, description="Field delimiter of CSV inputs."
    )
    csv_max_record_lines: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Most physical lines one CSV record may span (a quoted field holding "
        "newlines; a tweet has at most 280 characters). A record whose quote does not close "
        "within them, or that swallowed a line which is a whole row of its own, costs its "
        "first line (quarantined as unparseable_line) and reading resumes on the next line.",
    )
    max_future_skew_s: float = Field(
        86_400.0,
        ge=0,
        description="Timestamps (created_at, engaged_at) later than the start of the run plus "
        "this many seconds are quarantined as bad_timestamp (default one day of clock skew).",
    )
    warn_quarantine_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Warn (one log line per kind, with the reasons and an example) when more "
        "than this share of a kind's rows is quarantined. The demo data quarantine none.",
    )
    max_quarantine_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Fail the stage when more than this share of a kind's rows is quarantined "
        "(most of the input being bad means a wrong file or format, not dirty data); 1.0: "
        "never. Checked only for kinds that were given inputs.",
    )
    min_rows_kept: int = Field(
        1,
        ge=0,
        description="Fail the stage when a kind that was given inputs keeps fewer rows than "
        "this (default 1: an empty input, or one whose every row was quarantined, fails; "
        "0: an empty output is accepted).",
    )
    engagement_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ENGAGEMENT_ALIASES),
        description="Accepted engagement type spellings -> canonical type (fave|retweet|reply|"
        "quote); matched case-insensitively. The canonical names are always accepted.",
    )
    trust_input_lang: bool = Field(
        True,
        description="Use an input row's `lang` when it is a language code the language "
        "identifier knows; detect otherwise.",
    )
    langid_min_confidence: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Detected languages with a lower (normalised) probability become 'und'.",
    )
    langid_min_letters: int = Field(
        5,
        ge=0,
        description="Texts with fewer letters (after removing mentions, URLs and '#') are "
        "'und' without detection.",
    )
    langid_languages: list[str] | None = Field(
        None,
        description="Restrict language identification to these ISO 639 codes (None: all the "
        "model knows).",
    )

    @field_validator("engagement_aliases")
    @classmethod
    def _aliases_map_to_known_types(cls, v: dict[str, str]) -> dict[str, str]:
        bad = {k: t for k, t in v.items() if t not in ENGAGEMENT_TYPES}
        if bad:
            raise ValueError(
                f"engagement_aliases must map to one of {list(ENGAGEMENT_TYPES)}; got {bad}"
            )
        return {k.strip().lower(): t for k, t in v.items()}

    @model_validator(mode="after")
    def _warn_below_fail(self) -> IngestConfig:
        if self.warn_quarantine_share > self.max_quarantine_share:
            raise ValueError(
                f"warn_quarantine_share ({self.warn_quarantine_share}) must not exceed "
                f"max_quarantine_share ({self.max_quarantine_share})"
            )
        return self

    @field_validator("langid_languages")
    @classmethod
    def _languages_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("langid_languages must name at least one language (or be null)")
        return v
