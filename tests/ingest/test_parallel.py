"""Ingest on every core: workers=2 writes what workers=1 writes, byte for byte, and counts
the same, on the demo data and on dirty inputs split into many pieces across files."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from twhin_bert.common.compute import available_cpus, resolve_cpus
from twhin_bert.common.parallel import ordered_map
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.ingest import run_ingest
from twhin_bert.ingest.readers import FileReader, iter_lines

OUTPUTS = ("tweets.parquet", "engagements.parquet", "quarantine.parquet")
TIMINGS = (
    "rows_per_second",
    "tweet_rows_per_second",
    "engagement_rows_per_second",
    "wall_seconds",
    "workers",
)
SMALL_PIECES = 1 << 16  # the smallest piece: the demo files become several pieces


def _run(cfg: IngestConfig, out: Path, tweets: list[Path], engagements: list[Path]) -> dict:
    m = run_ingest(
        cfg, out, tweets=[str(p) for p in tweets], engagements=[str(p) for p in engagements]
    )
    return {k: v for k, v in m.items() if k not in TIMINGS}


def _assert_same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        ta, tb = pq.read_table(a / name), pq.read_table(b / name)
        assert ta.num_rows == tb.num_rows, name
        assert ta.equals(tb), f"{name}: tables differ"
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name}: bytes differ"


def test_demo_data_identical_with_two_workers(demo_dir: Path, tmp_path: Path) -> None:
    tweets, engagements = demo_dir / "tweets.jsonl", demo_dir / "engagements.jsonl"
    reader = FileReader(str(engagements), "jsonl", False, required=())
    assert len(reader.pieces(SMALL_PIECES)) >= 3  # the merge really joins pieces
    metrics = {}
    for w in (1, 2):
        cfg = IngestConfig(workers=w, piece_bytes=SMALL_PIECES)
        metrics[w] = _run(cfg, tmp_path / f"w{w}", [tweets], [engagements])
    _assert_same_outputs(tmp_path / "w1", tmp_path / "w2")
    assert metrics[1] == metrics[2]
    assert metrics[1]["engagements"]["rows_out"] > 1000


def _tweet(i: int, **kw: Any) -> dict[str, Any]:
    rec = {
        "tweet_id": f"t{i}",
        "author_id": f"a{i % 7}",
        "text": f"tweet number {i} about the weather #w{i % 5}",
        "created_at": 1_700_000_000 + i,
    }
    return {**rec, **kw}


def _dirty_inputs(d: Path) -> tuple[list[Path], list[Path], dict[str, set[int]]]:
    """Tweets and engagements over several files and formats, with every cross-row case:
    duplicates inside a file, across pieces and across files, engagements of unknown tweets
    and before their tweet. Returns the inputs and, for the big JSONL files, the line
    numbers the quarantine must name."""
    d.mkdir()
    bad_lines: dict[str, set[int]] = {"tweets-a.jsonl": set(), "eng-a.jsonl": set()}
    lines = [b"\xef\xbb\xbf" + json.dumps(_tweet(0)).encode()]  # a BOM on the first line
    for i in range(1, 3000):
        if i % 500 == 0:
            lines.append(b"{not json")
            bad_lines["tweets-a.jsonl"].add(len(lines))
        elif i % 333 == 0:
            lines.append(json.dumps(_tweet(i - 1)).encode())  # a duplicate id, nearby
            bad_lines["tweets-a.jsonl"].add(len(lines))
        elif i == 1700:
            lines.append(b'{"text": "' + b"x" * 5000 + b'"}')  # longer than max_line_bytes
            bad_lines["tweets-a.jsonl"].add(len(lines))
        else:
            lines.append(json.dumps(_tweet(i)).encode())
        if i % 250 == 0:
            lines.append(b"")  # blank lines are not rows but count as lines
    (d / "tweets-a.jsonl").write_bytes(b"\r\n".join(lines) + b"\r\n")
    # A second file repeating ids of the first (duplicates across files), gzipped.
    with gzip.open(d / "tweets-b.jsonl.gz", "wb") as f:
        for i in range(2900, 3300):
            f.write(json.dumps(_tweet(i, text=f"second file {i}")).encode() + b"\n")
    # Parquet in small row groups (several pieces), with ids repeated from both files.
    rows = [_tweet(i, text=f"parquet row {i}") for i in range(3200, 3600)]
    rows += [_tweet(5, text="a duplicate from parquet")]
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, d / "tweets-c.parquet", row_group_size=50)
    # Text files: ids from their line numbers.
    (d / "lang").mkdir()
    (d / "lang" / "train_text.txt").write_text("\n".join(f"plain text {i}" for i in range(300)))

    e_lines = []
    for i in range(6000):
        t = i % 300  # tweets that exist
        if i % 700 == 0:
            rec = {"user_id": f"u{i}", "tweet_id": "t-unknown", "engagement_type": "fave"}
        elif i % 900 == 0:
            rec = {"user_id": f"u{i}", "tweet_id": f"t{t}", "engagement_type": "reply"}
            rec["engaged_at"] = 1_600_000_000  # before its tweet
        elif i % 450 == 0:
            rec = {"user_id": f"u{i - 1}", "tweet_id": f"t{(i - 1) % 300}"}
            rec["engagement_type"] = "RT"  # the previous line again (retweet)
        else:
            rec = {"user_id": f"u{i}", "tweet_id": f"t{t}", "engagement_type": "retweet"}
        rec.setdefault("engaged_at", 1_710_000_000)
        e_lines.append(json.dumps(rec).encode())
        if i % 700 == 0 or i % 450 == 0 or (i % 900 == 0):
            bad_lines["eng-a.jsonl"].add(len(e_lines))
    (d / "eng-a.jsonl").write_bytes(b"\n".join(e_lines))  # no final newline
    (d / "eng-b.csv").write_text(
        "user_id,tweet_id,engagement_type,engaged_at\n"
        + "".join(f"u{i},t{i},retweet,1710000000\n" for i in range(1, 200))  # dups of eng-a
        + 'u9,t9,"reply\nover two lines",1710000000\n'
        + "u1,t1,boost,1710000000\n"
    )
    tweets = [d / "tweets-a.jsonl", d / "tweets-b.jsonl.gz", d / "tweets-c.parquet", d / "lang"]
    return tweets, [d / "eng-a.jsonl", d / "eng-b.csv"], bad_lines


def test_dirty_inputs_identical_with_two_workers(tmp_path: Path) -> None:
    tweets, engagements, bad_lines = _dirty_inputs(tmp_path / "raw")
    base = {"max_quarantine_share": 1.0, "max_line_bytes": 1024, "piece_bytes": SMALL_PIECES}
    metrics = {}
    for w in (1, 2):
        cfg = IngestConfig(workers=w, **base)
        metrics[w] = _run(cfg, tmp_path / f"w{w}", tweets, engagements)
    _assert_same_outputs(tmp_path / "w1", tmp_path / "w2")
    assert metrics[1] == metrics[2]
    q = metrics[1]["tweets"]["quarantined"] | {
        f"e.{k}": v for k, v in metrics[1]["engagements"]["quarantined"].items()
    }
    for reason in ("duplicate_tweet", "unparseable_line", "e.duplicate_engagement"):
        assert q[reason] > 0, reason
    for reason in ("e.unknown_tweet", "e.engaged_before_tweet", "e.unknown_engagement_type"):
        assert q[reason] > 0, reason

    # Line numbers of pieces after the first are the file's, not the piece's.
    quarantine = pq.read_table(tmp_path / "w2" / "quarantine.parquet").to_pylist()
    for name, expected in bad_lines.items():
        assert (
            len(
                FileReader(str(tmp_path / "raw" / name), "jsonl", False, required=()).pieces(
                    SMALL_PIECES
                )
            )
            >= 3
        )
        rows = {r["row"] for r in quarantine if r["source"].endswith(name)}
        assert rows == expected, name

    # One piece per file decides the same rows (only batch boundaries, and so the order of
    # the quarantine inside a batch, differ).
    whole = _run(
        IngestConfig(workers=2, **{**base, "piece_bytes": 1 << 40}),
        tmp_path / "whole",
        tweets,
        engagements,
    )
    assert whole == metrics[1]
    for name in ("tweets.parquet", "engagements.parquet"):
        assert pq.read_table(tmp_path / "whole" / name).equals(
            pq.read_table(tmp_path / "w1" / name)
        )
    key = lambda r: (r["kind"], r["source"], r["row"], r["reason"])  # noqa: E731
    assert sorted(map(key, quarantine)) == sorted(
        map(key, pq.read_table(tmp_path / "whole" / "quarantine.parquet").to_pylist())
    )


def test_no_engagements_with_two_workers(demo_dir: Path, tmp_path: Path) -> None:
    """Tweets only: one pool over the tweet pieces, nothing left for engagements."""
    tweets = demo_dir / "tweets.jsonl"
    metrics = {}
    for w in (1, 2):
        cfg = IngestConfig(workers=w, piece_bytes=SMALL_PIECES)
        metrics[w] = _run(cfg, tmp_path / f"w{w}", [tweets], [])
    _assert_same_outputs(tmp_path / "w1", tmp_path / "w2")
    assert metrics[1] == metrics[2]
    assert metrics[1]["engagements"]["rows_in"] == 0


def test_a_failed_merge_stops_the_workers(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the serial merge, with pieces still in flight in the pool, ends every
    worker process before it reaches the caller."""
    import multiprocessing as mp

    import twhin_bert.ingest.ingest as ingest_mod

    calls = 0
    merge = ingest_mod._merge_engagements

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("merge failed")
        return merge(*args, **kwargs)

    monkeypatch.setattr(ingest_mod, "_merge_engagements", failing)
    cfg = IngestConfig(workers=2, piece_bytes=SMALL_PIECES)
    with pytest.raises(RuntimeError, match="merge failed"):
        _run(cfg, tmp_path / "out", [demo_dir / "tweets.jsonl"], [demo_dir / "engagements.jsonl"])
    assert mp.active_children() == []


