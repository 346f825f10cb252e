"""mine_pairs end to end on synthetic clustered embeddings with planted topics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from twhin_bert.common.schemas import read_table
from twhin_bert.mine_pairs.config import MinePairsConfig
from twhin_bert.mine_pairs.mine import run_mine_pairs


@pytest.fixture(scope="module")
def mined(synth, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One tracked run (MLflow on) with every source and the truth file."""
    out = tmp_path_factory.mktemp("mined") / "pairs"
    metrics = run_mine_pairs(
        MinePairsConfig(),
        out,
        ingested=synth.ingested,
        graph_embeddings=synth.embeddings,
        parallel=str(synth.parallel),
        truth=str(synth.truth),
    )
    return out, metrics


def test_output_schema_and_metrics_file(mined) -> None:
    out, metrics = mined
    table = read_table(out / "pairs.parquet", "pairs")  # checks the schema tag and columns
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["pairs"] == metrics["pairs"]
    assert metrics["pairs"]["total"] == table.num_rows
    counts = {s: 0 for s in ("social", "hashtag", "translation")}
    for s in table.column("source").to_pylist():
        counts[s] += 1
    assert counts == {s: metrics["pairs"][s] for s in counts}
    assert all(v > 0 for v in counts.values())
    assert not (out.parent / "pairs.partial").exists()


def test_social_pairs_match_planted_topics(mined, synth) -> None:
    _, m = mined
    t = m["truth"]
    assert t["social_pairs_evaluated"] == m["pairs"]["social"]
    assert t["social_precision"] >= 0.95
    assert t["random_precision"] <= 0.1  # 40 topics: ~0.025 expected
    assert t["social_precision"] - t["random_precision"] >= 0.8
    # Our own check of the same figure from the file.
    table = pq.read_table(mined[0] / "pairs.parquet").to_pandas()
    social = table[table.source == "social"]
    same = [
        synth.topic_of[a] == synth.topic_of[b]
        for a, b in zip(social.tweet_a, social.tweet_b, strict=True)
    ]
    assert np.mean(same) == pytest.approx(t["social_precision"])


def test_social_pairs_invariants(mined, synth) -> None:
    out, m = mined
    cfg = MinePairsConfig()
    table = pq.read_table(out / "pairs.parquet").to_pandas()
    social = table[table.source == "social"]
    assert (social.tweet_a != social.tweet_b).all(), "self-pairs must be dropped"
    keys = {tuple(sorted(p)) for p in zip(social.tweet_a, social.tweet_b, strict=True)}
    assert len(keys) == len(social), "(a,b)/(b,a) duplicates must be merged"
    assert (social.score >= cfg.social.min_similarity).all()
    assert (social.score <= 1.0 + 1e-5).all()
    # Only tweets with a text (ghost embeddings are skipped) and texts filled from the tweets.
    assert set(social.tweet_a) | set(social.tweet_b) <= set(synth.topic_of)
    row = social.iloc[0]
    assert row.text_a == synth.text_of[row.tweet_a]
    s = m["social"]
    assert s["embeddings_without_text"] == 5
    assert s["below_min_engagements"] == 32  # every 50th of 1,600 tweets
    assert s["vectors"] == 1600 - 32
    low = {f"t{i}" for i in range(0, 1600, 50)}
    assert not (set(social.tweet_a) | set(social.tweet_b)) & low
    assert s["index"] == "Flat"  # 1,600 vectors: exact
    assert s["recall_at_k"] == pytest.approx(1.0)
    assert s["self_pairs_dropped"] > 0 and s["duplicates_dropped"] > 0


def _hashtags(text: str) -> set[str]:
    return {h.lower() for h in re.findall(r"#(\w+)", text)}


def test_hashtag_pairs_share_a_frequent_hashtag_removed_from_texts(mined, synth) -> None:
    out, m = mined
    table = pq.read_table(out / "pairs.parquet").to_pandas()
    tags = table[table.source == "hashtag"]
    assert len(tags) > 100
    keys = {tuple(sorted(p)) for p in zip(tags.tweet_a, tags.tweet_b, strict=True)}
    assert len(keys) == len(tags)
    for r in tags.itertuples():
        shared = set(synth.tags_of[r.tweet_a]) & set(synth.tags_of[r.tweet_b])
        assert shared, f"{r.tweet_a},{r.tweet_b} share no hashtag"
        assert not any(t.startswith("rare") for t in shared)  # seen once: dropped
        assert not (_hashtags(r.text_a) & shared), r.text_a
        assert not (_hashtags(r.text_b) & shared), r.text_b
        assert r.text_a != synth.text_of[r.tweet_a]  # something was taken out
    assert m["hashtag"]["hashtags_frequent"] == 41  # 40 topic tags + "common"
    # no more pairs per hashtag than the cap (pairs counted by their shared topic hashtag)
    cap = MinePairsConfig().hashtag.max_pairs_per_hashtag
    per_topic: dict[int, int] = {}
    for r in tags.itertuples():
        if synth.topic_of[r.tweet_a] == synth.topic_of[r.tweet_b]:
            per_topic[synth.topic_of[r.tweet_a]] = per_topic.get(synth.topic_of[r.tweet_a], 0) + 1
    assert max(per_topic.values()) <= cap + 60  # + pairs that came through "common"


