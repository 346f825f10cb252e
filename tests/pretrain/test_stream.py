"""Streams resume at their saved position with exactly the batches of an uninterrupted run
(stage 1 and stage 2), hold at most the shuffle buffer, and follow frequency**alpha."""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import torch
from twhin_bert.common import lang, schemas
from twhin_bert.common.artifacts import Ingested
from twhin_bert.pretrain import data as D

FIELDS = ("input_ids", "position_ids", "segment_ids", "cls_index", "mlm_index", "mlm_labels")


def write_rows(table: pa.Table, path: Path, name: str, group: int) -> Path:
    """``table`` as artifact ``name`` in row groups of ``group`` rows (as ingest writes)."""
    table = table.select(schemas.schema(name).names).cast(schemas.schema(name))
    with schemas.writer(path, name) as w:
        w.write_table(table, row_group_size=group)
    assert schemas.check(path, name).num_row_groups == -(-table.num_rows // group)
    return path


def tweets(rows: list[tuple[str, str]], folder: Path, group: int = 50) -> Path:
    n = len(rows)
    table = pa.table(
        {
            "tweet_id": [f"t{i}" for i in range(n)],
            "author_id": pa.nulls(n, pa.string()),
            "text": [t for t, _ in rows],
            "lang": [la for _, la in rows],
            "hashtags": [[] for _ in range(n)],
            "created_at": pa.nulls(n, schemas.TS),
        }
    )
    return write_rows(table, folder / "tweets.parquet", "tweets", group)


def pairs(n: int, n_tweets: int, folder: Path, group: int = 64, seed: int = 0) -> Path:
    """``n`` pairs of ingested tweets (every third one without texts: looked up) and a few
    translation pairs that carry their texts."""
    rng = random.Random(seed)
    a, b, ta, tb = [], [], [], []
    for i in range(n):
        if i % 10 == 9:
            a.append(f"tr{i}a")
            b.append(f"tr{i}b")
            ta.append(f"bonjour {i}")
            tb.append(f"hi {i}")
            continue
        x, y = rng.randrange(n_tweets), rng.randrange(n_tweets)
        a.append(f"t{x}")
        b.append(f"t{y}")
        ta.append(None if i % 3 == 0 else f"text of t{x}")
        tb.append(None if i % 3 == 0 else f"text of t{y}")
    table = pa.table(
        {
            "tweet_a": a,
            "tweet_b": b,
            "score": pa.array([1.0] * n, pa.float32()),
            "source": ["social"] * n,
            "text_a": pa.array(ta, pa.string()),
            "text_b": pa.array(tb, pa.string()),
        }
    )
    return write_rows(table, folder / "pairs.parquet", "pairs", group)


def checkpointed(position: dict[str, Any]) -> dict[str, Any]:
    """``position`` after the trip a checkpoint's client_state takes (torch.save/load)."""
    buf = io.BytesIO()
    torch.save({"data": position}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)["data"]


def same(x: tuple[int, int, D.Batch], y: tuple[int, int, D.Batch]) -> bool:
    return x[:2] == y[:2] and all(torch.equal(getattr(x[2], f), getattr(y[2], f)) for f in FIELDS)


def assert_resumes_exactly(make: Any, stops: list[int], total: int) -> None:
    straight = make()()
    want = [next(straight) for _ in range(total)]
    assert len({e for e, _, _ in want}) >= 2, "the run should cross an epoch boundary"
    for n in stops:
        first = make()
        it = first()
        for k in range(n):
            assert same(next(it), want[k])
        pos = checkpointed(first.position())
        resumed = make()(pos)
        for k in range(n, total):
            assert same(next(resumed), want[k]), f"stopped at {n}: batch {k} differs"


@pytest.fixture(scope="module")
def small(pt_rows: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    tweets(pt_rows[:300], folder, group=50)
    pairs(220, 300, folder, group=40)
    return folder


def test_stage1_resumes_with_the_uninterrupted_batches(small: Path, pt_tokenizer: Path) -> None:
    tok, sp = D.load_tokenizer(pt_tokenizer)

    def make() -> D.TweetStream:
        return D.TweetStream(
            Ingested(small).tweets_path(),
            tok, sp, rows_per_batch=4, max_seq_len=64, position_offset=2,
            mask_prob=0.15, alpha=0.7, shuffle_buffer=32, read_rows=16, seed=7,
        )  # fmt: skip

    it = make()()
    epoch0 = 0
    while next(it)[0] == 0:
        epoch0 += 1
    # early, mid-slice, just before and just after the epoch boundary, into epoch 1
    assert_resumes_exactly(make, [1, 5, epoch0 - 1, epoch0, epoch0 + 3], epoch0 + 8)


def test_stage2_resumes_with_the_uninterrupted_batches(small: Path, pt_tokenizer: Path) -> None:
    tok, sp = D.load_tokenizer(pt_tokenizer)

    def make() -> D.PairStream:
        return D.PairStream(
            small, small, tok, sp, pairs_per_batch=8, max_seq_len=64, max_tweet_tokens=32,
            position_offset=2, mask_prob=0.15, alpha=0.7, shuffle_buffer=24, read_rows=16,
            seed=7,
        )  # fmt: skip

    it = make()()
    epoch0 = 0
    while next(it)[0] == 0:
        epoch0 += 1
    assert_resumes_exactly(make, [1, 4, epoch0 - 1, epoch0, epoch0 + 2], epoch0 + 6)


def test_resumed_position_reads_one_slice(small: Path, pt_tokenizer: Path) -> None:
    """A late position is restored by reading one slice, not by replaying what came before."""
    tok, sp = D.load_tokenizer(pt_tokenizer)
    ps = D.PairStream(
        small, small, tok, sp, pairs_per_batch=8, max_seq_len=64, max_tweet_tokens=32,
        position_offset=2, mask_prob=0.15, alpha=0.7, shuffle_buffer=24, read_rows=16, seed=7,
    )  # fmt: skip
    it = ps()
    for _ in range(15):
        next(it)
    pos = checkpointed(ps.position())
    calls: list[int] = []
    resolve = D.PairStream.resolve

    def counting(self: D.PairStream, rb: pa.RecordBatch, first: int, **kw: Any) -> Any:
        if kw.get("texts", True):
            calls.append(rb.num_rows)
        return resolve(self, rb, first, **kw)

    D.PairStream.resolve = counting  # type: ignore[method-assign]
    try:
        again = D.PairStream(
            small, small, tok, sp, pairs_per_batch=8, max_seq_len=64, max_tweet_tokens=32,
            position_offset=2, mask_prob=0.15, alpha=0.7, shuffle_buffer=24, read_rows=16,
            seed=7,
        )  # fmt: skip
        next(again(pos))
    finally:
        D.PairStream.resolve = resolve  # type: ignore[method-assign]
    # the slice in progress (and at most the next one, to fill one batch): never the 15 before
    assert len(calls) in (1, 2), calls


def shares(c: Counter[str]) -> dict[str, float]:
    n = sum(c.values())
    return {k: v / n for k, v in c.items()}


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Tweets in three languages, 80/15/5, and 3,000 pairs of them (no translation pairs)."""
    folder = tmp_path_factory.mktemp("skewed")
    counts = {"en": 1600, "fr": 300, "sw": 100}
    rows = [(f"{la} tweet {i}", la) for la, n in counts.items() for i in range(n)]
    random.Random(1).shuffle(rows)
    tweets(rows, folder, group=250)
    rng = random.Random(2)
    n = 3000
    ids = [rng.randrange(len(rows)) for _ in range(n)]
    table = pa.table(
        {
            "tweet_a": [f"t{i}" for i in ids],
            "tweet_b": [f"t{(i + 1) % len(rows)}" for i in ids],
            "score": pa.array([1.0] * n, pa.float32()),
            "source": ["social"] * n,
            "text_a": [rows[i][0] for i in ids],
            "text_b": [rows[(i + 1) % len(rows)][0] for i in ids],
        }
    )
    write_rows(table, folder / "pairs.parquet", "pairs", 200)
    pair_counts = Counter(rows[i][1] for i in ids)
    return folder, dict(pair_counts)


def test_pairs_stream_in_bounded_memory_and_follow_frequency_alpha(
    skewed: tuple[Path, dict[str, int]], pt_tokenizer: Path
) -> None:
    folder, counts = skewed
    tok, sp = D.load_tokenizer(pt_tokenizer)
    ps = D.PairStream(
        folder, folder, tok, sp, pairs_per_batch=16, max_seq_len=64, max_tweet_tokens=16,
        position_offset=2, mask_prob=0.15, alpha=0.7, shuffle_buffer=64, read_rows=32, seed=3,
    )  # fmt: skip
    assert ps.lang_counts == counts
    seen: Counter[str] = Counter()
    for epoch in range(3):
        ps._start(epoch, None)
        while (p := ps.cursor.next()) is not None:
            seen[p[0].split()[0]] += 1
        # the reader held at most the buffer and one slice, never the 3,000 pairs
        assert ps.cursor.peak_buffer == 64
        assert ps.cursor.peak_slice <= 32
    # an epoch keeps its size; languages follow frequency**0.7, not the natural 80/15/5
    assert sum(seen.values()) == pytest.approx(3 * 3000, rel=0.03)
    want = lang.language_probabilities(counts, 0.7)
    got = shares(seen)
    for la in counts:
        assert got[la] == pytest.approx(want[la], abs=0.02), (la, got, want)
    assert got["sw"] > 1.5 * counts["sw"] / 3000
    # and the batches are whole: 16 pairs -> 32 CLS tokens
    _, _, batch = next(ps())
    assert len(batch.cls_index) == 32


def test_tweets_follow_frequency_alpha(
    skewed: tuple[Path, dict[str, int]], pt_tokenizer: Path
) -> None:
    folder, _ = skewed
    tok, sp = D.load_tokenizer(pt_tokenizer)
    ts = D.TweetStream(
        Ingested(folder).tweets_path(),
        tok, sp, rows_per_batch=4, max_seq_len=64, position_offset=2,
        mask_prob=0.15, alpha=0.7, shuffle_buffer=64, read_rows=32, seed=3,
    )  # fmt: skip
    seen: Counter[str] = Counter()
    for epoch in range(3):
        ts._start(epoch, None)
        while (t := ts.cursor.next()) is not None:
            seen[t.split()[0]] += 1
        assert ts.cursor.peak_buffer == 64
    want = lang.language_probabilities({"en": 1600, "fr": 300, "sw": 100}, 0.7)
    for la, q in want.items():
        assert shares(seen)[la] == pytest.approx(q, abs=0.025)
