"""Property-based bad input: random bytes, truncated JSON, wrong types, mixed encodings.

Whatever the bytes, ingest must not crash, and every row must land exactly once: in the
output or in the quarantine, with the reason the generator planted.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.ingest import run_ingest

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Arbitrary bytes are mostly bad rows: accounting is tested here, not the share limits.
CFG = IngestConfig(batch_size=7, min_rows_kept=0, max_quarantine_share=1.0)


def _ingest(files: dict[str, bytes], tweets: list[str], engagements: list[str]) -> tuple:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, data in files.items():
            (d / name).write_bytes(data)
        out = d / "out"
        m = run_ingest(
            CFG,
            out,
            tweets=[str(d / t) for t in tweets],
            engagements=[str(d / e) for e in engagements],
        )
        tables = {
            n: pq.read_table(out / f"{n}.parquet") for n in ("tweets", "engagements", "quarantine")
        }
    return m, tables


def _check_files_agree(m: dict, tables: dict) -> None:
    q = Counter(tables["quarantine"]["kind"].to_pylist())
    for kind in ("tweets", "engagements"):
        k = m[kind]
        assert k["rows_in"] == k["rows_out"] + k["quarantined_total"]
        assert tables[kind].num_rows == k["rows_out"]
        assert q.get(kind, 0) == k["quarantined_total"]


def _rows_of(data: bytes) -> int:
    """Non-blank lines: what a JSONL reader counts as rows."""
    lines = data.split(b"\n")
    if data.startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return sum(1 for line in lines if line.strip())


@SETTINGS
@given(tweets=st.binary(max_size=2000), engagements=st.binary(max_size=2000))
def test_random_bytes_jsonl(tweets: bytes, engagements: bytes) -> None:
    m, tables = _ingest({"t.jsonl": tweets, "e.jsonl": engagements}, ["t.jsonl"], ["e.jsonl"])
    _check_files_agree(m, tables)
    assert m["tweets"]["rows_in"] == _rows_of(tweets)
    assert m["engagements"]["rows_in"] == _rows_of(engagements)


@SETTINGS
@given(tweets=st.binary(max_size=2000), engagements=st.binary(max_size=2000))
def test_random_bytes_text_and_csv(tweets: bytes, engagements: bytes) -> None:
    header = b"user_id,tweet_id,engagement_type,engaged_at\n"
    m, tables = _ingest(
        {"x_text.txt": tweets, "e.csv": header + engagements}, ["x_text.txt"], ["e.csv"]
    )
    _check_files_agree(m, tables)
    n_lines = len(tweets.split(b"\n")) - (1 if tweets.endswith(b"\n") or not tweets else 0)
    assert m["tweets"]["rows_in"] == n_lines


LETTERS = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=30).filter(str.strip)
NON_ASCII = st.text(alphabet="éàüñçøß", min_size=1, max_size=5)
VALID_TS = st.sampled_from(["2024-05-01T00:00:00Z", 1714521600, 1714521600000, "2024-05-02"])
WRONG = st.one_of(st.floats(allow_nan=False), st.lists(st.integers(), max_size=2), st.booleans())


@st.composite
def tweet_line(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    """(planted reason or 'ok', the line, the tweet id when ok)."""
    kind = draw(st.sampled_from(["ok", "truncated", "wrong_type", "latin1", "bad_ts", "empty"]))
    tid = f"t{draw(st.integers(0, 15))}"
    rec = {"tweet_id": tid, "author_id": "a", "text": draw(LETTERS), "created_at": draw(VALID_TS)}
    if kind == "truncated":
        line = json.dumps(rec).encode()
        return "unparseable_line", line[: draw(st.integers(1, len(line) - 1))], None
    if kind == "wrong_type":
        rec[draw(st.sampled_from(["tweet_id", "author_id", "text"]))] = draw(WRONG)
        return "wrong_type", json.dumps(rec).encode(), None
    if kind == "latin1":
        rec["text"] = rec["text"] + draw(NON_ASCII)
        return "invalid_utf8", json.dumps(rec, ensure_ascii=False).encode("latin-1"), None
    if kind == "bad_ts":
        rec["created_at"] = draw(st.sampled_from(["not a date", "2024-99-99", -1e15, "13/13/13"]))
        return "bad_timestamp", json.dumps(rec).encode(), None
    if kind == "empty":
        rec["text"] = draw(st.sampled_from(["", "   ", "\n\t"]))
        return "empty_text", json.dumps(rec).encode(), None
    return "ok", json.dumps(rec, ensure_ascii=draw(st.booleans())).encode(), tid


@SETTINGS
@given(st.lists(tweet_line(), max_size=40), st.booleans())
def test_planted_reasons_exact(lines: list[tuple[str, bytes, str | None]], crlf: bool) -> None:
    data = (b"\r\n" if crlf else b"\n").join(line for _, line, _ in lines)
    engagements = b"".join(
        json.dumps(
            {"user_id": "u", "tweet_id": f"t{i}", "engagement_type": "like", "engaged_at": 1.75e9}
        ).encode()
        + b"\n"
        for i in range(16)
    )
    m, tables = _ingest({"t.jsonl": data, "e.jsonl": engagements}, ["t.jsonl"], ["e.jsonl"])
    _check_files_agree(m, tables)

    expected: Counter[str] = Counter()
    kept: list[str] = []
    for reason, _, tid in lines:
        if reason != "ok":
            expected[reason] += 1
        elif tid in kept:
            expected["duplicate_tweet"] += 1
        else:
            kept.append(tid)
    got = {r: n for r, n in m["tweets"]["quarantined"].items() if n}
    assert got == dict(expected)
    assert tables["tweets"]["tweet_id"].to_pylist() == kept
    # Engagements to the tweets that made it are kept, the rest are unknown tweets.
    assert m["engagements"]["rows_out"] == len(kept)
    assert m["engagements"]["quarantined"]["unknown_tweet"] == 16 - len(kept)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252", "utf-8-sig"]),
            st.text(alphabet="abcdeéñü€ 😀", min_size=1, max_size=20),
        ),
        max_size=20,
    )
)
def test_mixed_encodings_text_file(items: list[tuple[str, str]]) -> None:
    """A text file whose lines come in different encodings: each undecodable line is
    quarantined as invalid_utf8, the others kept or counted as empty."""
    encoded = []
    for enc, text in items:
        try:
            encoded.append(text.encode(enc))
        except UnicodeEncodeError:
            encoded.append(text.encode("utf-8"))
    encoded = [e.replace(b"\n", b" ") for e in encoded]
    data = b"\n".join(encoded) + (b"\n" if encoded else b"")
    m, tables = _ingest({"mixed_text.txt": data}, ["mixed_text.txt"], [])
    _check_files_agree(m, tables)
    assert m["tweets"]["rows_in"] == len(encoded)
    bad = 0
    for i, e in enumerate(encoded):
        if i == 0 and e.startswith(b"\xef\xbb\xbf"):
            e = e[3:]
        try:
            e.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
    assert m["tweets"]["quarantined"]["invalid_utf8"] == bad
