"""Smoke test of ``twhin-bert bench pretrain`` in quick mode: structure, the MFU arithmetic,
and a "met" that follows the bench's rule from its own figures (speed is not asserted)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_pretrain_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from twhin_bert.bench.pretrain import GOAL, main

    summary = main(quick=True, batch_size=8, threads=1)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(summary))
    assert summary["bench"] == "pretrain" and isinstance(summary["met"], bool)
    assert summary["ours_tokens_per_s"] > 0 and summary["baseline_tokens_per_s"] > 0
    assert summary["speedup"] == pytest.approx(
        summary["ours_tokens_per_s"] / summary["baseline_tokens_per_s"], rel=1e-3
    )
    assert summary["met"] == (summary["speedup"] >= GOAL)
    # Packing fills the rows; the baseline pads each length-grouped batch to its longest
    # tweet, so it pads little too (unlike one tweet per 128-token row, ~0.16).
    assert summary["ours_slot_fill"] > 0.9 and summary["baseline_slot_fill"] > 0.5
    # MFU = 6 x non-embedding params x tokens/s / the matmul peak measured in the run
    params, peak = summary["non_embedding_params"], summary["matmul_peak_flops"]
    assert 0 < params < 2_000_000 and peak > 0
    for side, tps in (("ours", "ours_tokens_per_s"), ("baseline", "baseline_tokens_per_s")):
        assert summary[f"{side}_mfu"] == pytest.approx(6 * params * summary[tps] / peak, rel=1e-3)


def test_matmul_peak() -> None:
    from twhin_bert.bench.pretrain import matmul_peak_flops

    assert matmul_peak_flops(n=256, repeats=2) > 1e7  # any CPU does 10 MFLOP/s
