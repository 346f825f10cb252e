"""Hashtag set construction: exactly one frequent hashtag, removed from the text."""

from __future__ import annotations

import pandas as pd
from twhin_bert.evaluate.config import HashtagConfig
from twhin_bert.evaluate.hashtag import build_hashtag_sets, remove_hashtag


def test_remove_hashtag_whole_tag_case_insensitive() -> None:
    assert (
        remove_hashtag("Great #Goal tonight #goal! #goals #other", "goal")
        == "Great tonight ! #goals #other"
    )
    assert remove_hashtag("#Fútbol hoy", "fútbol") == "hoy"
    assert remove_hashtag("no tag here", "goal") == "no tag here"


def test_build_sets_keeps_tweets_with_exactly_one_frequent_hashtag() -> None:
    rows = []
    for i in range(40):
        rows.append((f"a text {i} #A", ["a"]))
    for i in range(30):
        rows.append((f"b text {i} #b", ["b"]))
    for i in range(3):
        rows.append((f"c text {i} #c", ["c"]))  # third most frequent: not in top 2
    rows.append(("both #a #b", ["a", "b"]))  # two frequent hashtags: excluded
    rows.append(("a with rare #a #c", ["a", "c"]))  # one frequent + one rare: kept as 'a'
    rows.append(("#a", ["a"]))  # empty after removal: excluded
    df = pd.DataFrame(
        {"text": [r[0] for r in rows], "lang": "en", "hashtags": [r[1] for r in rows]}
    )
    # a tiny language: skipped and counted
    df = pd.concat(
        [df, pd.DataFrame({"text": ["x #a", "y #b"], "lang": "fr", "hashtags": [["a"], ["b"]]})]
    )
    cfg = HashtagConfig(
        top_n=2, min_examples=20, min_tweets_per_hashtag=2, split_fractions=(0.6, 0.2, 0.2)
    )
    sets, stats = build_hashtag_sets(df, cfg, seed=0)
    assert set(sets) == {"en"}
    assert "fr" in stats["skipped"]
    s = sets["en"]
    assert s.label_names == ["a", "b"]  # by frequency
    texts = s.train_texts + s.val_texts + s.test_texts
    labels = list(s.train_labels) + list(s.val_labels) + list(s.test_labels)
    assert len(texts) == 40 + 30 + 1
    assert s.counts() == {"train": 43, "val": 14, "test": 14}
    assert "both" not in " ".join(texts)
    assert not any("#a" in t.lower() or "#b" in t.lower() for t in texts)
    assert "a with rare #c" in texts  # only the label hashtag is removed
    assert labels.count(0) == 41 and labels.count(1) == 30
    counts = stats["by_lang"]["en"]
    assert counts["with_several"] == 1 and counts["empty_after_removal"] == 1


def test_build_sets_follow_the_holdout_when_given(tmp_path) -> None:
    """With build_graph's rule, valid/test are exactly its held-out tweets (never in a pair)."""
    from twhin_bert.common import holdout

    n = 300
    df = pd.DataFrame(
        {
            "tweet_id": [f"t{i}" for i in range(n)],
            "text": [f"text {i} #{'ab'[i % 2]}" for i in range(n)],
            "lang": "en",
            "hashtags": [["ab"[i % 2]] for i in range(n)],
        }
    )
    holdout.write_rule(tmp_path, valid_fraction=0.2, test_fraction=0.2, seed=1)
    rule = holdout.read_rule(tmp_path)
    cfg = HashtagConfig(top_n=2, min_examples=20, min_tweets_per_hashtag=2)
    sets, _ = build_hashtag_sets(df, cfg, seed=0, rule=rule)
    s = sets["en"]
    side = dict(
        zip(df.text.str.replace(r" #\w+", "", regex=True), rule.split(df.tweet_id), strict=True)
    )
    assert {side[t] for t in s.train_texts} == {holdout.TRAIN}
    assert {side[t] for t in s.val_texts} == {holdout.VALID}
    assert {side[t] for t in s.test_texts} == {holdout.TEST}
    assert len(s.train_texts) + len(s.val_texts) + len(s.test_texts) == n


def test_paired_bootstrap_delta_hand_computed() -> None:
    import numpy as np
    from twhin_bert.evaluate.hashtag import paired_bootstrap_delta

    y = np.array([0, 0, 1, 1, 2, 2])
    same = paired_bootstrap_delta({"en": (y, y, y)}, resamples=200, seed=0)
    assert same["delta_points"] == 0 and same["ci95_points"] == [0.0, 0.0]
    # perfect vs "always 0": class 0 has precision 1/3, recall 1, F1 1/2; classes 1, 2 score
    # 0: macro-F1 1.0 vs 0.5 / 3 -> +83.33 points
    zeros = np.zeros_like(y)
    d = paired_bootstrap_delta({"en": (y, y, zeros)}, resamples=200, seed=0)
    assert abs(d["delta_points"] - 100 * (1 - 0.5 / 3)) < 1e-9
    lo, hi = d["ci95_points"]
    assert 0 < lo <= d["delta_points"] <= hi <= 100 and d["se_points"] > 0
    # two languages: the headline is the mean of the per-language differences
    two = paired_bootstrap_delta({"en": (y, y, zeros), "es": (y, y, y)}, resamples=0, seed=0)
    assert abs(two["delta_points"] - d["delta_points"] / 2) < 1e-9 and two["ci95_points"] is None
    assert two["test_tweets"] == 12
