"""Smoke test of ``twhin-bert bench ingest --quick``: it runs and reports its figures."""

from __future__ import annotations

import json

import pytest
from twhin_bert.bench.ingest import main


def test_bench_ingest_quick(capsys: pytest.CaptureFixture[str]) -> None:
    summary = main(quick=True)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["bench"] == "ingest"
    assert summary["sizes"] == [5_000, 50_000]
    assert 9.0 <= summary["input_growth"] <= 11.0
    assert summary["rss_peak_mb_small"] > 50 and summary["rss_peak_mb_large"] > 50
    assert summary["rss_growth"] == pytest.approx(
        summary["rss_peak_mb_large"] / summary["rss_peak_mb_small"], rel=1e-3
    )
    assert summary["rows_per_cpu_s"] > 1000
    assert isinstance(summary["met"], bool)
    # Streaming: even at this small scale memory must not follow the input.
    assert summary["rss_growth"] < 1.3
    # Scaling: both settings ran on the large input and wrote the same files.
    assert summary["outputs_identical"] is True
    assert summary["speedup_2_workers"] == pytest.approx(
        summary["rows_per_s_workers2"] / summary["rows_per_s_workers1"], rel=0.02
    )
    assert 0 < summary["serial_share_workers2"] < 1
    # Derived from CPU-seconds, which move from run to run (it can exceed 2 when the
    # serial run was the slower one): only its sign is certain.
    assert summary["cpu_bound_speedup_2_cores"] > 0
    # The goal falls back to the machine's own 2-process speedup only where that is lower.
    assert 0.5 < summary["machine_parallel_ceiling"] < 2.5
    assert summary["speedup_goal"] == pytest.approx(
        min(1.6, 0.95 * summary["machine_parallel_ceiling"]), abs=2e-3
    )
    assert summary["loadavg_1min_before"] >= 0
    assert summary["build_graph_rows_per_cpu_s"] > 1000
    assert summary["build_graph_rss_mb_large"] >= summary["build_graph_rss_mb_small"] > 50
