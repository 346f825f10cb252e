"""Engagement task: negative sampler, split by tweet, planted learning, data loading."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from twhin_bert.common.splits import TEST, TRAIN, VALID
from twhin_bert.evaluate.config import EngagementConfig
from twhin_bert.evaluate.engagement import (
    EngagementData,
    NegativeSampler,
    build_eval_set,
    load_engagement_data,
    run_engagement,
    split_by_tweet,
)


def test_negative_sampler_follows_freq_power() -> None:
    freq = np.array([1, 2, 4, 8, 16, 0])
    cands = np.arange(10, 16)
    sampler = NegativeSampler(cands, freq, 0.75)
    draws = sampler.sample(200_000, np.random.default_rng(0))
    assert set(np.unique(draws)) <= set(cands[:5].tolist())  # frequency 0 is never drawn
    emp = np.bincount(draws - 10, minlength=6) / draws.size
    expected = freq**0.75 / (freq**0.75).sum()
    np.testing.assert_allclose(emp, expected, atol=0.005)
    # and clearly not proportional to raw frequency (16/31 = 0.516 vs 0.430)
    assert abs(emp[4] - 16 / 31) > 0.05
    # shapes for [batch, negatives]
    assert sampler.sample((7, 3), np.random.default_rng(1)).shape == (7, 3)


def test_split_by_tweet_fractions_and_seed() -> None:
    s = split_by_tweet(1000, (0.8, 0.1, 0.1), seed=3)
    assert (s == TRAIN).sum() == 800 and (s == VALID).sum() == 100 and (s == TEST).sum() == 100
    np.testing.assert_array_equal(s, split_by_tweet(1000, (0.8, 0.1, 0.1), seed=3))
    assert (s != split_by_tweet(1000, (0.8, 0.1, 0.1), seed=4)).any()


def test_load_counts_skipped_users_and_split_has_no_leakage(eval_inputs: tuple[Path, Path]) -> None:
    ingested, graph = eval_inputs
    cfg = EngagementConfig(candidates=50)
    data = load_engagement_data(ingested, graph, cfg, seed=0)
    assert data.counts["users_without_embedding"] == 5
    assert data.counts["pairs_user_without_embedding"] == 5
    assert data.counts["pairs"] == 120 * 12
    # every engaged pair's tweet has one split; test candidates are test tweets only
    test = build_eval_set(data, TEST, cfg, np.random.default_rng(0))
    cands = test.candidates[test.candidates >= 0]
    assert (data.split[cands] == TEST).all()
    assert (data.split[test.candidates[:, 0]] == TEST).all()
    # test users are exactly the users with a test engagement; negatives never engaged by them
    test_pairs = data.pairs[data.split[data.pairs[:, 1]] == TEST]
    assert set(test.users.tolist()) == set(test_pairs[:, 0].tolist())
    engaged = {(int(u), int(t)) for u, t in data.pairs}
    for row, u in zip(test.candidates, test.users, strict=True):
        assert (int(u), int(row[0])) in engaged
        assert not any((int(u), int(t)) in engaged for t in row[1:] if t >= 0)


def test_eval_users_are_capped_by_a_seeded_sample(eval_inputs: tuple[Path, Path]) -> None:
    ingested, graph = eval_inputs
    data = load_engagement_data(ingested, graph, EngagementConfig(candidates=50), seed=0)
    every = build_eval_set(data, TEST, EngagementConfig(candidates=50), np.random.default_rng(0))
    assert every.users.size > 10
    capped = EngagementConfig(candidates=50, max_users=10)
    a = build_eval_set(data, TEST, capped, np.random.default_rng(0))
    b = build_eval_set(data, TEST, capped, np.random.default_rng(0))
    # at most max_users rows, all of them test users, the same sample for the same seed
    assert a.users.size == a.candidates.shape[0] == 10
    assert set(a.users.tolist()) <= set(every.users.tolist())
    np.testing.assert_array_equal(a.candidates, b.candidates)
    # a cap the users do not reach changes nothing
    roomy = EngagementConfig(candidates=50, max_users=every.users.size)
    same = build_eval_set(data, TEST, roomy, np.random.default_rng(0))
    np.testing.assert_array_equal(same.candidates, every.candidates)


def test_load_uses_build_graph_holdout_when_present(
    eval_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    from twhin_bert.common import holdout

    ingested, graph = eval_inputs
    with_rule = tmp_path / "graph"
    shutil.copytree(graph, with_rule)
    holdout.write_rule(with_rule, valid_fraction=0.15, test_fraction=0.2, seed=9)
    cfg = EngagementConfig(candidates=50)
    data = load_engagement_data(ingested, with_rule, cfg, seed=0)
    assert data.counts["split_source"] == "build_graph holdout"
    expected = holdout.split_of(data.tweet_ids, 0.15, 0.2, seed=9)
    np.testing.assert_array_equal(data.split, expected)  # TRAIN/VALID/TEST == holdout sides
    assert (data.split == TEST).sum() == data.counts["tweets_test"] > 0
    # without the rule: evaluate's own seeded split, and it says so
    plain = load_engagement_data(ingested, graph, cfg, seed=0)
    assert plain.counts["split_source"].startswith("evaluate")


def _planted(n_users: int = 160, n_tweets: int = 1200, topics: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    t_topic = rng.integers(topics, size=n_tweets)
    u_topic = np.arange(n_users) % topics
    pairs = []
    for u in range(n_users):
        same = np.flatnonzero(t_topic == u_topic[u])
        for t in rng.choice(same, size=min(15, same.size), replace=False):
            pairs.append((u, t))
    pairs = np.unique(np.asarray(pairs), axis=0)
    used = np.unique(pairs[:, 1])
    remap = np.full(n_tweets, -1)
    remap[used] = np.arange(used.size)
    pairs[:, 1] = remap[pairs[:, 1]]
    t_topic = t_topic[used]
    user_emb = np.eye(topics, dtype=np.float32)[u_topic] * 2 + rng.normal(
        0, 0.3, (n_users, topics)
    ).astype(np.float32)
    tweet_feat = np.eye(topics, dtype=np.float32)[t_topic] * 2 + rng.normal(
        0, 0.3, (used.size, topics)
    ).astype(np.float32)
    data = EngagementData(
        tweet_ids=np.array([f"t{i}" for i in used]),
        texts=[f"tweet words w{i % 97} w{i % 13}" for i in used],  # topic-free text
        langs=np.where(np.arange(used.size) % 2, "en", "es"),
        split=split_by_tweet(used.size, (0.8, 0.1, 0.1), 0),
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        user_emb=user_emb,
        pairs=pairs,
        counts={},
    )
    return data, tweet_feat, t_topic


def test_projection_model_learns_planted_structure() -> None:
    data, feat, _ = _planted()
    cfg = EngagementConfig(
        epochs=10, batch_size=64, seeds=2, candidates=1000, negatives=5, min_users_per_lang=5
    )
    task = run_engagement(data, {"planted": feat}, cfg, seed=0)
    res = task.models["planted"]
    random = task.floors["random"].value
    n_cand = task.info["mean_candidates"]
    assert task.metric == "hits@10" and task.primary_key == "engagement_hits@10"
    assert n_cand < 1000  # pool is the test split: fewer candidates than asked
    assert random == pytest.approx(np.mean(10 / n_cand), rel=0.05)
    assert res.value > 0.6 > 3 * random
    assert len(res.seeds) == 2 and res.value == pytest.approx(np.median(res.seeds))
    assert set(res.by_lang) == {"en", "es"}
    # the training loss goes down and the best epoch is recorded
    losses = [r["loss"] for r in res.training]
    assert losses[-1] < losses[0]
    assert len(res.best_epochs) == 2 and all(1 <= e <= 10 for e in res.best_epochs)
    # with patience (the default), training stops once validation stops improving
    stopped = run_engagement(
        data, {"planted": feat}, cfg.model_copy(update={"epochs": 40, "seeds": 1}), seed=0
    ).models["planted"]
    assert len(stopped.training) == stopped.best_epochs[0] + cfg.patience < 40
    # the curve is monotone, and its k = 10 point is the headline value
    curve = list(res.curve.values())
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(curve))
    assert res.curve["10"] == pytest.approx(res.value)
    # text carries no topic here, so the TF-IDF floor stays near random
    assert task.floors["tfidf"].value < res.value - 0.3
    # metrics.json's leaf: the value under the metric's name, seeds, per language
    leaf = task.model_metrics("planted")
    assert leaf["hits@10"] == res.value and leaf["seeds"] == res.seeds
    assert set(leaf["by_lang"]) == {"en", "es"} and "curve" not in leaf


def test_too_few_tweets_is_a_clear_error() -> None:
    from twhin_bert.evaluate.engagement import EngagementDataError

    data, feat, _ = _planted(n_users=4, n_tweets=12, topics=2)
    data.split[:] = TRAIN  # nothing left for validation / test
    with pytest.raises(EngagementDataError, match="no validation users"):
        run_engagement(data, {"f": feat}, EngagementConfig(epochs=1, seeds=1), seed=0)


def test_planted_topic_references_show_the_room_the_text_leaves(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from twhin_bert.evaluate.engagement import EngagementDataError, planted_topic_references
    from twhin_bert.evaluate.results import EvaluationResult

    data, feat, topic = _planted()
    # every other tweet names its topic; the rest say nothing about it
    data.texts = [
        f"{t} about topic{k} today" if i % 2 else t
        for i, (t, k) in enumerate(zip(data.texts, topic, strict=True))
    ]
    truth = tmp_path / "tweet_topics.parquet"
    pq.write_table(
        pa.table({"tweet_id": list(data.tweet_ids), "topic": [f"topic{k}" for k in topic]}),
        truth,
    )
    refs, info = planted_topic_references(data, str(truth), seed=0)
    assert set(refs) == {"planted_topic", "text_topic"}
    # the classifier reads the topic of about half the held-out tweets: those that name it
    assert info["planted_topics"] == 16 and 0.35 < info["text_topic_accuracy"] < 0.65
    cfg = EngagementConfig(
        epochs=10, batch_size=64, seeds=1, candidates=1000, negatives=5, min_users_per_lang=5
    )
    task = run_engagement(data, {"planted": feat}, cfg, seed=0, references=refs)
    known, read = task.references["planted_topic"].value, task.references["text_topic"].value
    random = task.floors["random"].value
    # knowing the topic is as good as the planted features; reading it from half the texts
    # is clearly better than chance and clearly worse than knowing it
    assert known > 0.6 and read > 3 * random and read < known - 0.15
    assert set(task.models) == {"planted"}  # references are not models (never gated on)
    result = EvaluationResult(["planted"], "planted", "mlm_only", "base", tasks=[task])
    metrics = result.metrics()
    assert metrics["references"]["engagement"]["text_topic"]["hits@10"] == read
    assert "references" not in metrics["models"]["planted"]["engagement"]
    # a truth file from other data: one line naming the file and what is missing
    pq.write_table(pa.table({"tweet_id": ["t0"], "topic": ["topic0"]}), truth)
    with pytest.raises(EngagementDataError, match=r"tweet_topics.parquet: no planted topic for"):
        planted_topic_references(data, str(truth), seed=0)
    pq.write_table(
        pa.table({"tweet_id": list(data.tweet_ids), "topic": ["one"] * topic.size}), truth
    )
    with pytest.raises(EngagementDataError, match=r"of 1 planted topic\(s\); the text_topic"):
        planted_topic_references(data, str(truth), seed=0)
    with pytest.raises(ValueError, match="taken by models or floors"):
        run_engagement(data, {"planted": feat}, cfg, seed=0, references={"tfidf": feat})
