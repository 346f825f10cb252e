"""Smoke test of ``twhin-bert bench pretrain`` in quick mode."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_pretrain_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from twhin_bert.bench.pretrain import main

    summary = main(quick=True, batch_size=8, threads=1)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(summary))
    assert summary["bench"] == "pretrain" and isinstance(summary["met"], bool)
    assert summary["ours_tokens_per_s"] > 0 and summary["baseline_tokens_per_s"] > 0
    assert summary["speedup"] == pytest.approx(
        summary["ours_tokens_per_s"] / summary["baseline_tokens_per_s"], rel=1e-3
    )
    # Packing fills the rows; one tweet per 128-token row is mostly padding.
    assert summary["ours_slot_fill"] > 0.9 > 0.5 > summary["baseline_slot_fill"]
