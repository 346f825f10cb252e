"""evaluate's ``max_tweets``: the seeded sample of tweets and their engagements, read in
bounded memory (the fix that lets evaluate run on 100x the demo TwHIN)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from twhin_bert.common import schemas
from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.holdout import TEST, split_of
from twhin_bert.evaluate.sample import read_engagements, read_tweets, sample_rank


def _write(folder: Path, n_tweets: int, text_chars: int, group_rows: int) -> None:
    """A tweets and an engagements Parquet (3 engagements per tweet) in small row groups."""
    ids = [f"t{i}" for i in range(n_tweets)]
    tweets = pa.table(
        {
            "tweet_id": ids,
            "author_id": pa.nulls(n_tweets, pa.string()),
            "text": [f"{i:08d}" + "x" * (text_chars - 8) for i in range(n_tweets)],
            "lang": ["en"] * n_tweets,
            "hashtags": [[] for _ in range(n_tweets)],
            "created_at": pa.nulls(n_tweets, schemas.TS),
        }
    ).cast(schemas.schema("tweets"))
    n_eng = 3 * n_tweets
    eng = pa.table(
        {
            "user_id": [f"u{i % 97}" for i in range(n_eng)],
            "tweet_id": [ids[i % n_tweets] for i in range(n_eng)],
            "engagement_type": ["fave"] * n_eng,
            "engaged_at": pa.nulls(n_eng, schemas.TS),
        }
    ).cast(schemas.schema("engagements"))
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(tweets, folder / Ingested.TWEETS, row_group_size=group_rows)
    pq.write_table(eng, folder / Ingested.ENGAGEMENTS, row_group_size=group_rows)


def test_sample_is_the_smallest_ranks_in_file_order_with_their_engagements(
    tmp_path: Path,
) -> None:
    _write(tmp_path, 3000, 20, group_rows=500)
    ing = Ingested(tmp_path)
    full = ing.tweets(["tweet_id", "text"])
    got = read_tweets(ing, ["text"], max_tweets=100, seed=3, batch_rows=256)
    rank = sample_rank(full.column("tweet_id"), seed=3)
    want = np.sort(np.argsort(rank, kind="stable")[:100])
    assert got.column("tweet_id").to_pylist() == full.column("tweet_id").take(want).to_pylist()
    assert got.column("text").to_pylist() == full.column("text").take(want).to_pylist()
    # Another seed, another sample; no cap, every tweet.
    other = read_tweets(ing, ["text"], max_tweets=100, seed=4, batch_rows=256)
    assert set(other.column("tweet_id").to_pylist()) != set(got.column("tweet_id").to_pylist())
    assert read_tweets(ing, ["text"], None, seed=3).num_rows == 3000

    eng = read_engagements(ing, ["user_id", "tweet_id"], got.column("tweet_id"), batch_rows=700)
    kept = set(got.column("tweet_id").to_pylist())
    assert eng.num_rows == 300  # 3 per sampled tweet, none of the others
    assert set(eng.column("tweet_id").to_pylist()) == kept


def test_sample_is_not_the_holdout_test_side(tmp_path: Path) -> None:
    # The sample's hash has its own key: with the holdout's, the smallest hashes would all
    # fall on the TEST side (u < test_fraction).
    _write(tmp_path, 5000, 10, group_rows=1000)
    got = read_tweets(Ingested(tmp_path), ["lang"], max_tweets=1000, seed=0)
    sides = split_of(got.column("tweet_id"), 0.1, 0.1, seed=0)
    assert 0.05 < float(np.mean(sides == TEST)) < 0.15


_MEMORY_CHILD = r"""
import json, sys
from pathlib import Path
import pyarrow as pa
from twhin_bert.common.artifacts import Ingested
from twhin_bert.evaluate.sample import read_engagements, read_tweets

ing = Ingested(Path(sys.argv[1]))
cap = None if sys.argv[2] == "none" else int(sys.argv[2])
t = read_tweets(ing, ["text", "lang"], cap, seed=0, batch_rows=8192)
e = read_engagements(ing, ["user_id", "tweet_id"], t.column("tweet_id") if cap else None)
print(json.dumps({"rows": t.num_rows, "eng": e.num_rows,
                  "peak": pa.default_memory_pool().max_memory()}))
"""


def _peak(folder: Path, cap: str) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(folder), cap],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_capped_read_holds_the_sample_not_the_input(tmp_path: Path) -> None:
    # 200K tweets of 300 characters (~60 MB of text) and 600K engagements.
    _write(tmp_path, 200_000, 300, group_rows=8192)
    capped = _peak(tmp_path, "1000")
    whole = _peak(tmp_path, "none")
    assert capped["rows"] == 1000 and capped["eng"] == 3000
    assert whole["rows"] == 200_000
    assert whole["peak"] > 60 * 2**20
    # Arrow's peak with the cap: the sample + one batch of each file being decoded
    # (measured 14 MB here, against 79 MB for the whole read).
    assert capped["peak"] < 24 * 2**20, capped


def test_engagement_data_with_a_cap_reads_the_sample_and_says_so(tmp_path: Path) -> None:
    from twhin_bert.common.artifacts import GraphEmbeddings
    from twhin_bert.evaluate.config import EngagementConfig
    from twhin_bert.evaluate.engagement import load_engagement_data

    _write(tmp_path / "ingested", 3000, 20, group_rows=500)
    graph = tmp_path / "graph"
    graph.mkdir()
    users = pa.array([f"u{i}" for i in range(97)])
    GraphEmbeddings(graph).table(GraphEmbeddings.USERS).write(
        users, np.random.default_rng(0).standard_normal((97, 8)).astype(np.float32)
    )
    cfg = EngagementConfig()
    capped = load_engagement_data(tmp_path / "ingested", graph, cfg, seed=0, max_tweets=100)
    whole = load_engagement_data(tmp_path / "ingested", graph, cfg, seed=0)
    assert capped.counts["tweets_sampled"] == 100 and "tweets_sampled" not in whole.counts
    assert capped.counts["engagements"] == 300 and whole.counts["engagements"] == 9000
    sample = read_tweets(Ingested(tmp_path / "ingested"), [], 100, seed=0)
    assert sorted(capped.tweet_ids.tolist()) == sorted(sample.column("tweet_id").to_pylist())
    assert capped.pairs.shape == (300, 2)
