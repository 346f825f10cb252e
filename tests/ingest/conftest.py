"""Fixtures of the ingest tests: a hand-written input with every quarantine reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TS = "2024-05-01T00:00:00Z"


def _line(**kw: object) -> bytes:
    return json.dumps(kw, ensure_ascii=False).encode()


#: tweets.jsonl, line by line; the comment says where each row must end up.
TWEET_LINES: list[bytes] = [
    _line(
        tweet_id="t1",
        author_id="a1",
        text="Hello world, this is a tweet #One",
        created_at=TS,
        lang="en",
    ),  # 1 ok
    _line(
        tweet_id="t2",
        author_id="a2",
        text="Hoy es un día muy bonito y vamos a la playa con @maria y https://t.co/abc #Dos #dos",
        created_at=1714521600,
    ),  # 2 ok, epoch seconds
    _line(
        tweet_id=3, author_id="a3", text="third tweet here", created_at=1714521600000, lang="EN-us"
    ),  # 3 ok, epoch ms, integer id
    b"not json at all",  # 4 unparseable_line
    _line(tweet_id="t4", author_id="a4", created_at=TS),  # 5 missing_field (text)
    _line(tweet_id=["x"], author_id="a5", text="wrong id type", created_at=TS),  # 6 wrong_type
    _line(tweet_id="t6", author_id="a6", text=" \n\t ", created_at=TS),  # 7 empty_text
    b'{"tweet_id": "t7", "author_id": "a7", "text": "caf\xe9", "created_at": "2024-05-01"}',
    # 8 invalid_utf8 (latin-1 byte)
    _line(tweet_id="t8", author_id="a8", text="bad time", created_at="yesterday"),  # 9 bad_ts
    _line(tweet_id="t1", author_id="a1", text="again", created_at=TS),  # 10 duplicate_tweet
    b"   ",  # 11 blank: not a row
    b'{"tweet_id": "t9", "author_id": "a9", "text": "lone \\ud800 surrogate", "created_at": 5}',
    # 12 invalid_utf8 (lone surrogate escape)
    b'{"tweet_id": "t10", "author_id": "a10", "text": "truncated',  # 13 unparseable_line
]
TWEETS_EXPECTED = {
    "rows_in": 12,
    "rows_out": 3,
    "quarantined": {
        "unparseable_line": 2,
        "missing_field": 1,
        "wrong_type": 1,
        "invalid_utf8": 2,
        "empty_text": 1,
        "bad_timestamp": 1,
        "duplicate_tweet": 1,
    },
}

ENGAGEMENT_CSV: list[bytes] = [
    b"user_id,tweet_id,engagement_type,engaged_at,extra",
    b"u1,t1,like,2024-05-02T00:00:00Z,x",  # 2 ok (fave)
    b"u1,t1,FAVE,2024-05-02T01:00:00Z,x",  # 3 duplicate_engagement
    b"u2,t2,RT,1714608000,x",  # 4 ok (retweet)
    b"u2,t2,quote_tweet,1714608000000,x",  # 5 ok (quote)
    b'u3,3,"reply",2024-05-02,"multi',  # 6 ok (reply), quoted field over two lines
    b'line"',  # (7)
    b"u3,t404,reply,2024-05-02,x",  # 8 unknown_tweet
    b"u4,t1,boost,2024-05-02,x",  # 9 unknown_engagement_type
    b"u5,t1,fave,not-a-date,x",  # 10 bad_timestamp
    b"u6,,fave,2024-05-02,x",  # 11 missing_field
    b"u7,t1,fave",  # 12 unparseable_line (3 fields, header has 5)
    b"u\xff8,t1,fave,2024-05-02,x",  # 13 invalid_utf8
    b"u9,t1,fave,99999999999999999,x",  # 14 bad_timestamp (year ~3 million)
    b"",  # 15 blank: not a row
]
ENGAGEMENT_JSONL: list[bytes] = [
    _line(user_id=True, tweet_id="t1", engagement_type="fave", engaged_at=TS),  # wrong_type
    _line(user_id="u10", tweet_id="t2", engagement_type=5, engaged_at=TS),  # wrong_type
    _line(user_id=10, tweet_id="t2", engagement_type=" Favorite ", engaged_at=TS),  # ok (fave)
]
ENGAGEMENTS_EXPECTED = {
    "rows_in": 15,
    "rows_out": 5,
    "quarantined": {
        "unparseable_line": 1,
        "missing_field": 1,
        "wrong_type": 2,
        "invalid_utf8": 1,
        "bad_timestamp": 2,
        "unknown_engagement_type": 1,
        "unknown_tweet": 1,
        "duplicate_engagement": 1,
    },
}


@pytest.fixture()
def fixture_inputs(tmp_path: Path) -> dict[str, Path]:
    """The hand-written inputs: tweets.jsonl, engagements.csv, engagements.jsonl."""
    d = tmp_path / "raw"
    d.mkdir()
    (d / "tweets.jsonl").write_bytes(b"\n".join(TWEET_LINES) + b"\n")
    (d / "engagements.csv").write_bytes(b"\r\n".join(ENGAGEMENT_CSV))
    (d / "engagements.jsonl").write_bytes(b"\n".join(ENGAGEMENT_JSONL))
    return {
        "tweets": d / "tweets.jsonl",
        "engagements_csv": d / "engagements.csv",
        "engagements_jsonl": d / "engagements.jsonl",
    }


@pytest.fixture()
def expected_counts() -> dict[str, dict]:
    """What ingest must count on :func:`fixture_inputs` (non-zero reasons only)."""
    return {"tweets": TWEETS_EXPECTED, "engagements": ENGAGEMENTS_EXPECTED}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest tests check files and metrics, not MLflow (tested once, in test_ingest)."""
    monkeypatch.setenv("TWHIN_BERT_TRACKING", "0")
