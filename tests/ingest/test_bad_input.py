"""Bad input that used to lose rows or pass unnoticed (issue 9, items 7 and 11).

A stray CSV quote must cost its own line and nothing else; every reader accounts for the
physical lines (Parquet: rows) it read; an ingest that keeps nothing, or quarantines most of
its input, fails in one line; NUL, control-only texts, future timestamps and engagements
older than their tweet are quarantined, the same way in every format.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from twhin_bert.common import schemas
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.ingest import (
    TWEET_REASONS,
    IngestAccountingError,
    KindStats,
    NothingKeptError,
    TooMuchQuarantinedError,
    run_ingest,
)
from twhin_bert.ingest.readers import InputError

TS = "2024-05-01T00:00:00Z"
HEADER = "tweet_id,author_id,text,created_at"
# Share limits off where a test is about which rows land where, not about the limits.
LENIENT = IngestConfig(max_quarantine_share=1.0)


def _ingest(
    tmp_path: Path,
    tweets: list[Path],
    engagements: list[Path] = (),  # type: ignore[assignment]
    cfg: IngestConfig = LENIENT,
) -> tuple[dict, dict[str, list[dict]]]:
    out = tmp_path / "out"
    m = run_ingest(
        cfg, out, tweets=[str(p) for p in tweets], engagements=[str(p) for p in engagements]
    )
    tables = {
        n: schemas.read_table(out / f"{n}.parquet", n).to_pylist()
        for n in ("tweets", "engagements", "quarantine")
    }
    return m, tables


def _quarantined(m: dict, kind: str = "tweets") -> dict[str, int]:
    return {r: n for r, n in m[kind]["quarantined"].items() if n}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- item 7: one bad CSV quote ----------------------------------------------------------
def test_unterminated_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    """The issue's file: 10,000 good rows and one unterminated quote. Before the fix 2,019
    good rows vanished into one quarantined "row" and the counts hid it."""
    lines = [HEADER]
    for i in range(10_000):
        text = f"good tweet number {i} here"
        if i == 5000:
            lines.append(f't{i},a{i},"broken quote {text},{TS}')
        else:
            lines.append(f"t{i},a{i},{text},{TS}")
    src = tmp_path / "t.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")

    m, tables = _ingest(tmp_path, [src])

    t = m["tweets"]
    assert t["lines_read"] == 10_001  # the physical lines, header included
    assert t["lines_skipped"] == 1
    assert t["rows_in"] == 10_000
    assert t["rows_out"] == 9_999
    assert _quarantined(m) == {"unparseable_line": 1}
    (q,) = tables["quarantine"]
    assert q["row"] == 5002 and q["raw"] == lines[5001]  # its own line, whole
    kept = {r["tweet_id"]: r["text"] for r in tables["tweets"]}
    assert set(kept) == {f"t{i}" for i in range(10_000) if i != 5000}
    assert kept["t5001"] == "good tweet number 5001 here"


def test_stray_quote_closed_by_a_later_quoted_field_does_not_swallow_rows(
    tmp_path: Path,
) -> None:
    """A stray quote that a later row's quoted field closes would give a record of the right
    width spanning three lines (t6 inside t5's text); it must cost line 2 only."""
    src = tmp_path / "t.csv"
    src.write_text(
        "\n".join(
            [
                HEADER,
                f't5,a5,"broken text,{TS}',
                f"t6,a6,plain text,{TS}",
                f't7,a7,"closing, quoted",{TS}',
                f"t8,a8,last one,{TS}",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    m, tables = _ingest(tmp_path, [src])
    assert [r["row"] for r in tables["quarantine"]] == [2]
    kept = {r["tweet_id"]: r["text"] for r in tables["tweets"]}
    assert kept == {"t6": "plain text", "t7": "closing, quoted", "t8": "last one"}
    assert m["tweets"]["lines_read"] == 5 and m["tweets"]["rows_in"] == 4


def test_quoted_newlines_stay_one_record_and_count_their_lines(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_bytes(
        (
            f'{HEADER}\r\nt1,a1,"first line\r\nsecond, line\r\n""third"" line",{TS}\r\n'
            f"\r\nt2,a2,plain,{TS}\r\n"
        ).encode()
    )
    m, tables = _ingest(tmp_path, [src])
    t = m["tweets"]
    assert (t["lines_read"], t["lines_skipped"], t["rows_in"], t["rows_out"]) == (6, 2, 2, 2)
    assert tables["tweets"][0]["text"] == 'first line second, line "third" line'


@pytest.mark.parametrize("where", ["last row", "over the line limit"])
def test_quote_left_open_to_the_end_or_past_the_limit(tmp_path: Path, where: str) -> None:
    rows = [f"t{i},a{i},tweet {i},{TS}" for i in range(30)]
    bad = 29 if where == "last row" else 3
    rows[bad] = f't{bad},a{bad},"never closed,{TS}'
    src = tmp_path / "t.csv"
    src.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    cfg = IngestConfig(max_quarantine_share=1.0, csv_max_record_lines=5)
    m, tables = _ingest(tmp_path, [src], cfg=cfg)
    assert [r["row"] for r in tables["quarantine"]] == [bad + 2]
    assert m["tweets"]["rows_out"] == 29


def test_csv_header_with_an_open_quote_fails_with_its_line(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text(f'\n"{HEADER}\nt1,a1,x,{TS}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.csv: line 2: the CSV header is not one"):
        run_ingest(LENIENT, tmp_path / "out", tweets=[str(src)], engagements=[])
    assert not (tmp_path / "out").exists()


def _good_and_bad(n_good: int) -> tuple[list[dict], list[str]]:
    good = [
        {"tweet_id": f"g{i}", "author_id": "a", "text": f"good tweet {i}", "created_at": TS}
        for i in range(n_good)
    ]
    return good, [r["tweet_id"] for r in good]


def test_every_reader_accounts_for_its_physical_input(tmp_path: Path) -> None:
    """JSONL, CSV, text and Parquet: lines (rows) read = blank/header + rows, rows = kept +
    quarantined, and the kept rows are exactly the good ones."""
    good, good_ids = _good_and_bad(7)
    bad = {"tweet_id": "b1", "author_id": "a", "text": "  ", "created_at": TS}  # empty_text
    # JSONL: 7 good, 1 empty text, 1 unparseable, 2 blank lines -> 11 physical lines.
    jl = tmp_path / "t.jsonl"
    body = [json.dumps(r) for r in good[:4]] + ["", json.dumps(bad), "{oops", "   "]
    jl.write_text("\n".join(body + [json.dumps(r) for r in good[4:]]) + "\n", encoding="utf-8")
    # CSV: header, 7 good (one over two lines), 1 wrong width, 1 blank -> 12 physical lines.
    cs = tmp_path / "t.csv"
    csv_rows = [f"{r['tweet_id']},a,{r['text']},{TS}" for r in good]
    csv_rows[2] = f'g2,a,"good tweet\n2",{TS}'
    cs.write_text("\n".join([HEADER, *csv_rows, "x,y", ""]) + "\n", encoding="utf-8")
    # Text: 7 good, 1 empty line (a row: empty_text), 1 NUL line -> 9 physical lines.
    tx = tmp_path / "t_text.txt"
    tx.write_bytes(b"\n".join([f"good tweet {i}".encode() for i in range(7)] + [b"", b"\0\0"]))
    # Parquet: 7 good, 1 empty text -> 8 rows.
    pa_path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist([*good, bad]), pa_path, row_group_size=3)

    expect = {  # file: (lines_read, lines_skipped, rows_in, quarantined)
        jl: (11, 2, 9, {"empty_text": 1, "unparseable_line": 1}),
        cs: (11, 2, 8, {"unparseable_line": 1}),
        tx: (9, 0, 9, {"empty_text": 1, "unparseable_line": 1}),
        pa_path: (8, 0, 8, {"empty_text": 1}),
    }
    for path, (lines, skipped, rows_in, quarantined) in expect.items():
        m, tables = _ingest(
            tmp_path / f"out-{path.suffix[1:]}", [path], cfg=IngestConfig(batch_size=2)
        )
        t = m["tweets"]
        assert (t["lines_read"], t["lines_skipped"], t["rows_in"]) == (lines, skipped, rows_in)
        assert t["lines_read"] >= t["lines_skipped"] + t["rows_in"]  # CSV: one row, 2 lines
        assert t["rows_in"] == t["rows_out"] + t["quarantined_total"]
        assert _quarantined(m) == quarantined, path.name
        assert t["rows_out"] == 7
        if path != tx:
            assert sorted(r["tweet_id"] for r in tables["tweets"]) == sorted(good_ids)


def test_accounting_check_catches_a_lost_line() -> None:
    stats = KindStats(TWEET_REASONS, lines_read=5, lines_skipped=1, lines_in_rows=3)
    stats.rows_in = stats.rows_out = 3
    with pytest.raises(IngestAccountingError, match="lines_read=5"):
        stats.check("tweets")
    stats.lines_in_rows = 4
    stats.check("tweets")


# --- item 11: nothing kept, too much quarantined ---------------------------------------
def test_empty_input_fails(tmp_path: Path) -> None:
    empty = tmp_path / "t.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(NothingKeptError, match=r"hold no rows \(2 lines read"):
        run_ingest(IngestConfig(), tmp_path / "out", tweets=[str(empty)], engagements=[])
    assert not (tmp_path / "out").exists()


def test_header_only_engagements_fail(tmp_path: Path) -> None:
    good, _ = _good_and_bad(3)
    e = tmp_path / "e.csv"
    e.write_text("user_id,tweet_id,engagement_type,engaged_at\n", encoding="utf-8")
    with pytest.raises(NothingKeptError, match="engagements inputs"):
        _ingest(tmp_path, [_jsonl(tmp_path / "t.jsonl", good)], [e])
    # Without engagement inputs (a text-only corpus) no engagements is fine.
    m, _ = _ingest(tmp_path, [tmp_path / "t.jsonl"])
    assert m["tweets"]["rows_out"] == 3


def test_everything_quarantined_fails_in_one_line(tmp_path: Path) -> None:
    src = tmp_path / "t.jsonl"
    src.write_text("not json\n{}\n", encoding="utf-8")
    with pytest.raises(NothingKeptError) as e:
        run_ingest(LENIENT, tmp_path / "out", tweets=[str(src)], engagements=[])
    msg = str(e.value)
    assert "\n" not in msg
    assert "0 of 2 rows kept" in msg and "t.jsonl row 1: unparseable_line" in msg


def test_cli_exit_code_2_when_nothing_kept(tmp_path: Path) -> None:
    from twhin_bert_pipelines.cli import app
    from typer.testing import CliRunner

    src = tmp_path / "t.jsonl"
    src.write_text("", encoding="utf-8")
    res = CliRunner().invoke(app, ["ingest", "--out", str(tmp_path / "o"), "--tweets", str(src)])
    assert res.exit_code == 2, res.output
    assert "hold no rows" in res.output


def test_quarantine_share_warns_then_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, _ = _good_and_bad(8)
    rows = [json.dumps(r) for r in good] + ["broken"] * 2  # 20% quarantined
    src = tmp_path / "t.jsonl"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="twhin_bert.ingest.ingest"):
        m, _ = _ingest(tmp_path / "a", [src], cfg=IngestConfig())
    assert m["tweets"]["rows_out"] == 8
    assert any("20.0% > warn_quarantine_share 5.0%" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="twhin_bert.ingest.ingest"):
        _ingest(tmp_path / "b", [src], cfg=IngestConfig(warn_quarantine_share=0.25))
    assert not any("warn_quarantine_share" in r.getMessage() for r in caplog.records)
    with pytest.raises(TooMuchQuarantinedError, match=r"2 of 10 rows quarantined \(20\.0% >"):
        _ingest(tmp_path / "c", [src], cfg=IngestConfig(max_quarantine_share=0.1))


def test_share_limits_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="must not exceed max_quarantine_share"):
        IngestConfig(warn_quarantine_share=0.6, max_quarantine_share=0.5)


# --- item 11: NUL and control characters --------------------------------------------------
def test_control_only_texts_are_empty_and_inner_controls_removed(tmp_path: Path) -> None:
    rows = [
        {"tweet_id": "c1", "author_id": "a", "text": "\x01\x02\x1b\x7f", "created_at": TS},
        {"tweet_id": "c2", "author_id": "a", "text": " \x07\t\x9f ", "created_at": TS},
        {"tweet_id": "c3", "author_id": "a", "text": "bell\x07 and esc\x1b[0m", "created_at": TS},
    ]
    m, tables = _ingest(tmp_path, [_jsonl(tmp_path / "t.jsonl", rows)])
    assert _quarantined(m) == {"empty_text": 2}
    assert [r["text"] for r in tables["tweets"]] == ["bell and esc[0m"]


def test_nul_quarantines_the_row_in_every_format(tmp_path: Path) -> None:
    """A raw NUL byte was kept in CSV and text and quarantined in JSONL: now every reader
    quarantines the row (unparseable_line), whichever field holds it."""
    ok = {"tweet_id": "ok", "author_id": "a", "text": "fine text", "created_at": TS}
    jl = tmp_path / "t.jsonl"
    jl.write_bytes(
        json.dumps(ok).encode()
        + b'\n{"tweet_id": "n1", "author_id": "a", "text": "x\x00y", "created_at": "2024"}'
        + b'\n{"tweet_id": "n2", "author_id": "a", "text": "x\\u0000y", "created_at": 1}\n'
    )
    cs = tmp_path / "t.csv"
    cs.write_bytes(f"{HEADER}\nok,a,fine text,{TS}\nn1,a,x\0y,{TS}\nn\0,a,x,{TS}\n".encode())
    tx = tmp_path / "t_text.txt"
    tx.write_bytes(b"fine text\nx\x00y\n\x00\x00\x00\n")
    pa_path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist([ok, {**ok, "tweet_id": "n1", "text": "x\0y"}]), pa_path)
    expect = {jl: 2, cs: 2, tx: 2, pa_path: 1}
    for path, n_nul in expect.items():
        m, tables = _ingest(tmp_path / f"out-{path.suffix[1:]}", [path])
        assert _quarantined(m) == {"unparseable_line": n_nul}, path.name
        assert [r["text"] for r in tables["tweets"]] == ["fine text"], path.name


# --- item 11: timestamps -----------------------------------------------------------------
def test_future_timestamps_quarantined_beyond_the_skew(tmp_path: Path) -> None:
    now = time.time()
    tweets = [
        {"tweet_id": "t2099", "author_id": "a", "text": "from 2099", "created_at": "2099-01-01"},
        {"tweet_id": "soon", "author_id": "a", "text": "an hour ahead", "created_at": now + 3600},
        {"tweet_id": "past", "author_id": "a", "text": "yesterday", "created_at": now - 86400},
    ]
    engagements = [
        {"user_id": "u", "tweet_id": "past", "engagement_type": "fave", "engaged_at": e}
        for e in ("2099-06-01T00:00:00Z", now - 60)
    ]
    t = _jsonl(tmp_path / "t.jsonl", tweets)
    e = _jsonl(tmp_path / "e.jsonl", engagements)
    m, tables = _ingest(tmp_path / "a", [t], [e])
    assert _quarantined(m) == {"bad_timestamp": 1}
    assert _quarantined(m, "engagements") == {"bad_timestamp": 1}
    assert sorted(r["tweet_id"] for r in tables["tweets"]) == ["past", "soon"]
    # No skew allowed: the tweet an hour ahead goes too.
    m, _ = _ingest(
        tmp_path / "b", [t], [e], IngestConfig(max_future_skew_s=0, max_quarantine_share=1.0)
    )
    assert _quarantined(m) == {"bad_timestamp": 2}


def test_engagements_before_their_tweet_quarantined(tmp_path: Path) -> None:
    tweets = [
        {"tweet_id": "t1", "author_id": "a", "text": "a tweet", "created_at": "2024-05-02"},
    ]
    eng = [
        ("u1", "t1", "2024-05-01T23:59:59Z"),  # a second before the tweet: quarantined
        ("u2", "t1", "2024-05-02T00:00:00Z"),  # the same instant: kept
        ("u3", "t1", "2024-05-03"),  # kept
        ("u4", "nope", "2000-01-01"),  # unknown tweet, whatever its time
        ("u5", "text/x_text:1", "2000-01-01"),  # a text-file tweet has no time: kept
    ]
    t = _jsonl(tmp_path / "t.jsonl", tweets)
    d = tmp_path / "text"
    d.mkdir()
    (d / "x_text.txt").write_text("a tweet from a text corpus\n", encoding="utf-8")
    e = _jsonl(
        tmp_path / "e.jsonl",
        [
            {"user_id": u, "tweet_id": tid, "engagement_type": "fave", "engaged_at": ts}
            for u, tid, ts in eng
        ],
    )
    m, tables = _ingest(tmp_path, [t, d / "x_text.txt"], [e])
    assert _quarantined(m, "engagements") == {"engaged_before_tweet": 1, "unknown_tweet": 1}
    assert sorted(r["user_id"] for r in tables["engagements"]) == ["u2", "u3", "u5"]
    placed = {r["row"]: r["reason"] for r in tables["quarantine"]}
    assert placed == {1: "engaged_before_tweet", 4: "unknown_tweet"}


def test_demo_data_generator_times_pass_the_new_checks(tmp_path: Path) -> None:
    """The demo window lies before now and engagements follow their tweets: nothing new is
    quarantined (the whole default demo is ingested in test_ingest)."""
    from twhin_bert.demo_data.config import DemoDataConfig
    from twhin_bert.demo_data.generate import generate

    generate(DemoDataConfig(users=50, tweets=300, parallel_pairs=0), tmp_path / "raw")
    m, _ = _ingest(
        tmp_path,
        [tmp_path / "raw" / "tweets.jsonl"],
        [tmp_path / "raw" / "engagements.jsonl"],
        IngestConfig(),
    )
    assert m["quarantined_total"] == 0
    assert m["tweets"]["rows_out"] == 300 and m["engagements"]["rows_out"] > 1000
