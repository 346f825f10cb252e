"""The demo TwHIN generator: determinism, formats, heavy tails, rates and the planted signal."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from twhin_bert.demo_data import vocab
from twhin_bert.demo_data.config import DemoDataConfig
from twhin_bert.demo_data.generate import generate, generate_demo

SMALL = {"users": 200, "tweets": 800, "engagements_per_tweet": 8.0, "parallel_pairs": 50}


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _ts(s: str) -> datetime:
    assert s.endswith("Z"), s
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> dict:
    """The session demo data (conftest: 400 users, 2000 tweets, seed 7), loaded."""
    truth = demo_dir / "truth"
    topics = pq.read_table(truth / "tweet_topics.parquet").to_pydict()
    interests = pq.read_table(truth / "user_interests.parquet").to_pydict()
    by_user: dict[str, dict[int, float]] = {}
    for u, t, w in zip(interests["user_id"], interests["topic"], interests["weight"], strict=True):
        by_user.setdefault(u, {})[t] = w
    return {
        "dir": demo_dir,
        "tweets": _jsonl(demo_dir / "tweets.jsonl"),
        "engagements": _jsonl(demo_dir / "engagements.jsonl"),
        "parallel": _jsonl(demo_dir / "parallel.jsonl"),
        "topic": dict(zip(topics["tweet_id"], topics["topic"], strict=True)),
        "interests": by_user,
        "summary": json.loads((demo_dir / "demo.json").read_text()),
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    counts_a = generate_demo(a, seed=3, **SMALL)
    counts_b = generate_demo(b, seed=3, **SMALL)
    generate_demo(c, seed=4, **SMALL)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert counts_a == counts_b
    assert set(files_a) >= {
        "tweets.jsonl",
        "engagements.jsonl",
        "parallel.jsonl",
        "demo.json",
        "truth/tweet_topics.parquet",
        "truth/user_interests.parquet",
    }
    assert files_a == files_b
    for name in ("tweets.jsonl", "engagements.jsonl", "parallel.jsonl"):
        assert files_a[name] != files_c[name], name


def test_counts_match_files_and_request(demo: dict) -> None:
    counts = demo["summary"]["counts"]
    assert counts["tweets"] == len(demo["tweets"]) == 2000
    assert counts["engagements"] == len(demo["engagements"])
    assert counts["parallel_pairs"] == len(demo["parallel"]) == 300
    assert counts["users"] == 400 and counts["topics"] == len(vocab.TOPICS) >= 20
    # ~10 engagements per tweet (distinct user-tweet pairs; none lost at this size).
    assert 0.97 * 20000 <= counts["engagements"] <= 20000
    assert counts["engaged_tweets"] == len({e["tweet_id"] for e in demo["engagements"]})
    assert set(demo["topic"]) == {t["tweet_id"] for t in demo["tweets"]}


def test_rows_are_well_formed(demo: dict) -> None:
    tweets, engagements = demo["tweets"], demo["engagements"]
    users = set(demo["interests"])
    created = {}
    for t in tweets:
        assert list(t) == ["tweet_id", "author_id", "text", "created_at", "lang"]
        assert t["tweet_id"].isdigit() and t["author_id"] in users and t["text"]
        assert t["lang"] in vocab.LANGS
        created[t["tweet_id"]] = _ts(t["created_at"])
    assert len(created) == len(tweets)  # unique tweet ids
    start = _ts(demo["summary"]["window"]["start"])
    end = _ts(demo["summary"]["window"]["end"])
    assert min(created.values()) >= start and max(created.values()) < end
    assert (max(created.values()) - min(created.values())).days >= 25  # spread over 28 days
    pairs = set()
    for e in engagements:
        assert list(e) == ["user_id", "tweet_id", "engagement_type", "engaged_at"]
        assert e["user_id"] in users
        assert e["engagement_type"] in {"fave", "retweet", "reply", "quote"}
        assert _ts(e["engaged_at"]) > created[e["tweet_id"]]
        assert _ts(e["engaged_at"]) <= end
        pairs.add((e["user_id"], e["tweet_id"]))
    assert len(pairs) == len(engagements)  # one engagement per user and tweet


def test_activity_and_popularity_are_heavy_tailed(demo: dict) -> None:
    per_tweet = Counter(e["tweet_id"] for e in demo["engagements"])
    counts = np.sort([per_tweet.get(t["tweet_id"], 0) for t in demo["tweets"]])[::-1]
    top1 = counts[: len(counts) // 100].sum() / counts.sum()
    top10 = counts[: len(counts) // 10].sum() / counts.sum()
    assert top1 > 0.08, top1  # 8x the 1% a uniform popularity gives
    assert top10 > 0.35, top10
    per_user = np.array(list(Counter(e["user_id"] for e in demo["engagements"]).values()))
    # Capped at 10% of the tweets per user, which this dense little world reaches.
    assert per_user.max() > 4 * np.median(per_user)
    per_author = np.array(list(Counter(t["author_id"] for t in demo["tweets"]).values()))
    assert per_author.max() > 10 * np.median(per_author)


def test_languages_skewed_with_english_first(demo: dict) -> None:
    langs = Counter(t["lang"] for t in demo["tweets"])
    assert len(langs) >= 5
    assert langs.most_common(1)[0][0] == "en"
    assert langs["en"] > 0.25 * len(demo["tweets"])
    assert min(langs.values()) >= 0.03 * len(demo["tweets"])  # every language has enough tweets


def test_engagement_type_shares_follow_rates(demo: dict) -> None:
    types = Counter(e["engagement_type"] for e in demo["engagements"])
    n = sum(types.values())
    for name, rate in DemoDataConfig().type_rates.items():
        assert abs(types[name] / n - rate) < 0.015, (name, types[name] / n)


def _interest_share(engagements: list[dict], topic: dict, interests: dict) -> tuple[float, float]:
    """Share of engagements with a tweet of one of the user's topics, and the share expected
    if tweets were picked regardless of interests (tweet-topic frequencies)."""
    freq = Counter(topic.values())
    total = sum(freq.values())
    hit = np.mean([topic[e["tweet_id"]] in interests[e["user_id"]] for e in engagements])
    base = np.mean([sum(freq[k] for k in interests[e["user_id"]]) / total for e in engagements])
    return float(hit), float(base)


def test_engagements_follow_planted_interests(demo: dict, tmp_path: Path) -> None:
    hit, base = _interest_share(demo["engagements"], demo["topic"], demo["interests"])
    assert hit > 0.75 and hit > 3 * base, (hit, base)
    # The same world with interest-following switched off falls back to the baseline.
    cfg = DemoDataConfig(seed=7, interest_follow=0.0, **SMALL)
    generate(cfg, tmp_path)
    topics = pq.read_table(tmp_path / "truth/tweet_topics.parquet").to_pydict()
    interests = pq.read_table(tmp_path / "truth/user_interests.parquet").to_pydict()
    by_user: dict[str, set[int]] = {}
    for u, t in zip(interests["user_id"], interests["topic"], strict=True):
        by_user.setdefault(u, set()).add(t)
    noise_hit, noise_base = _interest_share(
        _jsonl(tmp_path / "engagements.jsonl"),
        dict(zip(topics["tweet_id"], topics["topic"], strict=True)),
        by_user,
    )
    assert noise_hit < noise_base + 0.1, (noise_hit, noise_base)


def test_graph_reveals_topics_that_text_only_partly_does(demo: dict) -> None:
    """Co-engagement predicts a tweet's planted topic far better than its text does."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import cross_val_score
    from sklearn.preprocessing import normalize
    from sklearn.svm import LinearSVC

    tweets = demo["tweets"]
    row = {t["tweet_id"]: i for i, t in enumerate(tweets)}
    users = {u: i for i, u in enumerate(sorted(demo["interests"]))}
    eng = demo["engagements"]
    adj = sp.csr_matrix(
        (
            np.ones(len(eng)),
            ([row[e["tweet_id"]] for e in eng], [users[e["user_id"]] for e in eng]),
        ),
        shape=(len(tweets), len(users)),
    )
    sel = np.flatnonzero(np.asarray(adj.sum(1)).ravel() >= 3)
    y = np.array([demo["topic"][tweets[i]["tweet_id"]] for i in sel])
    graph = normalize(adj[sel])  # each tweet as the users who engaged with it
    no_tags = [re.sub(r"#\S+", "", tweets[i]["text"]) for i in sel]
    text = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2).fit_transform(no_tags)
    clf = LinearSVC(C=0.5)
    acc_graph = cross_val_score(clf, graph, y, cv=3).mean()
    acc_text = cross_val_score(clf, text, y, cv=3).mean()
    chance = Counter(y).most_common(1)[0][1] / len(y)
    assert acc_text > 2 * chance, (acc_text, chance)  # text carries some topic signal...
    assert acc_text < 0.8, acc_text  # ...but cannot recover it fully
    assert acc_graph > acc_text + 0.2, (acc_graph, acc_text)


