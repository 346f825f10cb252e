"""A fast planted-community engagement generator in the ingest output format.

Used by the build_graph/embed_graph tests and by ``twhin-bert bench embed-graph`` (10M
edges in seconds: everything is vectorised numpy + pyarrow, no per-row Python). Users and
tweets each belong to one of ``communities`` topics; a user engages with a tweet of its own
topic with probability ``affinity``, otherwise with any tweet, and tweets are picked with a
Zipf-like popularity so a popularity baseline has something to find as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.schemas import ENGAGEMENT_TYPES

#: How often each engagement type occurs in the synthetic data (fave dominates, as on Twitter).
TYPE_SHARES = (0.6, 0.2, 0.12, 0.08)


@dataclass(frozen=True)
class SyntheticGraph:
    """What :func:`write_synthetic_ingest` generated (the planted truth for tests)."""

    users: int
    tweets: int
    edges: int
    user_community: np.ndarray
    tweet_community: np.ndarray


def _ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(np.arange(n).astype(str)), "")


def write_synthetic_ingest(
    out_dir: str | Path,
    *,
    users: int,
    tweets: int,
    edges: int,
    communities: int = 8,
    affinity: float = 0.85,
    zipf: float = 1.1,
    seed: int = 0,
) -> SyntheticGraph:
    """Writes engagements and tweets as the ingest stage would (:class:`Ingested`).

    Args:
        out_dir: Folder to write into (created).
        users: Number of users.
        tweets: Number of tweets.
        edges: Engagements to draw (duplicates of (user, tweet, type) are removed, so a few
            less may be written).
        communities: Planted topics.
        affinity: Probability that an engagement stays inside the user's topic.
        zipf: Exponent of the tweet popularity (rank^-zipf) inside a topic.
        seed: Random seed.

    Returns:
        Sizes and the planted communities (index = numeric part of the ids ``u<i>``/``t<j>``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    user_comm = rng.integers(0, communities, users)
    tweet_comm = rng.integers(0, communities, tweets)
    # Tweets of each community, ordered by a random popularity rank.
    order = np.argsort(tweet_comm, kind="stable")
    comm_start = np.searchsorted(tweet_comm[order], np.arange(communities + 1))
    weights = (np.arange(1, tweets + 1, dtype=np.float64)) ** -zipf
    # Draw a user per edge (mildly skewed activity), then a tweet.
    activity = rng.pareto(2.0, users) + 1.0
    u = rng.choice(users, size=edges, p=activity / activity.sum())
    inside = rng.random(edges) < affinity
    t = np.empty(edges, dtype=np.int64)
    for c in range(communities):  # vectorised per community (a handful of loops)
        members = order[comm_start[c] : comm_start[c + 1]]
        sel = inside & (user_comm[u] == c)
        if members.size == 0:
            inside &= ~sel
            continue
        w = weights[: members.size]
        t[sel] = members[rng.choice(members.size, size=int(sel.sum()), p=w / w.sum())]
    outside = ~inside
    w_all = weights[rng.permutation(tweets)]
    t[outside] = rng.choice(tweets, size=int(outside.sum()), p=w_all / w_all.sum())
    r = rng.choice(len(ENGAGEMENT_TYPES), size=edges, p=np.asarray(TYPE_SHARES))
    key = (u.astype(np.int64) * tweets + t) * len(ENGAGEMENT_TYPES) + r
    key = np.unique(key)
    r = (key % len(ENGAGEMENT_TYPES)).astype(np.int32)
    ut = key // len(ENGAGEMENT_TYPES)
    u, t = ut // tweets, ut % tweets
    perm = rng.permutation(key.size)  # unsorted, as real logs are
    u, t, r = u[perm], t[perm], r[perm]

    t0 = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp() * 1000)
    engaged_at = t0 + rng.integers(0, 180 * 86_400_000, key.size)
    user_ids, tweet_ids = _ids("u", users), _ids("t", tweets)
    types = pa.array(list(ENGAGEMENT_TYPES))
    engagements = pa.table(
        {
            "user_id": user_ids.take(pa.array(u)),
            "tweet_id": tweet_ids.take(pa.array(t)),
            "engagement_type": types.take(pa.array(r)),
            "engaged_at": pa.array(engaged_at, pa.timestamp("ms", tz="UTC")),
        }
    )
    topic_names = pa.array([f"topic{c}" for c in range(communities)])
    tweet_table = pa.table(
        {
            "tweet_id": tweet_ids,
            "author_id": user_ids.take(pa.array(rng.integers(0, users, tweets))),
            "text": pc.binary_join_element_wise(
                "synthetic tweet about", topic_names.take(pa.array(tweet_comm)), " "
            ),
            "lang": pa.array(["en"]).take(pa.array(np.zeros(tweets, np.int32))),
            "hashtags": pa.ListArray.from_arrays(
                pa.array(np.zeros(tweets + 1, np.int32)), pa.array([], pa.string())
            ),
            "created_at": pa.array(
                t0 - rng.integers(0, 86_400_000, tweets), pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    Ingested(out).write(tweet_table, engagements)
    return SyntheticGraph(users, tweets, int(key.size), user_comm, tweet_comm)
