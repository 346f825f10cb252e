"""Smoke test of `twhin-bert bench embed` in quick mode (speed is not asserted: shared CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from twhin_bert.bench.embed import load_tweets, main


def test_bench_embed_quick_reports_same_vectors_and_ratios(
    capsys: pytest.CaptureFixture, sample_data: Path
) -> None:
    summary = main(quick=True, threads=1, data=str(sample_data))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["bench"] == "embed"
    assert summary["bench"] == "embed" and isinstance(summary["met"], bool)
    assert summary["tweets"] == 200 and summary["default_pipeline_tweets"] == 40
    assert summary["data"] == str(sample_data)  # real tweets, not the generated fallback
    for key in (
        "ours_tweets_per_s",
        "pipeline_default_tweets_per_s",
        "pipeline_batched_tweets_per_s",
        "speedup",
        "speedup_vs_pipeline_batched",
    ):
        assert summary[key] > 0, key
    assert summary["speedup"] == pytest.approx(
        summary["ours_tweets_per_s"] / summary["pipeline_default_tweets_per_s"], rel=1e-3
    )
    # Length-sorted batches pad far less than the pipeline's batches in input order.
    assert summary["padding_share_ours"] < summary["padding_share_pipeline_batched"] / 2
    assert summary["max_abs_diff"] < 1e-4  # both sides computed the same pooled vectors


def test_generated_fallback_text_when_no_data() -> None:
    texts, source = load_tweets(50, None, seed=1)
    assert source == "generated" and len(texts) == 50 and len(set(texts)) > 40
    assert load_tweets(50, None, seed=1)[0] == texts
