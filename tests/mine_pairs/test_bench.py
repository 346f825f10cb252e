"""Smoke tests of ``twhin-bert bench mine`` (quick mode)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from twhin_bert.bench.mine import clustered_vectors, main


def test_clustered_vectors_are_unit_and_clustered() -> None:
    x = clustered_vectors(3000, 32, centres=10, seed=0, chunk=1000)
    assert x.shape == (3000, 32) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    sims = x[:200] @ x.T
    top = np.sort(sims, axis=1)[:, -11:-1]  # 10 nearest besides self
    assert top.mean() > 0.8 > np.median(sims)  # tight clusters, far apart


def test_bench_mine_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = main(quick=True, n=20_000, queries=200, sweep="nprobe=16,k_factor_rf=64", repeats=1)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["bench"] == "mine" and summary == json.loads(json.dumps(out))
    for key in (
        "recall@10",
        "qps",
        "exact_qps",
        "speedup",
        "train_seconds",
        "index",
        "settings",
        "met",
    ):
        assert key in summary, key
    # the index and settings mine_pairs itself derives for 20K vectors on the CPU
    assert summary["n"] == 20_000 and summary["index"] == "IVF128,PQ128x4fs,RFlat"
    assert summary["settings"] == "nprobe=26,k_factor_rf=10"
    assert summary["recall@10"] >= 0.9
    assert summary["speedup"] == pytest.approx(summary["qps"] / summary["exact_qps"], rel=1e-3)
    assert summary["met"] == (summary["recall@10"] >= 0.95 and summary["speedup"] >= 100)


@pytest.mark.slow
def test_bench_mine_default_recall() -> None:
    """At the size the goal is stated for (1M vectors, ~40 s here) the index mine_pairs
    derives keeps recall@10 >= 0.95. Speed is not asserted: the benchmark reports it (and
    "met") against exact search measured in the same run; a test on a shared or loaded
    machine would fail on timing, not on behaviour."""
    out = main()
    assert out["n"] == 1_000_000 and out["index"] == "IVF1024,PQ128x4fs,RFlat"
    assert out["recall@10"] >= 0.95
    assert out["speedup"] == pytest.approx(out["qps"] / out["exact_qps"], rel=1e-3)
    assert out["met"] == (out["recall@10"] >= 0.95 and out["speedup"] >= 100)
