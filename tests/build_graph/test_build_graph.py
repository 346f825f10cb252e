"""build_graph: counts, orientation, partitions, filters and errors on generated engagements."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.build_graph.graph import GraphInputError, run_build_graph
from twhin_bert.common import holdout
from twhin_bert.common.schemas import read_table, write_table
from twhin_bert.demo_data.synthetic import write_synthetic_ingest


@pytest.fixture(scope="module")
def ingest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bg-ingest")
    write_synthetic_ingest(out, users=300, tweets=1500, edges=12_000, seed=3)
    return out


def _edge_set(graph: Path) -> set[tuple[str, str, str]]:
    """Reads every PBG bucket back into (user_id, tweet_id, type) via entities.parquet."""
    from torchbiggraph.graph_storages import EDGE_STORAGES

    meta = json.loads((graph / "graph.json").read_text())
    ent = read_table(graph / "entities.parquet", "entities").to_pandas()
    lookup = {(r.entity_type, r.partition, r.offset): r.id for r in ent.itertuples(index=False)}
    p = meta["num_partitions"]
    edges = set()
    for split in ("train", "valid", "test"):
        storage = EDGE_STORAGES.make_instance(str(graph / meta["paths"][split]))
        for lp in range(p):
            for rp in range(p):
                el = storage.load_edges(lp, rp)
                lhs = el.lhs.to_tensor().tolist()
                rhs = el.rhs.to_tensor().tolist()
                rel = el.get_relation_type_as_vector().tolist()
                for t, u, r in zip(lhs, rhs, rel, strict=True):
                    # lhs = tweet, rhs = user: the translation operator acts on the user.
                    edges.add(
                        (lookup[("user", rp, u)], lookup[("tweet", lp, t)], meta["relations"][r])
                    )
    return edges


def _input_set(ingest: Path, graph: Path | None = None) -> set[tuple[str, str, str]]:
    """The input engagements; with ``graph``, less those of its evaluation-holdout tweets."""
    t = pq.read_table(ingest / "engagements.parquet").to_pydict()
    rows = set(zip(t["user_id"], t["tweet_id"], t["engagement_type"], strict=True))
    rule = holdout.read_rule(graph) if graph is not None else None
    if rule is None:
        return rows
    held = {tid for tid, h in zip(t["tweet_id"], rule.held_out(t["tweet_id"]), strict=True) if h}
    return {r for r in rows if r[1] not in held}


@pytest.mark.parametrize("partitions", [1, 2])
def test_graph_round_trips_every_edge(ingest_dir: Path, tmp_path: Path, partitions: int) -> None:
    out = tmp_path / "graph"
    cfg = BuildGraphConfig(
        num_partitions=partitions, holdout_valid_fraction=0.0, holdout_test_fraction=0.0
    )
    m = run_build_graph(cfg, out, ingested=ingest_dir)
    assert not (out / holdout.HOLDOUT_FILE).exists()
    expected = _input_set(ingest_dir)
    assert _edge_set(out) == expected
    assert m["edges"] == len(expected) == m["rows_read"]
    assert m["users"] == len({u for u, _, _ in expected})
    assert m["tweets"] == len({t for _, t, _ in expected})
    assert m["edges_train"] + m["edges_valid"] + m["edges_test"] == m["edges"]
    assert abs(m["edges_test"] / m["edges"] - 0.1) < 0.03
    assert abs(m["edges_valid"] / m["edges"] - 0.05) < 0.02
    meta = json.loads((out / "graph.json").read_text())
    for entity, n in (("user", m["users"]), ("tweet", m["tweets"])):
        counts = [
            int((out / "pbg" / f"entity_count_{entity}_{i}.txt").read_text())
            for i in range(partitions)
        ]
        assert sum(counts) == n and counts == meta["entities"][entity]["partition_counts"]
        assert max(counts) - min(counts) <= 1  # balanced partitions
    for split in ("train", "valid", "test"):
        assert len(list((out / "pbg" / split).glob("edges_*_*.h5"))) == partitions**2
    ent = read_table(out / "entities.parquet", "entities").to_pandas()
    users = ent[ent.entity_type == "user"]
    assert users.degree.sum() == m["edges"]
    # Row order = (partition, offset) order, offsets dense per partition.
    assert (users.groupby("partition").offset.apply(lambda s: list(s) == list(range(len(s))))).all()
    rels = json.loads((out / "relations.json").read_text())
    assert [r["name"] for r in rels] == ["fave", "retweet", "reply", "quote"]
    assert sum(sum(r["edges"].values()) for r in rels) == m["edges"]


def test_evaluation_holdout_tweets_stay_out_of_the_graph(ingest_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph"
    m = run_build_graph(BuildGraphConfig(seed=5), out, ingested=ingest_dir)
    rule = holdout.read_rule(out)
    assert rule is not None and rule.seed == 5
    assert (rule.valid_fraction, rule.test_fraction) == (0.1, 0.1)
    every = _input_set(ingest_dir)
    kept = _input_set(ingest_dir, out)
    assert _edge_set(out) == kept
    assert m["dropped"]["eval_holdout"] == len(every) - len(kept) > 0
    assert m["edges"] + m["dropped"]["eval_holdout"] == m["rows_read"]
    tweets = sorted({t for _, t, _ in every})
    side = rule.split(tweets)
    assert m["eval_holdout_tweets"] == {
        "valid": int((side == holdout.VALID).sum()),
        "test": int((side == holdout.TEST).sum()),
    }
    assert abs((side != holdout.TRAIN).mean() - 0.2) < 0.04
    graph_tweets = {t for _, t, _ in kept}
    assert not graph_tweets & {t for t, s in zip(tweets, side, strict=True) if s}
    # The split is a function of the id alone: the same on any subset, in any order.
    assert list(rule.split(tweets[::-1])) == list(side[::-1])
    assert list(holdout.split_of(tweets, 0.1, 0.1, seed=6)) != list(side)


def test_every_held_out_entity_is_seen_in_training(ingest_dir: Path, tmp_path: Path) -> None:
    from torchbiggraph.graph_storages import EDGE_STORAGES

    out = tmp_path / "graph"
    run_build_graph(BuildGraphConfig(test_fraction=0.3), out, ingested=ingest_dir)
    sides = {}
    for split in ("train", "test"):
        el = EDGE_STORAGES.make_instance(str(out / "pbg" / split)).load_edges(0, 0)
        sides[split] = (set(el.lhs.to_tensor().tolist()), set(el.rhs.to_tensor().tolist()))
    assert sides["test"][0] <= sides["train"][0]
    assert sides["test"][1] <= sides["train"][1]


def test_filters_degree_window_and_relations(ingest_dir: Path, tmp_path: Path) -> None:
    start, end = datetime(2022, 2, 1, tzinfo=UTC), datetime(2022, 5, 1, tzinfo=UTC)
    cfg = BuildGraphConfig(
        relations=["fave", "retweet"], min_user_degree=8, min_tweet_degree=3, start=start, end=end
    )
    out = tmp_path / "graph"
    m = run_build_graph(cfg, out, ingested=ingest_dir)
    df = pq.read_table(ingest_dir / "engagements.parquet").to_pandas()
    assert m["dropped"]["relation_not_configured"] == int(
        (~df.engagement_type.isin(["fave", "retweet"])).sum()
    )
    kept = df[df.engagement_type.isin(["fave", "retweet"])]
    outside = (kept.engaged_at < start) | (kept.engaged_at >= end)
    assert m["dropped"]["outside_time_window"] == int(outside.sum())
    edges = _edge_set(out)
    assert {r for _, _, r in edges} == {"fave", "retweet"}
    users = np.unique([u for u, _, _ in edges], return_counts=True)[1]
    tweets = np.unique([t for _, t, _ in edges], return_counts=True)[1]
    assert users.min() >= 8 and tweets.min() >= 3
    assert m["dropped"]["degree_filter"] > 0
    assert m["edges"] + sum(m["dropped"].values()) == len(df)
    window = kept[~outside]
    assert edges <= set(zip(window.user_id, window.tweet_id, window.engagement_type, strict=True))


def test_unknown_engagement_type_names_file_and_row(tmp_path: Path) -> None:
    ts = pa.array([0, 0, 0], pa.timestamp("ms", tz="UTC"))
    table = pa.table(
        {
            "user_id": ["u1", "u2", "u3"],
            "tweet_id": ["t1", "t1", "t2"],
            "engagement_type": ["fave", "fave", "like"],
            "engaged_at": ts,
        }
    )
    write_table(table, tmp_path / "in" / "engagements.parquet", "engagements")
    with pytest.raises(
        GraphInputError, match=r"engagements.parquet: row 3: engagement_type 'like'"
    ):
        run_build_graph(BuildGraphConfig(), tmp_path / "g", ingested=tmp_path / "in")


def test_null_user_id_names_file_and_row(tmp_path: Path) -> None:
    from twhin_bert.common.schemas import schema

    strict = schema("engagements")
    loose = pa.schema([f.with_nullable(True) for f in strict]).with_metadata(strict.metadata)
    ts = pa.array([0, 0], pa.timestamp("ms", tz="UTC"))
    table = pa.table(
        {
            "user_id": ["u1", None],
            "tweet_id": ["t1", "t2"],
            "engagement_type": ["fave"] * 2,
            "engaged_at": ts,
        },
        schema=loose,
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "engagements.parquet")
    with pytest.raises(GraphInputError, match=r"row 2: user_id is null"):
        run_build_graph(BuildGraphConfig(), tmp_path / "g", ingested=tmp_path / "in")


def test_empty_graph_after_filters_is_an_error(ingest_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(GraphInputError, match="no edge left after filtering"):
        run_build_graph(
            BuildGraphConfig(min_user_degree=10_000), tmp_path / "g", ingested=ingest_dir
        )


def test_config_cross_field_validation() -> None:
    with pytest.raises(ValidationError, match="valid_fraction \\+ test_fraction"):
        BuildGraphConfig(valid_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValidationError, match="no tweet left for the graph"):
        BuildGraphConfig(holdout_valid_fraction=0.5, holdout_test_fraction=0.5)
    with pytest.raises(ValidationError, match="time window is empty"):
        BuildGraphConfig(start="2022-02-01T00:00:00Z", end="2022-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="unknown engagement types"):
        BuildGraphConfig(relations=["fave", "like"])
    with pytest.raises(ValidationError):
        BuildGraphConfig(num_partition=2)  # typo: unknown fields are rejected


def test_demo_graph_counts(request: pytest.FixtureRequest) -> None:
    """On the shared demo chain."""
    graph_dir: Path = request.getfixturevalue("graph_dir")
    ingested_dir: Path = request.getfixturevalue("ingested_dir")
    m = json.loads((graph_dir / "metrics.json").read_text())
    expected = _input_set(ingested_dir, graph_dir)
    assert _edge_set(graph_dir) == expected
    assert m["edges"] == len(expected) and m["users"] > 0 and m["tweets"] > 0


def test_rolling_window_ends_at_the_given_instant(ingest_dir: Path, tmp_path: Path) -> None:
    from twhin_bert.build_graph.graph import first_instant, resolve_window

    end = "2022-05-01T00:00:00Z"
    cfg = BuildGraphConfig(window_days=30, holdout_valid_fraction=0, holdout_test_fraction=0)
    m = run_build_graph(cfg, tmp_path / "g", ingested=ingest_dir, window_end=end)
    assert m["window"] == "2022-04-01T00:00:00Z/2022-05-01T00:00:00Z"
    df = pq.read_table(ingest_dir / "engagements.parquet").to_pandas()
    start, stop = datetime(2022, 4, 1, tzinfo=UTC), datetime(2022, 5, 1, tzinfo=UTC)
    inside = (df.engaged_at >= start) & (df.engaged_at < stop)
    assert m["edges"] == int(inside.sum()) > 0
    assert m["dropped"]["outside_time_window"] == int((~inside).sum())
    # A KFP placeholder the local runner left unresolved is skipped; the next instant wins.
    assert first_instant("", "{{$.pipeline_job_schedule_time_utc}}", end) == end
    assert first_instant("", "") is None
    with pytest.raises(GraphInputError, match="expected an ISO 8601 instant"):
        first_instant("yesterday", end)
    # A fixed window is labelled as is; none at all is open on both sides.
    fixed = BuildGraphConfig(start="2022-02-01T00:00:00Z")
    assert resolve_window(fixed, None)[1] == "2022-02-01T00:00:00Z/*"
    assert resolve_window(BuildGraphConfig(), None)[1] == "*/*"
    with pytest.raises(ValidationError, match="window_days replaces start/end"):
        BuildGraphConfig(window_days=7, start="2022-02-01T00:00:00Z")
