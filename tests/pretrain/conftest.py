"""Small real-data fixtures for the pretrain tests (built here so the tests do not wait on
the upstream stages): an ingest-style tweets.parquet of real multilingual tweets, a quick
XLM-R style tokenizer and a pairs.parquet with both pair kinds (ids of ingested tweets, and
pairs that carry their own texts)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest
from twhin_bert.bench.pretrain import real_tweets, train_tokenizer, write_tweets
from twhin_bert.common.schemas import write_table

N_TWEETS = 1500


@pytest.fixture(scope="session")
def pt_rows() -> list[tuple[str, str]]:
    rows = real_tweets(N_TWEETS, seed=3)
    assert len(rows) == N_TWEETS
    return rows


@pytest.fixture(scope="session")
def pt_ingested(pt_rows: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tweets(pt_rows, tmp_path_factory.mktemp("pt") / "ingested")


@pytest.fixture(scope="session")
def pt_tokenizer(pt_rows: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer([t for t, _ in pt_rows], 1500, tmp_path_factory.mktemp("pt") / "tok")


@pytest.fixture(scope="session")
def pt_pairs(pt_rows: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Positive pairs with a learnable signal: a tweet and a noisy copy of it (15% of the words
    dropped) — half by id (text from tweets.parquet) and half as 'translation' pairs whose
    ids are not ingested and whose texts ride along."""
    rng = random.Random(5)
    a, b, ta, tb, src = [], [], [], [], []
    for i, (text, _) in enumerate(pt_rows[:600]):
        words = text.split()
        noisy = " ".join(w for w in words if rng.random() > 0.15) or text
        if i % 2 == 0:
            a.append(f"t{i}")
            b.append(f"x{i}")
            ta.append(None)
            tb.append(noisy)
            src.append("social")
        else:
            a.append(f"tr{i}a")
            b.append(f"tr{i}b")
            ta.append(text)
            tb.append(noisy)
            src.append("translation")
    table = pa.table(
        {
            "tweet_a": a,
            "tweet_b": b,
            "score": pa.array([1.0] * len(a), pa.float32()),
            "source": src,
            "text_a": ta,
            "text_b": tb,
        }
    )
    out = tmp_path_factory.mktemp("pt") / "pairs"
    write_table(table, out / "pairs.parquet", "pairs")
    return out