def test_translation_pairs_read_and_normalised(mined) -> None:
    out, m = mined
    table = pq.read_table(out / "pairs.parquet").to_pandas()
    tr = table[table.source == "translation"].sort_values("tweet_a")
    assert m["translation"]["pairs"] == 30
    assert m["translation"]["invalid"] == {"not_json": 1, "missing_text": 1}
    assert len(tr) == m["pairs"]["translation"]
    assert all(re.fullmatch(r"tpp:\d+:a", a) for a in tr.tweet_a)
    assert all(b == a[:-1] + "b" for a, b in zip(tr.tweet_a, tr.tweet_b, strict=True))
    first = tr[tr.tweet_a == "tpp:3:a"].iloc[0]
    assert first.text_a == "hello @user see http number 3"
    assert first.text_b == "hola @user mira http numero 3"


def test_mix_follows_weights_with_total(synth, tmp_path: Path, no_tracking) -> None:
    cfg = MinePairsConfig(total_pairs=1000)
    cfg.weights.hashtag = 1.0
    cfg.weights.translation = 1.0
    m = run_mine_pairs(
        cfg,
        tmp_path / "p",
        ingested=synth.ingested,
        graph_embeddings=synth.embeddings,
        parallel=str(synth.parallel),
    )
    # translation has only 30 pairs: the rest is split evenly between the other two.
    assert m["pairs"] == {"total": 1000, "social": 485, "hashtag": 485, "translation": 30}
    assert "truth" not in m
    assert pq.read_table(tmp_path / "p" / "pairs.parquet").num_rows == 1000


def test_cap_threshold_and_ivf_index(synth, tmp_path: Path, no_tracking) -> None:
    cfg = MinePairsConfig()
    cfg.social.index = "IVF16,Flat"
    cfg.social.nprobe = 16  # every list: exact
    cfg.social.max_pairs_per_tweet = 3
    cfg.social.min_similarity = 0.8
    cfg.hashtag.enabled = False
    m = run_mine_pairs(
        cfg, tmp_path / "p", ingested=synth.ingested, graph_embeddings=synth.embeddings
    )
    assert m["social"]["index"] == "IVF16,Flat"
    assert m["social"]["recall_at_k"] == pytest.approx(1.0)
    assert m["social"]["capped"] > 0 and m["social"]["below_threshold"] > 0
    t = pq.read_table(tmp_path / "p" / "pairs.parquet").to_pandas()
    assert set(t.source) == {"social"}
    assert (t.score >= 0.8).all()
    per_tweet = t.tweet_a.value_counts().add(t.tweet_b.value_counts(), fill_value=0)
    assert per_tweet.max() <= 3


def test_bad_embeddings_named(synth, tmp_path: Path, no_tracking) -> None:
    emb = tmp_path / "emb"
    emb.mkdir()
    vecs = np.load(synth.embeddings / "tweets.npy")
    vecs[7, 3] = np.nan
    np.save(emb / "tweets.npy", vecs)
    (emb / "tweets.ids.parquet").write_bytes((synth.embeddings / "tweets.ids.parquet").read_bytes())
    with pytest.raises(ValueError, match=r"tweets\.npy: row 7 .*NaN"):
        run_mine_pairs(
            MinePairsConfig(), tmp_path / "p", ingested=synth.ingested, graph_embeddings=emb
        )
    np.save(emb / "tweets.npy", vecs[:10])
    with pytest.raises(ValueError, match=r"ids for 10 rows"):
        run_mine_pairs(
            MinePairsConfig(), tmp_path / "p", ingested=synth.ingested, graph_embeddings=emb
        )


def test_config_rejects_unusable_weights() -> None:
    with pytest.raises(ValueError, match=r"weights\.social"):
        MinePairsConfig.model_validate({"weights": {"social": 0.0}})
    with pytest.raises(ValueError, match="no pair source"):
        MinePairsConfig.model_validate(
            {
                "social": {"enabled": False},
                "hashtag": {"enabled": False},
                "translation": {"enabled": False},
            }
        )
    with pytest.raises(ValueError):
        MinePairsConfig.model_validate({"social": {"indx": "Flat"}})


def test_component_signature() -> None:
    from twhin_bert.mine_pairs.component import mine_pairs

    spec = mine_pairs.component_spec
    assert set(spec.inputs) == {
        "config",
        "ingested",
        "graph_embeddings",
        "pipeline_run_id",
        "parallel_tweets",
        "truth",
    }
    assert set(spec.outputs) == {"pairs", "metrics"}