@pytest.mark.parametrize("piece_bytes", [100, 1000, 4096])
def test_line_pieces_start_at_lines_and_cover_the_file(tmp_path: Path, piece_bytes: int) -> None:
    lines = [b"\xef\xbb\xbfbom", b"", b"a" * 3000, b"short", b"\xef\xbb\xbfnot a bom here"]
    lines += [f"line {i}".encode() * (i % 9) for i in range(400)]
    data = b"\r\n".join(lines) + b"\n\n"
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    reader = FileReader(str(path), "jsonl", False, required=(), max_line_bytes=2048)
    pieces = reader.pieces(piece_bytes)
    assert len(pieces) > 1 and pieces[0][0] == 0 and pieces[-1][1] is None
    for (_, stop), (start, _) in itertools.pairwise(pieces):
        assert stop == start and data[start - 1 : start] == b"\n"

    def split(start: int, stop: int | None) -> list[bytes]:
        with open(path, "rb") as f:
            f.seek(start)
            chunk = f.read() if stop is None else f.read(stop - start)
        import io

        return list(iter_lines(io.BytesIO(chunk), 64, 2048, bom=start == 0))

    whole = split(0, None)
    assert [ln for a, b in pieces for ln in split(a, b)] == whole
    assert whole[0] == b"bom" and whole[4].startswith(b"\xef\xbb\xbf")
    assert sum(len(list(reader.batches(a, b))) >= 0 and reader.physical for a, b in pieces) == len(
        whole
    )


