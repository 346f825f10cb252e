"""mine_pairs on the demo chain (demo_data -> ingest -> build_graph -> embed_graph)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from twhin_bert.common.stage import read_metrics


def test_demo_social_pairs_precision(pairs_dir: Path) -> None:
    m = read_metrics(pairs_dir)
    t = m["truth"]
    assert m["pairs"]["social"] > 100
    assert t["social_precision"] >= 0.9, t
    assert t["social_precision"] >= 3 * t["random_precision"], t
    assert m["social"]["recall_at_k"] >= 0.95
    table = pq.read_table(pairs_dir / "pairs.parquet").to_pandas()
    assert set(table.source) == {"social", "hashtag", "translation"}
    social = table[table.source == "social"]
    assert (social.tweet_a != social.tweet_b).all()
    assert len({tuple(sorted(p)) for p in zip(social.tweet_a, social.tweet_b, strict=True)}) == len(
        social
    )


def test_demo_no_training_input_touches_a_held_out_tweet(
    graph_dir: Path, graph_embeddings_dir: Path, pairs_dir: Path
) -> None:
    """build_graph's evaluation holdout reaches neither PBG's embeddings nor any pair."""
    from twhin_bert.common import holdout

    rule = holdout.read_rule(graph_embeddings_dir)
    assert rule is not None and rule.as_dict() == holdout.read_rule(graph_dir).as_dict()
    embedded = pq.read_table(graph_embeddings_dir / "tweets.ids.parquet").column("id")
    assert not rule.held_out(embedded).any()
    pairs = pq.read_table(pairs_dir / "pairs.parquet").to_pandas()
    mined = pairs[pairs.source != "translation"]  # translation pairs carry no tweet id
    assert len(mined) > 0
    assert not rule.held_out(mined.tweet_a.to_numpy()).any()
    assert not rule.held_out(mined.tweet_b.to_numpy()).any()
    m = read_metrics(pairs_dir)
    assert m["tweets_eval_holdout"] > 0.1 * m["tweets"]
