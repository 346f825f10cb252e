"""A compact set (or map) of 64-bit key hashes for deduplication in bounded memory.

Ingest must remember every tweet id (to reject duplicates and engagements to unknown
tweets) and every (user, tweet, type) key; keeping the strings would cost ~100 bytes a key.
This set keeps 8 bytes a key: sorted ``int64`` runs that are merged as they grow (a
log-structured merge), queried with binary search one batch at a time. With
``with_values=True`` it keeps one int64 value per key beside it (8 more bytes a key), e.g.
a tweet's creation time.

Keys are hashed with Python's 64-bit SipHash (``hash(str)``), stable within one process.
Two distinct keys collide with probability ~n²/2⁶⁵ (about 3e-8 for a billion keys), in which
case the later one would be taken for a duplicate; this is the price of bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: The value of a key added without one (the smallest int64: compares below any time).
NO_VALUE = np.iinfo(np.int64).min


def hash_keys(keys: Iterable[str], n: int) -> np.ndarray:
    """The int64 hashes of ``n`` string keys."""
    return np.fromiter(map(hash, keys), dtype=np.int64, count=n)


class HashSet:
    """A growing set of int64 hashes with batch membership tests (and optional values)."""

    def __init__(self, *, with_values: bool = False) -> None:
        self._runs: list[np.ndarray] = []  # sorted, disjoint; sizes decrease along the list
        self._vals: list[np.ndarray] | None = [] if with_values else None  # beside _runs
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory held by the hashes."""
        return sum(r.nbytes for r in self._runs) + sum(v.nbytes for v in self._vals or ())

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``hashes`` are in the set."""
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, hashes)
            pos[pos == len(run)] = 0
            found |= run[pos] == hashes
        return found

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``hashes`` are in the set, and their values (:data:`NO_VALUE` where
        absent or added without one). Needs ``with_values=True``."""
        if self._vals is None:
            raise TypeError("lookup() needs a HashSet(with_values=True)")
        found = np.zeros(len(hashes), dtype=bool)
        values = np.full(len(hashes), NO_VALUE, dtype=np.int64)
        for run, vals in zip(self._runs, self._vals, strict=True):
            pos = np.searchsorted(run, hashes)
            pos[pos == len(run)] = 0
            hit = run[pos] == hashes
            found |= hit
            values[hit] = vals[pos[hit]]
        return found, values

    def add_new(self, hashes: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Adds ``hashes`` (in order) and tells which were new.

        Args:
            hashes: Int64 hashes of one batch, in row order.
            values: Int64 values beside them (a set ``with_values`` only; None: all
                :data:`NO_VALUE`); a key keeps the value of its first occurrence.

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
        vals = None
        if self._vals is not None:
            given = np.full(len(hashes), NO_VALUE, np.int64) if values is None else values
            vals = np.asarray(given, dtype=np.int64)[first[unseen]]
        self._add_run(uniq[unseen], vals)
        return new

    def _add_run(self, run: np.ndarray, vals: np.ndarray | None) -> None:
        if len(run) == 0:
            return
        self._runs.append(run)
        if self._vals is not None:
            assert vals is not None
            self._vals.append(vals)
        self._size += len(run)
        # Merge while the newest run is at least half its predecessor: O(log n) runs.
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            b = self._runs.pop()
            a = self._runs.pop()
            merged = np.concatenate([a, b])
            if self._vals is None:
                merged.sort(kind="stable")
                self._runs.append(merged)
                continue
            vb = self._vals.pop()
            va = self._vals.pop()
            order = np.argsort(merged, kind="stable")
            self._runs.append(merged[order])
            self._vals.append(np.concatenate([va, vb])[order])