def test_parquet_pieces_are_row_group_ranges(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": list(range(1000))}), tmp_path / "x.parquet", row_group_size=100)
    reader = FileReader(str(tmp_path / "x.parquet"), "parquet", False, required=("x",))
    pieces = reader.pieces(1)
    assert pieces == [(i, i + 1) for i in range(9)] + [(9, None)]
    rows = []
    for a, b in pieces:
        rows += [r["x"] for batch in reader.batches(a, b) for r in batch.records]
        assert reader.physical == 100
    assert rows == list(range(1000))
    assert FileReader(str(tmp_path / "x.parquet"), "parquet", False, required=()).pieces(
        1 << 30
    ) == [(0, None)]


def _square(x: int) -> int:
    if x == 7:
        raise ValueError("row 7: seven is not allowed")
    return x * x


def _hash_and_pid(s: str) -> tuple[int, int]:
    return hash(s), os.getpid()


def test_ordered_map_keeps_order_and_raises_at_its_item() -> None:
    assert list(ordered_map(_square, range(6), 2, window=2)) == [0, 1, 4, 9, 16, 25]
    got = []
    with pytest.raises(ValueError, match="row 7"):
        for y in ordered_map(_square, range(20), 2):
            got.append(y)
    assert got == [x * x for x in range(7)]


def test_workers_hash_strings_as_their_parent() -> None:
    """The ingest dedup hashes ids in workers and compares them in the parent."""
    out = list(ordered_map(_hash_and_pid, ["t1", "t2", "user\x1ftweet\x1ffave"] * 4, 2, window=4))
    assert {pid for _, pid in out} - {os.getpid()}  # really in other processes
    assert [h for h, _ in out] == [hash(s) for s in ["t1", "t2", "user\x1ftweet\x1ffave"] * 4]


def _sigint_ignored(_: int) -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def _die_on_three(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), 9)  # as the kernel's out-of-memory killer would
    return x


