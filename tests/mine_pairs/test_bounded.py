"""mine_pairs holds indices for every pair, never every text (the 100x scale run's fix).

Before, the stage kept a Python string per tweet, a set of hashtags per tweet, and the
whole pairs table with its texts (twice, for the final shuffle). Now texts stay in Arrow,
the hashtag source reads the paired rows only, and pairs are gathered and written
``PAIR_CHUNK`` rows at a time, with the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from twhin_bert.mine_pairs import mine
from twhin_bert.mine_pairs.config import HashtagSourceConfig, MinePairsConfig
from twhin_bert.mine_pairs.sources import hashtag_pairs


class _Recorded(Sequence):
    """A list that records which rows were read by index, and how often it was walked."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.read: set[int] = set()
        self.walks = 0

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        self.read.add(i)
        return self.values[i]

    def __iter__(self) -> Iterator[Any]:
        self.walks += 1
        return iter(self.values)


def test_hashtag_source_reads_only_the_paired_rows() -> None:
    n = 5000
    rng = np.random.default_rng(0)
    tags = [[f"tag{int(rng.integers(20))}"] if i % 3 == 0 else [] for i in range(n)]
    texts = _Recorded([f"tweet {i} #{t[0]}" if t else f"tweet {i}" for i, t in enumerate(tags)])
    hashtags = _Recorded(tags)
    cfg = HashtagSourceConfig(max_pairs_per_hashtag=10, min_hashtag_count=5)
    hp = hashtag_pairs(texts, hashtags, cfg, np.random.default_rng(1))
    paired = set(np.asarray(hp.rows_a).tolist()) | set(np.asarray(hp.rows_b).tolist())
    assert 0 < len(hp.rows_a) <= 20 * 10
    assert hashtags.walks == 1  # one pass to group rows by hashtag
    assert texts.read == paired and hashtags.read == paired
    assert len(texts.read) < n // 10


def test_pairs_are_written_in_chunks_with_the_same_rows(
    synth, tmp_path: Path, no_tracking, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(out: Path) -> Any:
        mine.run_mine_pairs(
            MinePairsConfig(),
            out,
            ingested=synth.ingested,
            graph_embeddings=synth.embeddings,
            parallel=str(synth.parallel),
        )
        return pq.ParquetFile(out / "pairs.parquet")

    whole = run(tmp_path / "whole")
    monkeypatch.setattr(mine, "PAIR_CHUNK", 100)
    chunked = run(tmp_path / "chunked")
    sizes = [chunked.metadata.row_group(i).num_rows for i in range(chunked.num_row_groups)]
    assert whole.metadata.num_rows > 300 and max(sizes) <= 100 and len(sizes) > 3
    assert chunked.read().equals(whole.read())
    sources = set(chunked.read(columns=["source"]).column(0).to_pylist())
    assert sources == {"social", "hashtag", "translation"}
