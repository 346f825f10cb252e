"""The demo's planted tweet topics (``truth/tweet_topics.parquet``), read for the stages that
score against them: mine_pairs (pair precision) and evaluate (the engagement references)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twhin_bert.common.io import local_path

#: The truth file's columns.
COLUMNS = ("tweet_id", "topic")


def topic_codes(truth: str, tweet_ids: pa.Array) -> np.ndarray:
    """The planted topic of each tweet, as an int32 code (-1 where the file has no row).

    Args:
        truth: Parquet file (local path or URI) with ``tweet_id`` and ``topic`` columns.
        tweet_ids: The tweets to look up, in order.

    Raises:
        ValueError: The file is not readable Parquet or lacks a column (names the file).
    """
    with local_path(truth) as p:
        try:
            t = pq.read_table(str(p))
        except FileNotFoundError as e:
            raise ValueError(
                f"{truth}: no such file (expected the demo's planted topics: {', '.join(COLUMNS)})"
            ) from e
        except (OSError, pa.ArrowInvalid) as e:
            raise ValueError(f"{truth}: not a readable Parquet truth file ({e})") from e
    missing = set(COLUMNS) - set(t.column_names)
    if missing:
        raise ValueError(
            f"{truth}: truth file lacks columns {sorted(missing)} (expected {', '.join(COLUMNS)})"
        )
    truth_ids = pc.cast(t.column("tweet_id"), pa.string()).combine_chunks()
    # topic codes from Arrow's dictionary encoding: int32, no Python string per tweet
    topic_col = pc.cast(t.column("topic"), pa.string()).combine_chunks()
    # a null topic is unknown (-1), as a tweet without a row is
    codes = pc.fill_null(pc.dictionary_encode(topic_col).indices, -1).to_numpy()
    del t, topic_col
    ids = pc.cast(tweet_ids, pa.string())
    pos = pc.fill_null(pc.index_in(ids, value_set=truth_ids), -1).to_numpy()
    return np.where(pos >= 0, codes[np.maximum(pos, 0)], -1).astype(np.int32)
