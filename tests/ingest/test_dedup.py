"""The compact hash set agrees with a Python set on first occurrences and membership."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from twhin_bert.ingest.dedup import HashSet, hash_keys


@given(st.lists(st.lists(st.text(max_size=3), max_size=40), max_size=12))
def test_matches_python_set(batches: list[list[str]]) -> None:
    hs = HashSet()
    seen: set[str] = set()
    for keys in batches:
        probe = hash_keys(keys, len(keys))
        assert hs.contains(probe).tolist() == [k in seen for k in keys]
        new = hs.add_new(probe).tolist()
        expected = []
        for k in keys:
            expected.append(k not in seen)
            seen.add(k)
        assert new == expected
    assert len(hs) == len(seen)


def test_runs_stay_few_and_small() -> None:
    hs = HashSet()
    for i in range(200):
        hs.add_new(np.arange(i * 1000, (i + 1) * 1000, dtype=np.int64))
    assert len(hs) == 200_000
    assert hs.nbytes == 200_000 * 8
    assert len(hs._runs) <= 18  # logarithmic
    assert hs.contains(np.array([0, 199_999, 200_000])).tolist() == [True, True, False]