def test_text_looks_like_tweets_in_its_language(demo: dict) -> None:
    import py3langid

    tweets = demo["tweets"]
    texts = [t["text"] for t in tweets]
    assert np.mean(["#" in s for s in texts]) > 0.4
    assert 0.08 < np.mean(["@" in s for s in texts]) < 0.25
    assert (
        0.12 < np.mean([re.search(r"https://t\.co/\w{10}\b", s) is not None for s in texts]) < 0.3
    )
    assert len({s for s in texts}) > 0.8 * len(texts)
    sample = tweets[:400]
    agree = np.mean(
        [
            py3langid.classify(re.sub(r"[@#]\S+|https://\S+", "", t["text"]))[0] == t["lang"]
            for t in sample
        ]
    )
    assert agree > 0.85, agree


def test_topic_hashtags_consistent_across_languages(demo: dict) -> None:
    """Each topic has frequent hashtags, used in every language, in about 40% of tweets."""
    tagged = 0
    per_topic: dict[int, Counter] = {}
    langs_of_tag: dict[str, set[str]] = {}
    for t in demo["tweets"]:
        k = demo["topic"][t["tweet_id"]]
        tags = set(re.findall(r"#(\S+)", t["text"]))
        own = tags & set(vocab.TOPICS[k].hashtags)
        own |= {
            tag for tag in tags if tag.replace("_", " ") in vocab.TOPICS[k].label
        }  # localised names
        tagged += bool(own)
        per_topic.setdefault(k, Counter()).update(own)
        for tag in tags & set(vocab.TOPICS[k].hashtags):
            langs_of_tag.setdefault(tag, set()).add(t["lang"])
    share = tagged / len(demo["tweets"])
    assert 0.3 < share < 0.5, share
    assert len(per_topic) == len(vocab.TOPICS)
    assert all(sum(c.values()) >= 5 for c in per_topic.values())
    # The main hashtag of the big topics shows up in several languages.
    assert sum(len(v) >= 3 for v in langs_of_tag.values()) >= 10


