"""The typed results: metrics.json, the primary metrics and the ablation built from them."""

from __future__ import annotations

import pytest
from twhin_bert.common.metrics import HASHTAG_MACRO_F1, PRIMARY, engagement_hits_key
from twhin_bert.evaluate.results import EvaluationResult, Score, TaskResult


def _result(k: int = 20) -> EvaluationResult:
    engagement = TaskResult(
        "engagement",
        "engagement",
        f"hits@{k}",
        models={
            "cand": Score(0.30, seeds=[0.28, 0.30, 0.31], by_lang={"en": 0.3}, curve={"1": 0.1}),
            "twin": Score(0.20, seeds=[0.20], training=[{"epoch": 1, "loss": 1.0}]),
        },
        floors={"random": Score(0.02, seeds=[0.02])},
        info={"test_users": 7},
    )
    hashtag = TaskResult(
        "hashtag",
        "hashtag",
        "macro_f1",
        models={"cand": Score(0.5, variants={"feature_macro_f1": 0.5}), "twin": Score(0.4)},
        floors={"tfidf": Score(0.3)},
        info={"paired_delta": {"ci95_points": [2.0, 18.0]}},
    )
    bench = TaskResult(
        "sentiment",
        "benchmark",
        "macro_recall",
        models={"cand": Score(0.6, few_shot={"2": 0.4}), "twin": Score(None)},
        floors={"tfidf": Score(0.5, variants={"tfidf_macro_recall": 0.5})},
    )
    return EvaluationResult(
        ["cand", "twin"], "cand", "twin", "base", tasks=[engagement, hashtag, bench]
    )


def test_primary_names_come_from_common_metrics() -> None:
    r = _result(k=20)
    assert r.primary("cand") == {
        engagement_hits_key(20): 0.30,
        HASHTAG_MACRO_F1: 0.5,
        "sentiment_macro_recall": 0.6,
    }
    assert "engagement_hits@20" in r.metrics()[PRIMARY]


def test_metrics_json_layout() -> None:
    m = _result().metrics()
    assert set(m) == {"models", "floors", "info", PRIMARY, "ablation", "baseline"}  # no base
    assert m["models"]["cand"]["engagement"] == {
        "hits@20": 0.30,
        "seeds": [0.28, 0.30, 0.31],
        "by_lang": {"en": 0.3},
    }
    assert m["models"]["cand"]["hashtag"] == {
        "macro_f1": 0.5,
        "feature_macro_f1": 0.5,
        "by_lang": {},
    }
    assert m["models"]["cand"]["sentiment"] == {"macro_recall": 0.6, "few_shot": {"2": 0.4}}
    assert m["floors"]["sentiment"]["tfidf"]["tfidf_macro_recall"] == 0.5
    assert m["info"]["engagement"] == {"test_users": 7}
    assert m["info"]["benchmarks"] == {"sentiment": {}}
    assert m["info"]["counts"] == {"models": 2, "benchmarks": 1}
    assert m["baseline"] == {"name": "twin", PRIMARY: _result().primary("twin")}


def test_ablation_lift_deltas_and_missing_values() -> None:
    a = _result().ablation()
    assert a["engagement_hits@20_relative_lift"] == pytest.approx(0.5)
    assert a["engagement_hits@20_baseline"] == 0.20
    assert a["hashtag_macro_f1_delta"] == pytest.approx(10.0)  # points
    assert (a["hashtag_macro_f1_delta_ci95_low"], a["hashtag_macro_f1_delta_ci95_high"]) == (
        2.0,
        18.0,
    )
    assert "sentiment_macro_recall_delta" not in a  # the twin has no value


def test_curves_hold_what_metrics_json_leaves_out() -> None:
    c = _result().curves()
    assert c["engagement"]["cand"]["hits_curve"] == {"1": 0.1}
    assert c["engagement"]["twin"]["train_curve"] == [{"epoch": 1, "loss": 1.0}]
    assert set(c["engagement"]) == {"cand", "twin", "floor:random"}