def test_workers_leave_ctrl_c_to_the_parent() -> None:
    """Ctrl-C reaches the whole process group: a worker interrupted while it held the
    result queue's lock hung the pool's shutdown; the parent alone handles it."""
    assert all(ordered_map(_sigint_ignored, range(4), 2))


def test_a_killed_worker_is_one_clear_error() -> None:
    from twhin_bert.common.errors import ExitCode, describe, exit_code_for
    from twhin_bert.common.parallel import WorkerDiedError

    with pytest.raises(WorkerDiedError) as e:
        list(ordered_map(_die_on_three, range(8), 2))
    assert exit_code_for(e.value) == ExitCode.IO
    # It names an item in flight when the pool broke (the killed one, or one beside it).
    assert re.match(r"item [0-7]: a worker process died", describe(e.value))
    assert "\n" not in describe(e.value)


_ORPHAN_CHECK = """
import os, sys, time
from twhin_bert.common.parallel import ordered_map

def slow(x):
    os.write(1, f"{os.getpid()}\\n".encode())  # one write: two workers' lines never interleave
    time.sleep(60)
    return x

for _ in ordered_map(slow, range(4), 2):
    pass
"""


def test_kill_9_of_the_parent_leaves_no_worker(tmp_path: Path) -> None:
    """kill -9 of a stage: its forked workers go with it (they would hold its output lock)."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "orphans.py"
    script.write_text(_ORPHAN_CHECK)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = {int(proc.stdout.readline()) for _ in range(2)}
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def running(pid: int) -> bool:  # a zombie waiting for its reaper counts as gone
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(p) for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if running(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their parent"


def test_workers_setting() -> None:
    assert resolve_cpus(0, "workers") == available_cpus() >= 1
    assert resolve_cpus(3, "workers") == 3
    with pytest.raises(ValueError, match="workers"):
        resolve_cpus(-1, "workers")
    with pytest.raises(ValueError, match="workers"):
        IngestConfig(workers=-1)
