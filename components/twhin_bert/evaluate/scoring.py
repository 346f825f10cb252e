"""Classification scores of the benchmarks and the hashtag task.

HITS@k (the engagement task) is :mod:`twhin_bert.common.ranking`: one tie rule for every stage.

The scores are computed here from per-class counts rather than with scikit-learn's metric
functions: they agree with ``f1_score(average="macro", zero_division=0)``,
``recall_score(labels=<classes of y_true>, average="macro", zero_division=0)`` and
``accuracy_score`` (a test checks it on random labels), and the hashtag task's paired
bootstrap calls them thousands of times, where scikit-learn's input validation cost more than
the rest of that task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("macro_f1", "macro_recall", "accuracy")


def classification_score(y_true: Sequence[int], y_pred: Sequence[int], metric: str) -> float:
    """A benchmark metric: ``macro_f1``, ``macro_recall`` or ``accuracy`` (fractions in [0, 1]).

    Macro F1 averages over the classes present in ``y_true`` or ``y_pred``; macro recall over
    the classes of ``y_true`` (recall is undefined for the others). A class with no true and
    no correct prediction scores 0 (no division by zero).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected macro_f1, macro_recall or accuracy")
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or t.shape != p.shape or t.size == 0:
        raise ValueError(
            f"expected two equally long, non-empty lists of labels, got shapes {t.shape} "
            f"and {p.shape}"
        )
    if t.dtype.kind not in "iub" or p.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got {t.dtype} and {p.dtype}")
    if metric == "accuracy":
        return float(np.mean(t == p))
    labels, idx = np.unique(np.concatenate([t, p]).astype(np.int64), return_inverse=True)
    ti, pi = idx[: t.size], idx[t.size :]
    n = labels.size
    true = np.bincount(ti, minlength=n)
    pred = np.bincount(pi, minlength=n)
    tp = np.bincount(ti[t == p], minlength=n)
    if metric == "macro_recall":
        present = true > 0
        return float(np.mean(tp[present] / true[present]))
    # F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (true + pred); every class here has true + pred > 0
    return float(np.mean(2.0 * tp / (true + pred)))
