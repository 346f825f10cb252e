"""``twhin-bert bench embed-graph`` (quick): structure, PBG's own trainer beside the stage,
the settings frontier and a "met" that follows the bench's rule from its own figures."""

from __future__ import annotations

import json

import pytest
from twhin_bert.bench.embed_graph import (
    FRONTIER_GOAL_EDGES_PER_SECOND,
    frontier,
    main,
    parse_setting,
)


def test_parse_setting() -> None:
    assert parse_setting("batch_size=5000, workers=1,num_edge_chunks=null") == {
        "batch_size": 5000,
        "workers": 1,
        "num_edge_chunks": None,
    }
    assert parse_setting("") == {}
    with pytest.raises(ValueError, match="expected FIELD=VALUE, got 'workers'"):
        parse_setting("batch_size=5,workers")


def test_frontier_picks_fastest_at_equal_mrr() -> None:
    rows = [
        {"setting": "default", "edges/s": 100.0, "mrr": 0.50},
        {"setting": "fast but worse", "edges/s": 400.0, "mrr": 0.45},
        {"setting": "faster, equal", "edges/s": 200.0, "mrr": 0.495},
        {"setting": "slower, equal", "edges/s": 90.0, "mrr": 0.499},
    ]
    best = frontier(rows, reference_mrr=0.50, tolerance=0.01)
    assert best["setting"] == "faster, equal"
    assert [r["equal MRR"] for r in rows] == [True, False, True, True]
    # Pareto: nothing both faster and more accurate than "default", "fast but worse",
    # "faster, equal"; "slower, equal" is beaten by default on both.
    assert [r["pareto"] for r in rows] == [True, True, True, False]


def test_bench_embed_graph_quick(capsys: pytest.CaptureFixture[str]) -> None:
    summary = main(
        quick=True,
        edges=20_000,
        tsv_baseline_edges=2_000,
        workers=1,
        dimension=16,
        sweep="batch_size=500;num_batch_negs=10,num_uniform_negs=10",
    )
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["bench"] == "embed-graph" and last == json.loads(json.dumps(summary))
    assert 15_000 < last["edges"] <= 20_000 and last["edges_train"] < last["edges"]
    assert last["pbg_edges_per_second"] > 0 and last["pbg_own_edges_per_second"] > 0
    assert last["stage_vs_pbg_own"] == pytest.approx(
        last["pbg_edges_per_second"] / last["pbg_own_edges_per_second"], rel=1e-3
    )
    assert last["conversion_edges_per_second"] > 0 and last["pbg_tsv_importer_edges_per_second"] > 0
    assert 0 < last["mrr"] <= 1 and 0 < last["popularity_mrr"] <= 1
    # the sweep: the default first, then each setting, at the same epochs
    sweep = last["sweep"]
    assert [r["setting"] for r in sweep] == [
        "default",
        "batch_size=500",
        "num_batch_negs=10,num_uniform_negs=10",
    ]
    assert {r["epochs"] for r in sweep} == {last["sweep_epochs"]} == {1}
    assert all(r["edges/s"] > 0 and 0 < r["mrr"] <= 1 for r in sweep)
    equal = [r for r in sweep if r["mrr"] >= sweep[0]["mrr"] - 0.01]
    assert [r["equal MRR"] for r in sweep] == [r in equal for r in sweep]
    best = max(equal, key=lambda r: r["edges/s"])
    assert last["frontier_setting"] == best["setting"]
    assert last["frontier_edges_per_second"] == pytest.approx(best["edges/s"], rel=1e-3)
    # "met" follows the rule from the bench's own figures
    assert last["met_parity"] == (last["stage_vs_pbg_own"] >= 0.95)
    assert last["met_overhead"] == (last["outside_pbg_share"] <= 0.15)
    assert last["met_frontier"] == (
        last["frontier_edges_per_second"] >= FRONTIER_GOAL_EDGES_PER_SECOND
    )
    assert last["met"] == (last["met_parity"] and last["met_overhead"] and last["met_frontier"])
