"""Streaming readers: line splitting, and each format's rows, row numbers and parse errors."""

from __future__ import annotations

import gzip
import io
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twhin_bert.ingest.ingest import text_id_prefix
from twhin_bert.ingest.readers import (
    CSV,
    JSONL,
    PARQUET,
    TEXT,
    FileReader,
    MissingColumnsError,
    RawBatch,
    TooLong,
    UnreadableInputError,
    detect_format,
    iter_lines,
    raw_text,
)

REQ = ("user_id", "tweet_id", "engagement_type", "engaged_at")


def _rows(reader: FileReader) -> RawBatch:
    out = RawBatch()
    for b in reader.batches():
        for i in range(len(b)):
            out.add(b.rows[i], b.records[i], b.errors[i], b.raws[i])
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", (JSONL, False)),
        ("a.JSON.gz", (JSONL, True)),
        ("gs://b/x/a.ndjson", (JSONL, False)),
        ("a.csv.gz", (CSV, True)),
        ("a.parquet", (PARQUET, False)),
        ("train_text.txt", (TEXT, False)),
        ("a.parquet.gz", None),
        ("a.md", None),
        ("noext", None),
    ],
)
def test_detect_format(name: str, expected: tuple[str, bool] | None) -> None:
    assert detect_format(name) == expected


def test_iter_lines_edges() -> None:
    data = b"\xef\xbb\xbfa\r\nbb\n\nccc"  # BOM, CRLF, empty line, no final newline
    assert list(iter_lines(io.BytesIO(data), 2, 100)) == [b"a", b"bb", b"", b"ccc"]
    long = b"x" * 50 + b"\nok\n" + b"y" * 50
    got = list(iter_lines(io.BytesIO(long), 7, 10))
    assert got == [b"x" * 10, b"ok", b"y" * 10]
    assert isinstance(got[0], TooLong) and not isinstance(got[1], TooLong)


@given(st.binary(max_size=300), st.integers(1, 40))
def test_iter_lines_matches_split(data: bytes, chunk: int) -> None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    expected = [line[:-1] if line.endswith(b"\r") else line for line in expected]
    assert list(iter_lines(io.BytesIO(data), chunk, 10_000)) == expected


def test_jsonl_reader_rows_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl.gz"
    lines = [
        b'{"a": 1}',
        b"",
        b"[1, 2]",
        b'{"a": "\xff"}',
        b'{"a": 2} trailing',
        b'  {"a": 3}  ',
        b"[" * 100_000,
    ]
    p.write_bytes(gzip.compress(b"\n".join(lines)))
    r = _rows(FileReader(str(p), JSONL, True, required=("a",), batch_size=2))
    assert r.rows == [1, 3, 4, 5, 6, 7]  # the blank line 2 is not a row
    assert r.errors == [
        None,
        "unparseable_line",
        "invalid_utf8",
        "unparseable_line",
        None,
        "unparseable_line",
    ]
    assert r.records[0] == {"a": 1} and r.records[4] == {"a": 3}


