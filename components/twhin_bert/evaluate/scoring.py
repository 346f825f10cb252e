"""Classification scores of the benchmarks and the hashtag task.

HITS@k (the engagement task) is :mod:`twhin_bert.common.ranking`: one tie rule for every stage.
"""

from __future__ import annotations

from collections.abc import Sequence


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
