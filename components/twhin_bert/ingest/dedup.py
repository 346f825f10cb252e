"""A compact set of 64-bit key hashes for deduplication in bounded memory.

Ingest must remember every tweet id (to reject duplicates and engagements to unknown
tweets) and every (user, tweet, type) key; keeping the strings would cost ~100 bytes a key.
This set keeps 8 bytes a key: sorted ``int64`` runs that are merged as they grow (a
log-structured merge), queried with binary search one batch at a time.

Keys are hashed with Python's 64-bit SipHash (``hash(str)``), stable within one process.
Two distinct keys collide with probability ~n²/2⁶⁵ (about 3e-8 for a billion keys), in which
case the later one would be taken for a duplicate; this is the price of bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def hash_keys(keys: Iterable[str], n: int) -> np.ndarray:
    """The int64 hashes of ``n`` string keys."""
    return np.fromiter(map(hash, keys), dtype=np.int64, count=n)


class HashSet:
    """A growing set of int64 hashes with batch membership tests."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, disjoint; sizes decrease along the list
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory held by the hashes."""
        return sum(r.nbytes for r in self._runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``hashes`` are in the set."""
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, hashes)
            pos[pos == len(run)] = 0
            found |= run[pos] == hashes
        return found

    def add_new(self, hashes: np.ndarray) -> np.ndarray:
        """Adds ``hashes`` (in order) and tells which were new.

        Args:
            hashes: Int64 hashes of one batch, in row order.

        Returns:
            A boolean mask, True for the first occurrence of a hash not seen before (in
            earlier batches or earlier in this one); the others are duplicates.
        """
        new = np.zeros(len(hashes), dtype=bool)
        if len(hashes) == 0:
            return new
        uniq, first = np.unique(hashes, return_index=True)
        unseen = ~self.contains(uniq)
        new[first[unseen]] = True
        self._add_run(uniq[unseen])
        return new

    def _add_run(self, run: np.ndarray) -> None:
        if len(run) == 0:
            return
        self._runs.append(run)
        self._size += len(run)
        # Merge while the newest run is at least half its predecessor: O(log n) runs.
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            b = self._runs.pop()
            a = self._runs.pop()
            merged = np.concatenate([a, b])
            merged.sort(kind="stable")
            self._runs.append(merged)