def test_csv_reader(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_bytes(
        b"\xef\xbb\xbf user_id ,tweet_id,engagement_type,engaged_at\n"
        b'u1,t1,fave,"2024-05-01"\n'
        b"\n"
        b'u2,"t\n2",reply,\n'
        b"u3,t3\n"
        b"u\xe94,t4,fave,1\n"
        b"u5;t5;fave;1\n"
    )
    r = _rows(FileReader(str(p), CSV, False, required=REQ))
    assert r.rows == [2, 4, 6, 7, 8]
    assert r.errors == [None, None, "unparseable_line", "invalid_utf8", "unparseable_line"]
    assert r.records[0] == {
        "user_id": "u1",
        "tweet_id": "t1",
        "engagement_type": "fave",
        "engaged_at": "2024-05-01",
    }
    assert r.records[1]["tweet_id"] == "t\n2" and r.records[1]["engaged_at"] is None
    assert raw_text(r.raws[3], 100) == "u\\udce94,t4,fave,1"


def test_csv_missing_columns(tmp_path: Path) -> None:
    p = tmp_path / "e.csv.gz"
    p.write_bytes(gzip.compress(b"user_id,tweet_id\nu,t\n"))
    reader = FileReader(str(p), CSV, True, required=REQ)
    with pytest.raises(
        MissingColumnsError, match=r"e\.csv\.gz.*\['engagement_type', 'engaged_at'\]"
    ):
        reader.check_columns()
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(MissingColumnsError, match="empty"):
        FileReader(str(empty), CSV, False, required=REQ).check_columns()


def test_parquet_reader(tmp_path: Path) -> None:
    p = tmp_path / "e.parquet"
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    table = pa.table(
        {
            "user_id": [1, 2, 3],
            "tweet_id": ["a", "b", None],
            "engagement_type": ["fave"] * 3,
            "engaged_at": pa.array([when] * 3, pa.timestamp("ms", tz="UTC")),
            "ignored": [1.0, 2.0, 3.0],
        }
    )
    pq.write_table(table, p, row_group_size=2)
    r = _rows(FileReader(str(p), PARQUET, False, required=REQ, batch_size=2))
    assert r.rows == [1, 2, 3] and r.errors == [None] * 3
    assert r.records[0] == {
        "user_id": 1,
        "tweet_id": "a",
        "engagement_type": "fave",
        "engaged_at": when,
    }
    assert "ignored" not in r.records[0]
    assert '"tweet_id": null' in raw_text(r.raws[2], 1000)
    pq.write_table(table.drop(["engagement_type"]), p)
    with pytest.raises(MissingColumnsError, match="engagement_type"):
        FileReader(str(p), PARQUET, False, required=REQ).check_columns()
    p.write_bytes(b"garbage")
    with pytest.raises(UnreadableInputError, match=r"e\.parquet: cannot read"):
        FileReader(str(p), PARQUET, False, required=REQ).check_columns()


def test_corrupt_parquet_row_group_is_one_line_naming_it(tmp_path: Path) -> None:
    """A damaged page in the third row group: one line naming the file and that group (the
    Arrow message carries newlines)."""
    n = 3000
    table = pa.table(
        {
            "user_id": [f"u{i % 97}" for i in range(n)],
            "tweet_id": [f"tweet-{i:08d}-{i * 7919 % 100003}" for i in range(n)],
            "engagement_type": ["fave"] * n,
            "engaged_at": [1_700_000_000_000 + i for i in range(n)],
        }
    )
    p = tmp_path / "e.parquet"
    pq.write_table(table, p, row_group_size=1000, compression="zstd")
    col = pq.ParquetFile(p).metadata.row_group(2).column(1)
    data = bytearray(p.read_bytes())
    mid = col.data_page_offset + col.total_compressed_size // 2
    data[mid : mid + 64] = b"\xff" * 64
    p.write_bytes(bytes(data))
    with pytest.raises(UnreadableInputError) as e:
        _rows(FileReader(str(p), PARQUET, False, required=REQ))
    assert str(e.value).startswith(f"{p}: row group 2 cannot be read")
    assert "\n" not in str(e.value)


def test_text_reader_and_ids(tmp_path: Path) -> None:
    d = tmp_path / "spanish"
    d.mkdir()
    p = d / "val_text.txt"
    p.write_bytes(b"hola amigos\n\nbad \xff byte\nlast line no newline")
    r = _rows(FileReader(str(p), TEXT, False, required=(), text_id_prefix=text_id_prefix(str(p))))
    assert r.rows == [1, 2, 3, 4]
    assert r.errors == [None, None, "invalid_utf8", None]
    assert r.records[0] == {"tweet_id": "spanish/val_text:1", "text": "hola amigos"}
    assert r.records[1]["text"] == ""  # kept as a row: the stage counts it as empty_text
    assert text_id_prefix("gs://bucket/a/b/x_text.txt.gz") == "b/x_text"
    assert text_id_prefix("gs://bucket/x_text.txt") == "x_text"


def test_raw_text_is_cut_and_escaped() -> None:
    assert raw_text(b"ab\xffcd", 100) == "ab\\xffcd"
    assert raw_text("x" * 50, 16) == "x" * 16
    assert raw_text({"a": datetime(2024, 1, 1)}, 100) == '{"a": "2024-01-01 00:00:00"}'