def test_parallel_pairs_are_translations(demo: dict) -> None:
    import py3langid

    pairs = demo["parallel"]
    assert all(list(p) == ["text_a", "lang_a", "text_b", "lang_b"] for p in pairs)
    assert all(p["lang_a"] != p["lang_b"] for p in pairs)
    assert {p["lang_a"] for p in pairs} | {p["lang_b"] for p in pairs} == set(vocab.LANGS)
    assert Counter(p["lang_a"] for p in pairs).most_common(1)[0][0] == "en"
    agree = np.mean(
        [
            py3langid.classify(re.sub(r"#\S+", "", p[f"text_{s}"]))[0] == p[f"lang_{s}"]
            for p in pairs
            for s in "ab"
        ]
    )
    assert agree > 0.85, agree
    # Same content: the same hashtags and emoji on both sides.
    for p in pairs:
        assert re.findall(r"#\S+", p["text_a"]) == re.findall(r"#\S+", p["text_b"])


def test_config_rejects_bad_rates() -> None:
    with pytest.raises(ValidationError, match="type_rates"):
        DemoDataConfig(type_rates={"fave": 1.0, "like": 0.1, "reply": 0.1, "quote": 0.1})
    with pytest.raises(ValidationError, match="group_phrase"):
        DemoDataConfig(group_phrase=0.7, neighbour_phrase=0.5)
    with pytest.raises(ValidationError):
        DemoDataConfig(nonsense=1)


def test_vocab_rows_have_every_language() -> None:
    vocab.check_vocab()
    assert len(vocab.LANGS) == len(vocab.LANG_SHARES) and abs(sum(vocab.LANG_SHARES) - 1) < 1e-9
    assert all(len(t.hashtags) >= 3 for t in vocab.TOPICS)


@pytest.mark.slow
def test_a_million_engagements_in_well_under_a_minute(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    counts = generate_demo(tmp_path, users=20000, tweets=100000, engagements_per_tweet=10.0)
    seconds = time.perf_counter() - t0
    assert counts["engagements"] == 1_000_000
    assert seconds < 60, seconds
    with (tmp_path / "engagements.jsonl").open() as f:
        assert sum(1 for _ in f) == 1_000_000
