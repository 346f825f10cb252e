"""build_graph on every core: workers=2 builds the graph workers=1 builds, file for file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.build_graph.graph import GraphInputError, read_edges, run_build_graph
from twhin_bert.common.schemas import schema


def _files(graph: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(graph)): p
        for p in sorted(graph.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _assert_same_graph(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    assert any(name.endswith(".h5") for name in fa)
    for name, pa_ in fa.items():
        if name.endswith(".h5"):
            with h5py.File(pa_) as ha, h5py.File(fb[name]) as hb:
                assert set(ha) == set(hb), name
                for ds in ha:
                    assert (ha[ds][()] == hb[ds][()]).all(), f"{name}/{ds}"
        elif name.endswith(".parquet"):
            assert pq.read_table(pa_).equals(pq.read_table(fb[name])), name
        elif name != "metrics.json":
            assert pa_.read_bytes() == fb[name].read_bytes(), name


def _same(x: object, y: object) -> bool:
    if isinstance(x, pa.Array):
        return x.equals(y)
    if isinstance(x, np.ndarray):
        return x.dtype == y.dtype and x.shape == y.shape and bool((x == y).all())
    return x == y


def _engagements(path: Path, n: int, row_group_size: int, bad_row: int | None = None) -> None:
    """n engagements over 900 users and 4,000 tweets, in small row groups; ``bad_row``
    (1-based) gets an unknown engagement type."""
    types = ["fave", "retweet", "reply", "quote"]
    rows = {
        "user_id": [f"u{(i * 7919) % 900}" for i in range(n)],
        "tweet_id": [f"t{(i * 104729) % 4000}" for i in range(n)],
        "engagement_type": [types[i % 4] for i in range(n)],
        "engaged_at": [1_700_000_000_000 + i * 1000 for i in range(n)],
    }
    if bad_row is not None:
        rows["engagement_type"][bad_row - 1] = "boost"
    table = pa.table(rows).cast(schema("engagements"))
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {
            "relations": ["fave", "reply"],
            "min_user_degree": 3,
            "min_tweet_degree": 2,
            "start": "2023-11-14T23:00:00Z",
            "end": "2023-11-15T03:00:00Z",
            "num_partitions": 2,
        },
    ],
)
def test_two_workers_build_the_same_graph(tmp_path: Path, settings: dict) -> None:
    ingested = tmp_path / "ingested"
    ingested.mkdir()
    _engagements(ingested / "engagements.parquet", 20_000, row_group_size=700)
    metrics = {}
    for w in (1, 2):
        cfg = BuildGraphConfig.model_validate({**settings, "workers": w, "batch_rows": 1000})
        metrics[w] = run_build_graph(cfg, tmp_path / f"w{w}", ingested=ingested)
    _assert_same_graph(tmp_path / "w1", tmp_path / "w2")
    strip = {"wall_seconds"}
    assert {k: v for k, v in metrics[1].items() if k not in strip} == {
        k: v for k, v in metrics[2].items() if k not in strip
    }
    assert metrics[1]["edges"] > 1000
    if settings:
        assert metrics[1]["dropped"]["outside_time_window"] > 0
        assert metrics[1]["dropped"]["relation_not_configured"] > 0

    # Pieces of other sizes (so other chunks to unify) give the same arrays.
    cfg = BuildGraphConfig.model_validate({**settings, "workers": 2, "batch_rows": 1000})
    small = read_edges(ingested / "engagements.parquet", cfg)
    whole = read_edges(
        ingested / "engagements.parquet", cfg.model_copy(update={"batch_rows": 10**6})
    )
    for x, y in zip(small, whole, strict=True):
        assert _same(x, y)


def test_bad_row_in_a_later_piece_is_named_by_its_row_in_the_file(tmp_path: Path) -> None:
    ingested = tmp_path / "ingested"
    ingested.mkdir()
    _engagements(ingested / "engagements.parquet", 5_000, row_group_size=500, bad_row=3_456)
    cfg = BuildGraphConfig(workers=2, batch_rows=1000)
    with pytest.raises(GraphInputError, match=r"row 3456: engagement_type 'boost'"):
        run_build_graph(cfg, tmp_path / "graph", ingested=ingested)
    assert not (tmp_path / "graph" / "graph.json").exists()
