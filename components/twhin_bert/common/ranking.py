"""Ranking metrics with one tie rule: HITS@k and MRR of a positive among scored candidates.

The tie rule: ties are broken uniformly at random, and the metric is its expectation. A
positive with ``g`` candidates scoring strictly higher and ``t`` scoring exactly the same
lands at 0-based rank ``g + U``, ``U ~ Uniform{0..t}``, so

* it is a HIT@k with probability ``clip((k - g) / (t + 1), 0, 1)``;
* its expected reciprocal rank is ``(H(g + t + 1) - H(g)) / (t + 1)`` (``H`` harmonic numbers).

This is deterministic, needs no random draw, and a constant scorer gets exactly the random
floor (``k / n_candidates`` for HITS@k). evaluate's engagement task (HITS@k of the engaged
tweet among sampled tweets) and embed_graph's link prediction (MRR and HITS@k of a held-out
edge among random tweets) both score with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_counts(
    positive: np.ndarray, candidates: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """How many candidates beat each positive, and how many tie with it.

    Args:
        positive: ``[n]`` scores of the positives (higher = better).
        candidates: ``[n, c]`` scores of each positive's candidates (the positive not among
            them).
        valid: Optional ``[n, c]`` mask; masked-out candidates (e.g. other known positives,
            filtered) are not counted.

    Returns:
        ``(greater, ties)``: int64 ``[n]`` counts.
    """
    pos = np.asarray(positive)[:, None]
    cand = np.asarray(candidates)
    greater, equal = cand > pos, cand == pos
    if valid is not None:
        greater, equal = greater & valid, equal & valid
    return greater.sum(axis=1).astype(np.int64), equal.sum(axis=1).astype(np.int64)


def positive_ranks(
    scores: np.ndarray, positive_index: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_counts` when the positive is one of the scored columns.

    Args:
        scores: ``[n_candidates]`` or ``[n_rows, n_candidates]`` scores (higher = better).
        positive_index: The positive's column, one per row (or an int for a 1-D ``scores``).

    Returns:
        ``(greater, ties)``: per row, the number of *other* columns scoring strictly higher,
        and the number of other columns scoring exactly the same.
    """
    s = np.atleast_2d(np.asarray(scores))
    if not np.issubdtype(s.dtype, np.floating):  # float32 stays float32: exact, half the size
        s = s.astype(np.float64)
    idx = np.atleast_1d(np.asarray(positive_index, dtype=np.int64))
    if idx.shape[0] != s.shape[0]:
        raise ValueError(f"{s.shape[0]} score rows but {idx.shape[0]} positive indices")
    if (idx < 0).any() or (idx >= s.shape[1]).any():
        raise ValueError(f"positive_index out of range [0, {s.shape[1]})")
    pos = s[np.arange(s.shape[0]), idx]
    greater, equal = rank_counts(pos, s)
    return greater, equal - 1  # the positive ties with itself


def hits_at(greater: np.ndarray, ties: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Mean HITS@k over rows for each k in ``ks`` (NaN for no rows), from :func:`rank_counts`."""
    g = np.asarray(greater, dtype=np.float64)[None, :]
    t = np.asarray(ties, dtype=np.float64)[None, :]
    kk = np.asarray(list(ks), dtype=np.float64)[:, None]
    if g.shape[1] == 0:
        return np.full(len(ks), np.nan)
    return np.clip((kk - g) / (t + 1.0), 0.0, 1.0).mean(axis=1)


def hits_curve(
    scores: np.ndarray, positive_index: np.ndarray | int, ks: Sequence[int]
) -> np.ndarray:
    """HITS@k for each k in ``ks`` of the positive column among all columns."""
    return hits_at(*positive_ranks(scores, positive_index), ks)


def hits_at_k(scores: np.ndarray, positive_index: np.ndarray | int, k: int = 10) -> float:
    """HITS@k: the share of rows whose positive ranks among the top ``k`` columns.

    Args:
        scores: ``[n_candidates]`` or ``[n_rows, n_candidates]``.
        positive_index: The positive's column per row.
        k: Cut-off.

    Returns:
        The mean hit probability over rows (module docstring: the tie rule).
    """
    return float(hits_curve(scores, positive_index, [k])[0])


def reciprocal_ranks(greater: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Each row's expected reciprocal rank (module docstring: the tie rule)."""
    g = np.asarray(greater, dtype=np.int64)
    t = np.asarray(ties, dtype=np.int64)
    if g.size == 0:
        return np.zeros(0)
    top = int((g + t).max()) + 1
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])  # H(0..top)
    return (harmonic[g + t + 1] - harmonic[g]) / (t + 1.0)


def mean_reciprocal_rank(greater: np.ndarray, ties: np.ndarray) -> float:
    """MRR over rows (NaN for no rows)."""
    rr = reciprocal_ranks(greater, ties)
    return float(rr.mean()) if rr.size else float("nan")
