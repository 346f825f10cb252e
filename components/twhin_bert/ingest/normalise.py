"""Field-level normalisation: timestamps, ids and engagement types.

Every function here works on one value and raises :class:`FieldError` with the quarantine
reason when the value cannot be used, so the row loop in :mod:`twhin_bert.ingest.ingest`
stays a flat sequence of checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from twhin_bert.common.schemas import ENGAGEMENT_TYPES

# Quarantine reasons (the values of quarantine.parquet's `reason` column).
UNPARSEABLE_LINE = "unparseable_line"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
EMPTY_TEXT = "empty_text"
INVALID_UTF8 = "invalid_utf8"
BAD_TIMESTAMP = "bad_timestamp"
UNKNOWN_ENGAGEMENT_TYPE = "unknown_engagement_type"
UNKNOWN_TWEET = "unknown_tweet"
DUPLICATE_TWEET = "duplicate_tweet"
DUPLICATE_ENGAGEMENT = "duplicate_engagement"
ENGAGED_BEFORE_TWEET = "engaged_before_tweet"

TWEET_REASONS = (
    UNPARSEABLE_LINE,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_UTF8,
    EMPTY_TEXT,
    BAD_TIMESTAMP,
    DUPLICATE_TWEET,
)
ENGAGEMENT_REASONS = (
    UNPARSEABLE_LINE,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_UTF8,
    BAD_TIMESTAMP,
    UNKNOWN_ENGAGEMENT_TYPE,
    UNKNOWN_TWEET,
    ENGAGED_BEFORE_TWEET,
    DUPLICATE_ENGAGEMENT,
)


class FieldError(ValueError):
    """A field value that sends its row to quarantine; ``reason`` is the quarantine reason."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.reason = reason
        self.field = field


# --- ids ------------------------------------------------------------------------------
def coerce_id(value: object, field: str) -> str:
    """An id as a string: strings (stripped) and integers are accepted.

    Raises:
        FieldError: ``missing_field`` for null/empty, ``wrong_type`` for anything else
            (floats, booleans, lists...).
    """
    if type(value) is str:
        value = value.strip()
        if not value:
            raise FieldError(MISSING_FIELD, field)
        return value
    if value is None:
        raise FieldError(MISSING_FIELD, field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldError(WRONG_TYPE, field)


# --- timestamps -----------------------------------------------------------------------
#: Epoch values at or above this magnitude are milliseconds, below it seconds
#: (1e11 s is the year 5138; 1e11 ms is March 1973).
EPOCH_MS_THRESHOLD = 1e11
_MIN_MS = 0  # 1970-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_TWITTER_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


def parse_timestamp(value: object, field: str) -> int:
    """A timestamp as milliseconds since the Unix epoch (UTC).

    Accepted: ISO 8601 strings (``2024-05-01T12:00:00Z``, offsets, dates; naive means
    UTC), the classic Twitter API format, epoch seconds or milliseconds as numbers or
    numeric strings (milliseconds when ``abs(value) >= 1e11``), and ``datetime`` objects
    (Parquet timestamps). The result must lie in [1970-01-01, 2100-01-01).

    Raises:
        FieldError: ``missing_field`` (null/empty), ``wrong_type`` (booleans, lists...),
            ``bad_timestamp`` (unparseable or out of range).
    """
    if type(value) is str:
        s = value.strip()
        if not s:
            raise FieldError(MISSING_FIELD, field)
        ms = _parse_string(s, field)
    elif isinstance(value, bool):
        raise FieldError(WRONG_TYPE, field)
    elif isinstance(value, int | float):
        ms = _epoch_to_ms(float(value), field)
    elif isinstance(value, datetime):
        ms = _datetime_to_ms(value)
    elif value is None:
        raise FieldError(MISSING_FIELD, field)
    else:
        raise FieldError(WRONG_TYPE, field)
    if not _MIN_MS <= ms < _MAX_MS:
        raise FieldError(BAD_TIMESTAMP, field)
    return ms


def _parse_string(s: str, field: str) -> int:
    c = s[0]
    if c.isdigit() or c in "-+.":
        if s.isdigit():  # the common epoch case, exact for big millisecond values
            v = int(s)
            return v if v >= EPOCH_MS_THRESHOLD else v * 1000
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            pass
        else:
            return _datetime_to_ms(dt)
        try:
            return _epoch_to_ms(float(s), field)
        except ValueError:
            raise FieldError(BAD_TIMESTAMP, field) from None
    try:
        return _datetime_to_ms(datetime.strptime(s, _TWITTER_FORMAT))
    except ValueError:
        raise FieldError(BAD_TIMESTAMP, field) from None


def _epoch_to_ms(v: float, field: str) -> int:
    if not math.isfinite(v):
        raise FieldError(BAD_TIMESTAMP, field)
    return round(v) if abs(v) >= EPOCH_MS_THRESHOLD else round(v * 1000)


def _datetime_to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // _ONE_MS  # exact integer arithmetic, floors to the millisecond


# --- engagement types -----------------------------------------------------------------
class EngagementTypes:
    """Maps engagement type spellings to the canonical types (case-insensitive)."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        """Args:
        aliases: Spelling -> canonical type; canonical names map to themselves.
        """
        self._map = {t: t for t in ENGAGEMENT_TYPES}
        self._map.update({k.strip().lower(): v for k, v in aliases.items()})

    def canonical(self, value: object, field: str = "engagement_type") -> str:
        """The canonical type of ``value``.

        Raises:
            FieldError: ``missing_field``, ``wrong_type`` (not a string) or
                ``unknown_engagement_type``.
        """
        if not isinstance(value, str):
            raise FieldError(MISSING_FIELD if value is None else WRONG_TYPE, field)
        t = self._map.get(value)
        if t is not None:
            return t
        key = value.strip().lower()
        if not key:
            raise FieldError(MISSING_FIELD, field)
        t = self._map.get(key)
        if t is None:
            raise FieldError(UNKNOWN_ENGAGEMENT_TYPE, field)
        return t
