"""Pure metric functions: HITS@k with exact random tie-breaking, and classification scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def positive_ranks(
    scores: np.ndarray, positive_index: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    """How many candidates beat the positive, and how many tie with it.

    Args:
        scores: ``[n_candidates]`` or ``[n_users, n_candidates]`` scores (higher = better).
        positive_index: The positive's column, one per row (or an int for a 1-D ``scores``).

    Returns:
        ``(greater, ties)``: per row, the number of other candidates scoring strictly higher,
        and the number of other candidates scoring exactly the same.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    idx = np.atleast_1d(np.asarray(positive_index, dtype=np.int64))
    if idx.shape[0] != s.shape[0]:
        raise ValueError(f"{s.shape[0]} score rows but {idx.shape[0]} positive indices")
    if (idx < 0).any() or (idx >= s.shape[1]).any():
        raise ValueError(f"positive_index out of range [0, {s.shape[1]})")
    pos = s[np.arange(s.shape[0]), idx][:, None]
    greater = (s > pos).sum(axis=1)
    ties = (s == pos).sum(axis=1) - 1
    return greater, ties


def hits_at_k(scores: np.ndarray, positive_index: np.ndarray | int, k: int = 10) -> float:
    """HITS@k: the share of rows whose positive ranks among the top k candidates.

    Ties are broken uniformly at random, in expectation: a positive with ``g`` better and
    ``t`` tied candidates lands at 0-based rank ``g + U``, ``U ~ Uniform{0..t}``, so it is a hit
    with probability ``clip((k - g) / (t + 1), 0, 1)``. Deterministic, and a constant scorer
    gets exactly ``k / n_candidates``.

    Args:
        scores: ``[n_candidates]`` or ``[n_users, n_candidates]``.
        positive_index: The positive's column per row.
        k: Cut-off.

    Returns:
        The mean hit probability over rows.
    """
    return float(hits_curve(scores, positive_index, [k])[0])


def hits_curve(
    scores: np.ndarray, positive_index: np.ndarray | int, ks: Sequence[int]
) -> np.ndarray:
    """HITS@k for each k in ``ks`` (same tie rule as :func:`hits_at_k`)."""
    greater, ties = positive_ranks(scores, positive_index)
    return hits_curve_from_ranks(greater, ties, ks)


def hits_curve_from_ranks(greater: np.ndarray, ties: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """HITS@k for each k from precomputed ``(greater, ties)`` of :func:`positive_ranks`."""
    g = np.asarray(greater, dtype=np.float64)[None, :]
    t = np.asarray(ties, dtype=np.float64)[None, :]
    kk = np.asarray(list(ks), dtype=np.float64)[:, None]
    if g.shape[1] == 0:
        return np.full(len(ks), np.nan)
    return np.clip((kk - g) / (t + 1.0), 0.0, 1.0).mean(axis=1)


def classification_score(y_true: Sequence[int], y_pred: Sequence[int], metric: str) -> float:
    """A benchmark metric: ``macro_f1``, ``macro_recall`` or ``accuracy`` (fractions in [0, 1]).

    Macro averages run over the classes present in ``y_true`` or ``y_pred``.
    """
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    if metric == "macro_f1":
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    if metric == "macro_recall":
        labels = sorted(set(int(y) for y in y_true))  # recall is undefined for absent classes
        return float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    raise ValueError(f"unknown metric {metric!r}; expected macro_f1, macro_recall or accuracy")
