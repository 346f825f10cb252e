"""Fixtures of the train_tokenizer tests: an ingest-like tweets.parquet of real multilingual
tweets (the UMSAB sample in tests/data) and one tokenizer trained on it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from twhin_bert.common.schemas import write_table

#: UMSAB folder -> ISO 639-1 code; English gets more tweets so re-sampling has work to do.
UMSAB = {
    "arabic": "ar",
    "english": "en",
    "french": "fr",
    "german": "de",
    "hindi": "hi",
    "italian": "it",
    "portuguese": "pt",
    "spanish": "es",
}
PER_LANG = {"en": 1500}
DEFAULT_PER_LANG = 250


def write_tweets(rows: list[tuple[str, str, str]], path: Path) -> Path:
    """Writes (tweet_id, text, lang) rows as an ingest ``tweets`` artifact."""
    n = len(rows)
    table = pa.table(
        {
            "tweet_id": [r[0] for r in rows],
            "author_id": [None] * n,
            "text": [r[1] for r in rows],
            "lang": [r[2] for r in rows],
            "hashtags": [[] for _ in range(n)],
            "created_at": pa.array([None] * n, pa.timestamp("ms", tz="UTC")),
        }
    )
    write_table(table, path, "tweets")
    return path


@pytest.fixture(scope="session")
def umsab_ingested(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ingest folder with ~3,250 real tweets in 8 languages (English over-represented)."""
    rows = []
    for folder, lang in UMSAB.items():
        lines = (sample_data / "umsab" / folder / "train_text.txt").read_text().splitlines()
        lines = [t for t in lines if t.strip()][: PER_LANG.get(lang, DEFAULT_PER_LANG)]
        rows += [(f"{lang}-{i}", t, lang) for i, t in enumerate(lines)]
    out = tmp_path_factory.mktemp("tok-ingested")
    write_tweets(rows, out / "tweets.parquet")
    return out


@pytest.fixture(scope="session")
def trained_tokenizer(umsab_ingested: Path) -> tuple[Path, dict]:
    """The stage run once with its default (tiny) config: (output folder, metrics)."""
    from twhin_bert.train_tokenizer.config import TrainTokenizerConfig
    from twhin_bert.train_tokenizer.tokenizer import run_train_tokenizer

    out = umsab_ingested.parent / "tokenizer"
    metrics = run_train_tokenizer(TrainTokenizerConfig(), out, ingested=umsab_ingested)
    return out, metrics
