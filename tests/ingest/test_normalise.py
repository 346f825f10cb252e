"""Field-level normalisation: text, hashtags, timestamps, ids, engagement type aliases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twhin_bert.common.text import extract_hashtags, langid_text, normalise_text
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.normalise import EngagementTypes, FieldError, coerce_id, parse_timestamp


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hi @Bob_1 see https://t.co/xyz now", "Hi @user see http now"),
        ("  lots\n\nof \t space  ", "lots of space"),
        ("mail me at a@b.com", "mail me at a@b.com"),  # not a mention
        ("www.example.com/page?x=1 ok", "http ok"),
        ("@user already", "@user already"),
        ("fish &amp; chips &lt;3", "fish & chips <3"),
        ("#Hashtags stay #Here", "#Hashtags stay #Here"),
        ("@josé_ñ hola", "@user hola"),  # unicode mention
        ("   ", ""),
    ],
)
def test_normalise_text(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#NLP at the #Café, #nlp again", ["nlp", "café"]),
        ("#1 is not a tag but #2024election is", ["2024election"]),
        ("html &#39; entity and url http://x.com/#frag", []),
        ("mid#word no, but ＃fullwidth yes", ["fullwidth"]),
        ("हिंदी #भारत_माता test", ["भारत_माता"]),  # combining vowel signs kept
        ("#Über_Alles!", ["über_alles"]),
        ("no tags", []),
    ],
)
def test_extract_hashtags(raw: str, expected: list[str]) -> None:
    assert extract_hashtags(raw) == expected


def test_langid_text_drops_twitter_tokens() -> None:
    assert langid_text("@user hola #amigos http://t.co/x") == "hola amigos"


UTC = timezone.utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00.123", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("Wed May 01 12:00:00 +0000 2024", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (1714564800, datetime(2024, 5, 1, 12, tzinfo=UTC)),  # seconds
        (1714564800.5, datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        (1714564800123, datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),  # ms by magnitude
        ("1714564800", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # numeric strings (CSV)
        ("1714564800123", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        (datetime(2024, 5, 1, 12), datetime(2024, 5, 1, 12, tzinfo=UTC)),  # naive = UTC
    ],
)
def test_parse_timestamp(value: object, expected: datetime) -> None:
    assert parse_timestamp(value, "t") == int(expected.timestamp() * 1000)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "bad_timestamp"),
        ("2024-13-01", "bad_timestamp"),
        ("-5", "bad_timestamp"),  # before 1970
        (4_200_000_000_000, "bad_timestamp"),  # after 2100
        (float("nan"), "bad_timestamp"),
        ("", "missing_field"),
        (None, "missing_field"),
        (True, "wrong_type"),
        ([2024], "wrong_type"),
        ({"t": 1}, "wrong_type"),
    ],
)
def test_parse_timestamp_rejects(value: object, reason: str) -> None:
    with pytest.raises(FieldError) as e:
        parse_timestamp(value, "created_at")
    assert e.value.reason == reason and e.value.field == "created_at"


@given(st.datetimes(min_value=datetime(1974, 1, 1), max_value=datetime(2099, 12, 31)))
def test_parse_timestamp_roundtrips_iso(dt: datetime) -> None:
    dt = dt.replace(tzinfo=UTC)
    ms = parse_timestamp(dt.isoformat(), "t")
    assert ms == (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert parse_timestamp(ms, "t") == ms  # ms in, ms out (magnitude rule)


@pytest.mark.parametrize(
    ("value", "expected"), [("abc", "abc"), ("  42 ", "42"), (42, "42"), (2**70, str(2**70))]
)
def test_coerce_id(value: object, expected: str) -> None:
    assert coerce_id(value, "id") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "missing_field"), ("  ", "missing_field"), (1.5, "wrong_type"), (True, "wrong_type")],
)
def test_coerce_id_rejects(value: object, reason: str) -> None:
    with pytest.raises(FieldError) as e:
        coerce_id(value, "id")
    assert e.value.reason == reason


def test_engagement_aliases() -> None:
    types = EngagementTypes(IngestConfig().engagement_aliases)
    cases = {
        "fave": "fave",
        "LIKE": "fave",
        " Favorite ": "fave",
        "favourite": "fave",
        "RT": "retweet",
        "Retweet": "retweet",
        "reply": "reply",
        "quote_tweet": "quote",
        "Quote": "quote",
    }
    for raw, expected in cases.items():
        assert types.canonical(raw) == expected, raw
    for bad, reason in [
        ("boost", "unknown_engagement_type"),
        ("", "missing_field"),
        (None, "missing_field"),
        (3, "wrong_type"),
    ]:
        with pytest.raises(FieldError) as e:
            types.canonical(bad)
        assert e.value.reason == reason


def test_config_validates_aliases() -> None:
    with pytest.raises(ValueError, match="engagement_aliases"):
        IngestConfig(engagement_aliases={"boost": "amplify"})
    cfg = IngestConfig(engagement_aliases={" Boost ": "retweet"})
    assert EngagementTypes(cfg.engagement_aliases).canonical("BOOST") == "retweet"
    with pytest.raises(ValueError, match="extra"):
        IngestConfig(batchsize=3)
