"""The ingest stage end to end: exact accounting on a hand-written fixture, every input form,
clean failure on bad files, real tweets, gs:// inputs and the KFP component."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from twhin_bert.common import schemas
from twhin_bert.common.stage import partial_dir, read_metrics
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.ingest import run_ingest, summarise
from twhin_bert.ingest.readers import (
    MissingColumnsError,
    UnreadableInputError,
    UnsupportedFormatError,
)


def _ingest(out: Path, fixture_inputs: dict[str, Path], **cfg: object) -> dict:
    # The fixture is mostly bad rows on purpose: no quarantine-share limit here.
    return run_ingest(
        IngestConfig(**{"max_quarantine_share": 1.0, **cfg}),
        out,
        tweets=[str(fixture_inputs["tweets"])],
        engagements=[
            str(fixture_inputs["engagements_csv"]),
            str(fixture_inputs["engagements_jsonl"]),
        ],
    )


def _subset(m: dict) -> dict:
    return {
        "rows_in": m["rows_in"],
        "rows_out": m["rows_out"],
        "quarantined": {k: v for k, v in m["quarantined"].items() if v},
    }


def test_fixture_every_reason_counted_exactly(
    tmp_path: Path, fixture_inputs: dict, expected_counts: dict
) -> None:
    out = tmp_path / "ingested"
    m = _ingest(out, fixture_inputs, batch_size=4)  # several batches per file
    assert _subset(m["tweets"]) == expected_counts["tweets"]
    assert _subset(m["engagements"]) == expected_counts["engagements"]
    assert m["files_read"] == 3 and m["files_skipped"] == 0
    assert read_metrics(out)["tweets"]["rows_out"] == 3
    assert not partial_dir(out).exists()

    tweets = schemas.read_table(out / "tweets.parquet", "tweets").to_pylist()
    by_id = {t["tweet_id"]: t for t in tweets}
    assert set(by_id) == {"t1", "t2", "3"}
    t2 = by_id["t2"]
    assert t2["text"] == "Hoy es un día muy bonito y vamos a la playa con @user y http #Dos #dos"
    assert t2["hashtags"] == ["dos"]
    assert t2["lang"] == "es"
    assert by_id["t1"]["lang"] == "en" and by_id["3"]["lang"] == "en"  # given ("EN-us") wins
    assert by_id["t1"]["hashtags"] == ["one"]
    assert t2["created_at"].timestamp() == 1714521600
    assert by_id["3"]["created_at"].timestamp() == 1714521600
    assert by_id["t1"]["author_id"] == "a1"

    eng = schemas.read_table(out / "engagements.parquet", "engagements").to_pylist()
    got = sorted((e["user_id"], e["tweet_id"], e["engagement_type"]) for e in eng)
    assert got == [
        ("10", "t2", "fave"),
        ("u1", "t1", "fave"),
        ("u2", "t2", "quote"),
        ("u2", "t2", "retweet"),
        ("u3", "3", "reply"),
    ]

    q = schemas.read_table(out / "quarantine.parquet", "quarantine").to_pylist()
    assert len(q) == m["quarantined_total"] == 19
    placed = {(r["kind"], Path(r["source"]).name, r["row"]): r["reason"] for r in q}
    assert placed[("tweets", "tweets.jsonl", 4)] == "unparseable_line"
    assert placed[("tweets", "tweets.jsonl", 8)] == "invalid_utf8"
    assert placed[("tweets", "tweets.jsonl", 10)] == "duplicate_tweet"
    assert placed[("tweets", "tweets.jsonl", 12)] == "invalid_utf8"
    assert placed[("engagements", "engagements.csv", 3)] == "duplicate_engagement"
    assert placed[("engagements", "engagements.csv", 8)] == "unknown_tweet"
    assert placed[("engagements", "engagements.csv", 13)] == "invalid_utf8"
    assert placed[("engagements", "engagements.jsonl", 2)] == "wrong_type"
    raw8 = next(r["raw"] for r in q if r["row"] == 8 and r["kind"] == "tweets")
    assert "caf\\xe9" in raw8  # the undecodable byte, escaped


def test_formats_give_the_same_output(tmp_path: Path) -> None:
    """JSONL, JSONL.gz, CSV, CSV.gz and Parquet of the same rows ingest identically."""
    rows = [
        {
            "tweet_id": f"t{i}",
            "author_id": f"a{i % 3}",
            "text": f"tweet number {i} about #Topic{i % 2} with @someone",
            "created_at": f"2024-05-0{1 + i % 9}T10:00:00+02:00",
            "lang": "en",
        }
        for i in range(20)
    ]
    engagements = [
        {
            "user_id": f"u{i % 7}",
            "tweet_id": f"t{i % 20}",
            "engagement_type": ["like", "rt", "reply", "quote"][i % 4],
            "engaged_at": 1715299200 + i,  # 2024-05-10: after every tweet (not before it)
        }
        for i in range(60)
    ]
    d = tmp_path / "in"
    d.mkdir()
    jsonl = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    ejsonl = b"".join(json.dumps(r).encode() + b"\n" for r in engagements)
    (d / "t.jsonl").write_bytes(jsonl)
    (d / "e.jsonl").write_bytes(ejsonl)
    (d / "t.jsonl.gz").write_bytes(gzip.compress(jsonl))
    (d / "e.ndjson.gz").write_bytes(gzip.compress(ejsonl))
    t_table = pa.Table.from_pylist(rows)
    e_table = pa.Table.from_pylist(engagements)
    pacsv.write_csv(t_table, d / "t.csv")
    pacsv.write_csv(e_table, d / "e.csv")
    (d / "t.csv.gz").write_bytes(gzip.compress((d / "t.csv").read_bytes()))
    pq.write_table(t_table, d / "t.parquet")
    pq.write_table(e_table, d / "e.parquet")

    outputs = {}
    for t, e in [
        ("t.jsonl", "e.jsonl"),
        ("t.jsonl.gz", "e.ndjson.gz"),
        ("t.csv", "e.csv"),
        ("t.csv.gz", "e.parquet"),
        ("t.parquet", "e.csv"),
    ]:
        out = tmp_path / f"out-{t}-{e}"
        m = run_ingest(IngestConfig(), out, tweets=[str(d / t)], engagements=[str(d / e)])
        assert m["tweets"]["rows_out"] == 20, t
        assert m["engagements"]["rows_in"] == 60 and m["engagements"]["rows_out"] == 60, e
        tw = pq.read_table(out / "tweets.parquet").sort_by("tweet_id")
        en = pq.read_table(out / "engagements.parquet").sort_by(
            [("user_id", "ascending"), ("tweet_id", "ascending"), ("engagement_type", "ascending")]
        )
        outputs[(t, e)] = (tw.to_pylist(), en.to_pylist())
    first = next(iter(outputs.values()))
    for key, value in outputs.items():
        assert value == first, key
    tweets, engs = first
    assert tweets[0]["created_at"].isoformat() == "2024-05-01T08:00:00+00:00"  # +02:00 -> UTC
    assert Counter(e["engagement_type"] for e in engs) == {
        "fave": 15,
        "retweet": 15,
        "reply": 15,
        "quote": 15,
    }


def test_folder_and_glob_inputs(tmp_path: Path, fixture_inputs: dict) -> None:
    raw = fixture_inputs["tweets"].parent
    (raw / "README.md").write_text("not data")
    out = tmp_path / "o"
    m = run_ingest(
        IngestConfig(max_quarantine_share=1.0),  # the fixture is mostly bad rows
        out,
        tweets=[str(raw / "tweets.*")],
        engagements=[str(raw / "engagements.csv")],
    )
    assert m["tweets"]["rows_out"] == 3
    # A folder skips what is not data (logged, counted); a named unknown file is an error.
    sub = tmp_path / "folder"
    sub.mkdir()
    shutil.copy(fixture_inputs["tweets"], sub / "part-0.jsonl")
    (sub / "notes.md").write_text("x")
    lenient = IngestConfig(max_quarantine_share=1.0)
    m = run_ingest(lenient, tmp_path / "o2", tweets=[str(sub)], engagements=[])
    assert m["files_read"] == 1 and m["files_skipped"] == 1
    with pytest.raises(UnsupportedFormatError, match=r"notes\.md.*unsupported"):
        run_ingest(IngestConfig(), tmp_path / "o3", tweets=[str(sub / "notes.md")], engagements=[])
    assert not (tmp_path / "o3").exists() and not partial_dir(tmp_path / "o3").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_column_is_an_error_and_leaves_no_output(tmp_path: Path, fmt: str) -> None:
    table = pa.table({"user_id": ["u1"], "tweet_id": ["t1"], "engaged_at": ["2024-05-01"]})
    bad = tmp_path / f"e.{fmt}"
    pacsv.write_csv(table, bad) if fmt == "csv" else pq.write_table(table, bad)
    tweets = tmp_path / "t.jsonl"
    tweets.write_text(
        json.dumps({"tweet_id": "t1", "author_id": "a", "text": "hi there", "created_at": 1}) + "\n"
    )
    out = tmp_path / "out"
    with pytest.raises(MissingColumnsError) as err:
        run_ingest(IngestConfig(), out, tweets=[str(tweets)], engagements=[str(bad)])
    msg = str(err.value)
    assert str(bad) in msg and "engagement_type" in msg and "expected columns" in msg
    assert not out.exists() and not partial_dir(out).exists()


def test_corrupt_gzip_mid_stream_leaves_no_output(tmp_path: Path, fixture_inputs: dict) -> None:
    data = gzip.compress(fixture_inputs["tweets"].read_bytes() * 200)
    bad = tmp_path / "t.jsonl.gz"
    bad.write_bytes(data[: len(data) // 2])  # truncated: fails after some rows were read
    out = tmp_path / "out"
    with pytest.raises(UnreadableInputError, match=r"t\.jsonl\.gz: cannot read"):
        run_ingest(IngestConfig(batch_size=8), out, tweets=[str(bad)], engagements=[])
    assert not out.exists() and not partial_dir(out).exists()


def test_missing_input_and_unreadable_file(tmp_path: Path, fixture_inputs: dict) -> None:
    with pytest.raises(UnreadableInputError, match=r"nope\.jsonl"):
        run_ingest(
            IngestConfig(), tmp_path / "o", tweets=[str(tmp_path / "nope.jsonl")], engagements=[]
        )
    corrupt = tmp_path / "t.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UnreadableInputError, match=r"t\.parquet"):
        run_ingest(IngestConfig(), tmp_path / "o", tweets=[str(corrupt)], engagements=[])
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.jsonl"
        shutil.copy(fixture_inputs["tweets"], locked)
        locked.chmod(0)
        with pytest.raises(UnreadableInputError, match=r"locked\.jsonl"):
            run_ingest(IngestConfig(), tmp_path / "o", tweets=[str(locked)], engagements=[])
    assert not (tmp_path / "o").exists()


def test_real_tweet_text_files(tmp_path: Path, sample_data: Path) -> None:
    """Real tweets: UMSAB Spanish (a folder: *_labels.txt skipped) and one English file."""
    umsab = sample_data / "umsab"
    out = tmp_path / "o"
    m = run_ingest(
        IngestConfig(),
        out,
        tweets=[str(umsab / "spanish"), str(umsab / "english" / "val_text.txt")],
        engagements=[],
    )
    assert m["files_read"] == 3 and m["files_skipped"] == 2  # train/val labels
    spanish_lines = sum(
        len((umsab / "spanish" / f).read_bytes().splitlines())
        for f in ("train_text.txt", "val_text.txt")
    )
    assert spanish_lines == 500
    assert m["tweets"]["rows_in"] == m["tweets"]["rows_out"] == spanish_lines + 100
    t = pq.read_table(out / "tweets.parquet").to_pandas()
    assert t["author_id"].isna().all() and t["created_at"].isna().all()
    es = t[t["tweet_id"].str.startswith("spanish/")]
    assert len(es) == 500 and (es["lang"] == "es").mean() > 0.8
    en = t[t["tweet_id"].str.startswith("english/val_text:")]
    assert en["tweet_id"].iloc[0] == "english/val_text:1" and len(en) == 100
    assert (en["lang"] == "en").mean() > 0.8
    assert m["languages"]["es"] > m["languages"]["en"] > 80
    assert t["hashtags"].map(len).sum() > 50
    assert not t["text"].str.contains("https?://", regex=True).any()


def test_whole_sample_folder(tmp_path: Path, sample_data: Path) -> None:
    """A folder of language folders with the same file names: ids stay unique (they carry
    the parent folder), every language is detected."""
    m = run_ingest(IngestConfig(), tmp_path / "o", tweets=[str(sample_data)], engagements=[])
    assert m["tweets"]["quarantined"]["duplicate_tweet"] == 0
    assert m["tweets"]["rows_out"] == 8 * 500 + 1100  # English keeps 1,500 train tweets
    langs = m["languages"]
    for lang in ("en", "es", "fr", "de", "it", "pt", "ar"):  # UMSAB Hindi is romanised
        assert langs.get(lang, 0) > 400, lang
    assert langs["und"] < 0.15 * m["tweets"]["rows_out"]
    t = pq.read_table(tmp_path / "o" / "tweets.parquet", columns=["tweet_id"])
    assert {"spanish/train_text:1", "french/train_text:1"} <= set(t["tweet_id"].to_pylist())


@pytest.mark.slow
def test_all_full_data(tmp_path: Path, full_data: Path) -> None:
    """Every text file of the full data (TweetEval, UMSAB): ids unique per file path, 7+
    languages found."""
    m = run_ingest(IngestConfig(), tmp_path / "o", tweets=[str(full_data)], engagements=[])
    assert m["tweets"]["quarantined"]["duplicate_tweet"] == 0
    assert m["tweets"]["rows_out"] > 100_000
    langs = m["languages"]
    for lang in ("en", "es", "fr", "de", "it", "pt", "ar"):  # UMSAB Hindi is romanised
        assert langs.get(lang, 0) > 1500, lang
    assert langs["und"] < 0.3 * m["tweets"]["rows_out"]
    t = pq.read_table(tmp_path / "o" / "tweets.parquet", columns=["tweet_id"])
    assert "spanish/train_text:1" in set(t["tweet_id"].to_pylist())


def test_demo_data_and_tracking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_dir: Path
) -> None:
    """The generated demo TwHIN ingests without loss; metrics reach MLflow."""
    monkeypatch.setenv("TWHIN_BERT_TRACKING", "1")
    import mlflow

    demo = (
        json.loads((demo_dir / "demo.json").read_text())
        if (demo_dir / "demo.json").exists()
        else {}
    )
    m = run_ingest(
        IngestConfig(),
        tmp_path / "o",
        tweets=[str(demo_dir / "tweets.jsonl")],
        engagements=[str(demo_dir / "engagements.jsonl")],
    )
    assert m["tweets"]["quarantined_total"] == 0
    assert m["engagements"]["quarantined_total"] == 0
    if "engagements" in demo:
        assert m["engagements"]["rows_out"] == demo["engagements"]
    assert len(m["languages"]) >= 5
    run = mlflow.search_runs(
        filter_string="tags.`twhin_bert.stage` = 'ingest'",
        output_format="list",
        search_all_experiments=True,
    )[0]
    assert run.data.metrics["tweets.rows_out"] == m["tweets"]["rows_out"]
    assert "tweets:" in summarise(m)


def test_gcs_inputs(tmp_path: Path, fixture_inputs: dict, gcs_emulator, sample_data: Path) -> None:
    bucket = gcs_emulator.create_bucket("raw-logs")
    bucket.blob("day=1/tweets.jsonl").upload_from_filename(str(fixture_inputs["tweets"]))
    bucket.blob("day=1/engagements.csv").upload_from_filename(
        str(fixture_inputs["engagements_csv"])
    )
    bucket.blob("text/es/val_text.txt").upload_from_filename(
        str(sample_data / "umsab" / "spanish" / "val_text.txt")
    )
    bucket.blob("text/es/val_labels.txt").upload_from_string("0\n")
    more = pa.table(
        {
            "tweet_id": ["p1", "p2"],
            "author_id": ["a", "b"],
            "text": ["from a parquet object", "another one #gcs"],
            "created_at": [1714521600, 1714521601],
        }
    )
    pq.write_table(more, tmp_path / "more.parquet")
    bucket.blob("day=1/tweets-more.parquet").upload_from_filename(str(tmp_path / "more.parquet"))
    out = tmp_path / "o"
    m = run_ingest(
        IngestConfig(max_quarantine_share=1.0),  # the fixture's engagements are mostly bad
        out,
        tweets=["gs://raw-logs/day=1/tweets*", "gs://raw-logs/text"],
        engagements=["gs://raw-logs/day=1/engagements.csv"],
    )
    assert m["tweets"]["rows_out"] == 3 + 2 + 100
    assert m["files_skipped"] == 1
    assert m["engagements"]["rows_in"] == 12
    q = pq.read_table(out / "quarantine.parquet").to_pylist()
    assert {r["source"] for r in q} == {
        "gs://raw-logs/day=1/tweets.jsonl",
        "gs://raw-logs/day=1/engagements.csv",
    }
    ids = pq.read_table(out / "tweets.parquet", columns=["tweet_id"])["tweet_id"].to_pylist()
    assert "es/val_text:1" in ids
    with pytest.raises(UnreadableInputError, match="gs://raw-logs/nothing"):
        run_ingest(
            IngestConfig(), tmp_path / "o2", tweets=["gs://raw-logs/nothing"], engagements=[]
        )


def test_component_through_kfp_local(
    tmp_path: Path, fixture_inputs: dict, expected_counts: dict
) -> None:
    from kfp import local
    from twhin_bert.ingest.component import ingest

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = ingest(
        config=IngestConfig(batch_size=16, max_quarantine_share=1.0).model_dump_json(),
        tweets=[str(fixture_inputs["tweets"])],
        engagements=[
            str(fixture_inputs["engagements_csv"]),
            str(fixture_inputs["engagements_jsonl"]),
        ],
        pipeline_run_id="test",
    )
    folder = Path(task.outputs["ingested"].path)
    assert {p.name for p in folder.iterdir()} >= {
        "tweets.parquet",
        "engagements.parquet",
        "quarantine.parquet",
        "metrics.json",
    }
    assert (
        read_metrics(folder)["engagements"]["rows_out"]
        == expected_counts["engagements"]["rows_out"]
    )
    assert (
        task.outputs["metrics"].metadata["tweets.rows_out"] == expected_counts["tweets"]["rows_out"]
    )
