"""``twhin-bert bench resume``: how long a resumed pretrain waits for its first batch, early
and late in the same run.

A checkpoint holds the data stream's position (row group, slice, row, the shuffle buffer and
its generator's state, the tweets tokenized but not yet packed); resuming restores it instead
of re-reading, re-tokenising and re-packing the stream up to the step. The figure is the time
from building the stream to its first batch after the resume (what a resumed ``pretrain``
spends on data before its first step; loading weights and optimizer costs what the model
costs, at any step), at an early and a late step of one run, for stage 1 (tweets) and
stage 2 (pairs). Baseline, same run: the replay a checkpoint without a position needs. Each
resumed batch is checked against the one the uninterrupted run produced. Goal: late/early
<= 1.5 with the saved position, in both stages. Data: generated tweets in four languages.
"""

from __future__ import annotations

import io
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

FIELDS = ("input_ids", "position_ids", "segment_ids", "cls_index", "mlm_index", "mlm_labels")
LANGS = {"en": 0.6, "es": 0.25, "ja": 0.1, "sw": 0.05}


def generate(folder: Path, n_tweets: int, n_pairs: int, group_rows: int, seed: int) -> Path:
    """Writes ``tweets.parquet`` and ``pairs.parquet`` (row groups of ``group_rows``, as the
    upstream stages stream them) of Zipf-worded tweets in :data:`LANGS` into ``folder``."""
    from twhin_bert.common import schemas
    from twhin_bert.common.artifacts import Ingested, Pairs

    rng = random.Random(seed)
    words = {la: [f"{la}{i}" for i in range(3000)] for la in LANGS}
    weights = [1.0 / (i + 1) for i in range(3000)]
    langs = rng.choices(list(LANGS), list(LANGS.values()), k=n_tweets)
    texts = [" ".join(rng.choices(words[la], weights, k=rng.randint(4, 30))) for la in langs]
    tweets = pa.table(
        {
            "tweet_id": [f"t{i}" for i in range(n_tweets)],
            "author_id": pa.nulls(n_tweets, pa.string()),
            "text": texts,
            "lang": langs,
            "hashtags": [[] for _ in range(n_tweets)],
            "created_at": pa.nulls(n_tweets, schemas.TS),
        }
    )
    a = [rng.randrange(n_tweets) for _ in range(n_pairs)]
    b = [(i + 1 + rng.randrange(50)) % n_tweets for i in a]
    pairs = pa.table(
        {
            "tweet_a": [f"t{i}" for i in a],
            "tweet_b": [f"t{i}" for i in b],
            "score": pa.array([1.0] * n_pairs, pa.float32()),
            "source": ["social"] * n_pairs,
            "text_a": [texts[i] for i in a],  # mine_pairs writes the texts
            "text_b": [texts[i] for i in b],
        }
    )
    for table, name, file in ((tweets, "tweets", Ingested.TWEETS), (pairs, "pairs", Pairs.PAIRS)):
        with schemas.writer(folder / file, name) as w:
            w.write_table(table.cast(schemas.schema(name)), row_group_size=group_rows)
    return folder


