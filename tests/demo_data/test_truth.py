"""The planted-topics reader shared by mine_pairs and evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from twhin_bert.demo_data.truth import topic_codes


def test_topic_codes_follow_the_asked_ids(tmp_path: Path) -> None:
    truth = tmp_path / "tweet_topics.parquet"
    # integer ids, a null topic: both are read (the null as unknown, like a missing row)
    pq.write_table(pa.table({"tweet_id": [7, 8, 9], "topic": ["a", None, "b"]}), truth)
    codes = topic_codes(str(truth), pa.array(["9", "7", "8", "10", "7"]))
    assert codes.dtype == np.int32
    assert codes[0] != codes[1] and codes[1] == codes[4] >= 0
    assert list(codes[2:4]) == [-1, -1]


def test_bad_truth_files_are_one_line_naming_the_file(tmp_path: Path) -> None:
    ids = pa.array(["1"])
    missing = tmp_path / "nope.parquet"
    with pytest.raises(
        ValueError, match=r"nope.parquet: no such file \(expected .*tweet_id, topic"
    ):
        topic_codes(str(missing), ids)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(ValueError, match=r"junk\.parquet: not a readable Parquet truth file"):
        topic_codes(str(junk), ids)
    cols = tmp_path / "cols.parquet"
    pq.write_table(pa.table({"tweet_id": ["1"], "label": ["a"]}), cols)
    with pytest.raises(ValueError, match=r"cols.parquet: truth file lacks columns \['topic'\]"):
        topic_codes(str(cols), ids)
