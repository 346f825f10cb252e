"""One HITS@k and MRR with one tie rule (common/ranking.py)."""

from __future__ import annotations

import numpy as np
import pytest
from twhin_bert.common import ranking


def _simulated(scores: np.ndarray, pos: np.ndarray, k: int, draws: int = 4000) -> tuple:
    """HITS@k and MRR with ties broken by actual random draws (the rule's definition)."""
    rng = np.random.default_rng(0)
    hits, rr = [], []
    for _ in range(draws):
        jitter = rng.random(scores.shape) * 1e-6  # below the score resolution: only orders ties
        s = scores + jitter
        rank = (s > s[np.arange(len(pos)), pos][:, None]).sum(1)  # 0-based
        hits.append(rank < k)
        rr.append(1.0 / (rank + 1))
    return float(np.mean(hits)), float(np.mean(rr))


def test_expectation_matches_random_tie_breaking() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float64)  # many ties
    pos = rng.integers(0, 30, size=50)
    greater, ties = ranking.positive_ranks(scores, pos)
    sim_hits, sim_mrr = _simulated(scores, pos, k=10)
    assert ranking.hits_at(greater, ties, [10])[0] == pytest.approx(sim_hits, abs=0.01)
    assert ranking.mean_reciprocal_rank(greater, ties) == pytest.approx(sim_mrr, abs=0.01)


def test_constant_scorer_gets_the_random_floor() -> None:
    n = 20
    scores = np.zeros((7, n))
    assert ranking.hits_at_k(scores, np.zeros(7, int), k=10) == pytest.approx(10 / n)
    harmonic = sum(1 / j for j in range(1, n + 1))
    g, t = ranking.positive_ranks(scores, np.zeros(7, int))
    assert ranking.mean_reciprocal_rank(g, t) == pytest.approx(harmonic / n)


def test_a_tie_at_the_cutoff_counts_half() -> None:
    # 9 better, 1 tied: the old link-prediction rule (mid-rank 10.5 > 10) counted no hit.
    assert ranking.hits_at(np.array([9]), np.array([1]), [10])[0] == pytest.approx(0.5)
    assert ranking.reciprocal_ranks(np.array([9]), np.array([1]))[0] == pytest.approx(
        (1 / 10 + 1 / 11) / 2
    )


def test_separate_positive_with_filtered_candidates_equals_positive_column() -> None:
    rng = np.random.default_rng(2)
    pos = rng.integers(0, 3, size=40).astype(float)
    cand = rng.integers(0, 3, size=(40, 12)).astype(float)
    valid = rng.random((40, 12)) > 0.3
    g, t = ranking.rank_counts(pos, cand, valid)
    for i in range(40):
        row = np.concatenate([[pos[i]], cand[i][valid[i]]])
        gi, ti = ranking.positive_ranks(row, 0)
        assert (g[i], t[i]) == (gi[0], ti[0])
    assert np.isnan(ranking.hits_at(np.zeros(0), np.zeros(0), [10])[0])
    assert np.isnan(ranking.mean_reciprocal_rank(np.zeros(0, int), np.zeros(0, int)))