def _checkpointed(position: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``position`` after a checkpoint's torch.save/torch.load, and its size in bytes."""
    import torch

    buf = io.BytesIO()
    torch.save({"data": position}, buf)
    size = buf.tell()
    buf.seek(0)
    return torch.load(buf, weights_only=False)["data"], size


def _same(x: Any, y: Any) -> bool:
    import torch

    return all(torch.equal(getattr(x, f), getattr(y, f)) for f in FIELDS)


def _measure(
    make: Callable[[], Any], early: int, late: int, repeats: int, stage: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One run to ``late`` steps, then resumes at ``early`` and ``late`` (saved and replayed)."""
    stream = make()
    it = stream()
    saved: dict[int, tuple[dict[str, Any], int, Any]] = {}
    for step in range(1, late + 1):
        next(it)
        if step in (early, late):
            pos, size = _checkpointed(stream.position())
            saved[step] = (pos, size, next(it)[2])  # the batch the run goes on with
            # The run goes on from its own checkpoint (as a resumed pretrain would), so the
            # batch just taken is produced again by the loop's next step.
            stream = make()
            it = stream(pos)
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    for step, (pos, size, want) in saved.items():
        for method, start in (
            ("saved", pos),
            ("replay", {"epoch": pos["epoch"], "batch": pos["batch"]}),
        ):
            times, ok = [], True
            for _ in range(repeats if method == "saved" else 1):
                t0 = time.perf_counter()
                batch = next(make()(start))[2]
                times.append(time.perf_counter() - t0)
                ok = ok and _same(batch, want)
            secs = statistics.median(times)
            rows.append(
                {
                    "stage": stage,
                    "resume at step": step,
                    "method": method,
                    "s to first batch": secs,
                    "position bytes": size if method == "saved" else 0,
                    "same batch": ok,
                }
            )
            figures[f"{stage}_{method}_step{step}_s"] = secs
            figures[f"{stage}_{method}_identical_step{step}"] = ok
        figures[f"{stage}_position_bytes_step{step}"] = size
    for method in ("saved", "replay"):
        figures[f"{stage}_{method}_late_over_early"] = (
            figures[f"{stage}_{method}_step{late}_s"] / figures[f"{stage}_{method}_step{early}_s"]
        )
    return rows, figures


def main(
    quick: bool = False,
    tweets: int = 200_000,
    pairs: int = 200_000,
    group_rows: int = 10_000,
    early: int = 20,
    late: int = 2000,
    rows_per_batch: int = 8,
    pairs_per_batch: int = 16,
    max_seq_len: int = 128,
    shuffle_buffer: int = 2048,
    read_rows: int = 1024,
    vocab_size: int = 8000,
    repeats: int = 3,
    max_ratio: float = 1.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Runs the benchmark and prints the table and the JSON summary.

    Args:
        quick: Smoke-test sizes (30K tweets and pairs, late step 300).
        tweets: Generated tweets.
        pairs: Generated pairs.
        group_rows: Rows per Parquet row group.
        early: The early resume step.
        late: The late resume step.
        rows_per_batch: Stage 1 micro-batch (packed rows).
        pairs_per_batch: Stage 2 micro-batch (pairs).
        max_seq_len: Tokens per packed row.
        shuffle_buffer: Tweets or pairs in the shuffle buffer.
        read_rows: Rows read (and tweets tokenized) at once.
        vocab_size: Tokenizer vocabulary.
        repeats: Resumes timed per saved position (median reported).
        max_ratio: Goal: late/early time to first batch at most this.
        seed: Seed of data and streams.

    Returns:
        The JSON summary.
    """
    from twhin_bert.bench.pretrain import train_tokenizer
    from twhin_bert.common.artifacts import Ingested
    from twhin_bert.common.bench import report
    from twhin_bert.pretrain import data as D

    if quick:
        tweets, pairs, group_rows, late = 30_000, 30_000, 5_000, 300
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        folder = generate(Path(tmp), tweets, pairs, group_rows, seed)
        sample = pa.parquet.read_table(folder / Ingested.TWEETS, columns=["text"])
        tok_dir = train_tokenizer(
            sample.column("text").to_pylist()[:20_000], vocab_size, Path(tmp) / "tok"
        )
        tok, sp = D.load_tokenizer(tok_dir)
        common = dict(position_offset=sp.pad + 1, mask_prob=0.15, alpha=0.7, seed=seed)

        def stage1() -> D.TweetStream:
            return D.TweetStream(
                folder / Ingested.TWEETS, tok, sp, rows_per_batch=rows_per_batch,
                max_seq_len=max_seq_len, shuffle_buffer=shuffle_buffer, read_rows=read_rows,
                **common,
            )  # fmt: skip

        def stage2() -> D.PairStream:
            return D.PairStream(
                folder, folder, tok, sp, pairs_per_batch=pairs_per_batch,
                max_seq_len=max_seq_len, max_tweet_tokens=64, shuffle_buffer=shuffle_buffer,
                read_rows=read_rows, **common,
            )  # fmt: skip

        rows1, fig1 = _measure(stage1, early, late, repeats, "stage1")
        rows2, fig2 = _measure(stage2, early, late, repeats, "stage2")
    figures: dict[str, Any] = {
        "tweets": tweets,
        "pairs": pairs,
        "early_step": early,
        "late_step": late,
        **fig1,
        **fig2,
    }
    ratios = [figures[f"{s}_saved_late_over_early"] for s in ("stage1", "stage2")]
    identical = all(v for k, v in figures.items() if "_identical_" in k and "_saved_" in k)
    figures["identical_batches"] = identical
    met = identical and max(ratios) <= max_ratio
    goal = (
        f"saved-position resume: late/early time to first batch <= {max_ratio} in both stages, "
        "batches identical to the uninterrupted run"
    )
    return report("resume", rows1 + rows2, figures, goal, met)
