"""The classification metrics, and HITS@k as evaluate uses it (common.ranking: -inf padding,
ties), against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from twhin_bert.common.ranking import hits_at_k, hits_curve, positive_ranks
from twhin_bert.evaluate.scoring import classification_score


def test_hits_at_k_hand_values() -> None:
    scores = np.array([0.9, 0.5, 0.7, 0.1])
    # positive 0.7 is beaten by 0.9 only: rank 2 (1-based)
    assert hits_at_k(scores, 2, k=1) == 0.0
    assert hits_at_k(scores, 2, k=2) == 1.0
    assert hits_at_k(scores, 3, k=3) == 0.0  # 0.1 is last of 4
    assert hits_at_k(scores, 3, k=4) == 1.0
    # two users: first hit at k=1, second (rank 3) not
    two = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0]])
    assert hits_at_k(two, np.array([0, 0]), k=1) == pytest.approx(0.5)
    assert hits_at_k(two, np.array([0, 0]), k=3) == pytest.approx(1.0)
    np.testing.assert_allclose(hits_curve(two, np.array([0, 0]), [1, 2, 3]), [0.5, 0.5, 1.0])


def test_hits_ties_are_broken_at_random_in_expectation() -> None:
    # all tied: a constant scorer gets exactly k / n
    assert hits_at_k(np.ones(1000), 17, k=10) == pytest.approx(0.01)
    # one better, positive tied with 3 others -> rank 2..5 uniformly; hit@2 with p = 1/4
    s = np.array([5.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    g, t = positive_ranks(s, 2)
    assert (g[0], t[0]) == (1, 3)
    assert hits_at_k(s, 2, k=2) == pytest.approx(0.25)
    assert hits_at_k(s, 2, k=3) == pytest.approx(0.5)
    assert hits_at_k(s, 2, k=5) == pytest.approx(1.0)
    # -inf padding never beats a finite positive
    assert hits_at_k(np.array([0.0, -np.inf, -np.inf]), 0, k=1) == 1.0


def test_hits_rejects_bad_index() -> None:
    with pytest.raises(ValueError, match="out of range"):
        hits_at_k(np.ones(3), 3)


def test_classification_scores_hand_values() -> None:
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2]
    # F1: class 0 = 2/3 (P 1, R 1/2), class 1 = 0.8 (P 2/3, R 1), class 2 = 1
    assert classification_score(y_true, y_pred, "macro_f1") == pytest.approx((2 / 3 + 0.8 + 1) / 3)
    assert classification_score(y_true, y_pred, "macro_recall") == pytest.approx((0.5 + 1 + 1) / 3)
    assert classification_score(y_true, y_pred, "accuracy") == pytest.approx(0.8)
    # a predicted class absent from y_true does not count in macro recall
    assert classification_score([0, 0], [0, 1], "macro_recall") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown metric"):
        classification_score(y_true, y_pred, "auc")
    # what scikit-learn refused is refused: no labels, continuous values, 2-D input
    for bad in (([], []), ([0.5, 1.7], [0.9, 1.2]), ([[0, 1]], [[0, 1]]), ([0, 1], [0])):
        with pytest.raises(ValueError):
            classification_score(*bad, "macro_f1")


@pytest.mark.parametrize("metric", ["macro_f1", "macro_recall", "accuracy"])
def test_classification_scores_agree_with_scikit_learn(metric: str) -> None:
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        classes = int(rng.integers(1, 8))
        y = rng.integers(0, classes, n)
        # some predictions name classes y never has, some classes are never predicted
        p = np.where(rng.random(n) < 0.5, y, rng.integers(0, classes + 2, n))
        if metric == "macro_f1":
            want = f1_score(y, p, average="macro", zero_division=0)
        elif metric == "macro_recall":
            want = recall_score(
                y, p, labels=sorted(set(y.tolist())), average="macro", zero_division=0
            )
        else:
            want = accuracy_score(y, p)
        assert classification_score(y, p, metric) == pytest.approx(want, abs=1e-12), trial
