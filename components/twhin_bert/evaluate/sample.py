"""The tweets evaluate reads: all of them, or at most ``max_tweets`` in bounded memory.

With a cap, the tweets kept are the ``max_tweets`` with the smallest keyed hash of their id
(a pure function of the id and the seed, so the same tweets in every run and on any
machine), chosen in one streaming pass over the tweets Parquet that holds at most
``max_tweets`` + one batch of rows; their engagements come from one streaming pass over the
engagements filtered to those ids. Memory then holds the sample, never the input.

The hash key differs from the holdout's (:mod:`twhin_bert.common.holdout`): with the same
key the smallest hashes would all be TEST tweets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from twhin_bert.common import schemas
from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.memory import release_free_memory

#: Mixed into the seed so that the sample's hash is independent of the holdout's.
_SAMPLE_SALT = 0x5A17_E5A3_9D2C_6B41


def sample_rank(tweet_ids: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """The keyed 64-bit hash of each tweet id that orders the sample (smallest kept first)."""
    if isinstance(tweet_ids, pa.ChunkedArray):
        tweet_ids = tweet_ids.combine_chunks()
    ids = np.asarray(tweet_ids.to_numpy(zero_copy_only=False), dtype=object)
    key = f"{(seed ^ _SAMPLE_SALT) & 0xFFFFFFFFFFFFFFFF:016x}"
    return pd.util.hash_array(ids, hash_key=key, categorize=False)


def read_tweets(
    ingested: Ingested,
    columns: list[str],
    max_tweets: int | None,
    seed: int,
    batch_rows: int = 65536,
) -> pa.Table:
    """The ingested tweets' ``columns`` (``tweet_id`` always among them), capped.

    Args:
        ingested: The ingest folder.
        columns: Columns of the ``tweets`` schema.
        max_tweets: At most this many tweets, those of smallest :func:`sample_rank`
            (None: every tweet, read whole).
        seed: Key of the sample's hash.
        batch_rows: Rows per streamed batch.

    Returns:
        The tweets, in file order.
    """
    cols = columns if "tweet_id" in columns else ["tweet_id", *columns]
    if max_tweets is None:
        return ingested.tweets(cols)
    f = schemas.check(ingested.tweets_path(), "tweets")
    kept: pa.Table | None = None
    ranks = np.zeros(0, dtype=np.uint64)
    for rb in f.iter_batches(columns=cols, batch_size=batch_rows):
        batch = pa.Table.from_batches([rb])
        batch_ranks = sample_rank(rb.column("tweet_id"), seed)
        if ranks.size == max_tweets:  # full: only rows below the largest kept rank can enter
            better = batch_ranks < ranks.max()
            batch, batch_ranks = batch.filter(pa.array(better)), batch_ranks[better]
            if batch.num_rows == 0:
                continue
        both = batch if kept is None else pa.concat_tables([kept, batch])
        ranks = np.concatenate([ranks, batch_ranks])
        if ranks.size > max_tweets:
            # Rows stay in file order: the kept rows precede the batch's, and sorted
            # positions keep each side's order.
            keep = np.sort(np.argpartition(ranks, max_tweets - 1)[:max_tweets])
            both, ranks = both.take(pa.array(keep)), ranks[keep]
        kept = both.combine_chunks()
        del rb, batch, both
        release_free_memory()
    if kept is None:
        return schemas.read_table(ingested.tweets_path(), "tweets", cols)
    return kept


def read_engagements(
    ingested: Ingested,
    columns: list[str],
    tweet_ids: pa.Array | None,
    batch_rows: int = 262144,
) -> pa.Table:
    """The engagements' ``columns`` of ``tweet_ids`` only, in one streaming pass (None: all).

    ``tweet_id`` must be among ``columns`` when ``tweet_ids`` is given.
    """
    if tweet_ids is None:
        return ingested.engagements(columns)
    f = schemas.check(ingested.engagements_path(), "engagements")
    parts = []
    for rb in f.iter_batches(columns=columns, batch_size=batch_rows):
        mine = pc.is_in(rb.column("tweet_id"), value_set=tweet_ids)
        parts.append(pa.Table.from_batches([rb]).filter(mine).combine_chunks())
        del rb, mine
        release_free_memory()
    del f  # the reader's buffers, returned below
    if not parts:
        return schemas.read_table(ingested.engagements_path(), "engagements", columns)
    out = pa.concat_tables(parts).combine_chunks()
    del parts
    release_free_memory()
    return out
