"""Flattening, MLflow keys, metric names and ``metrics.json`` (common/metrics.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.utils.validation import _validate_metric_name, _validate_tag_name
from twhin_bert.common import metrics as M


def test_flatten_keeps_every_leaf_and_numeric_keeps_finite_numbers() -> None:
    nested = {"a": {"b": 1, "c": {"d": 2.5}}, "s": "text", "n": float("nan"), "ok": True}
    assert M.flatten(nested) == {"a.b": 1, "a.c.d": 2.5, "s": "text", "n": nested["n"], "ok": True}
    assert M.flat_numeric(nested) == {"a.b": 1.0, "a.c.d": 2.5, "ok": 1.0}
    assert M.flat_numeric({"x": float("inf"), "y": -3}, "p.") == {"p.y": -3.0}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("engagement_hits@10", "engagement_hits_at_10"),
        ("primary.hashtag_macro_f1", "primary.hashtag_macro_f1"),
        ("a b:c/d-e", "a b:c/d-e"),
        ("loss(train)", "loss_train_"),
    ],
)
def test_mlflow_key_is_legal_for_mlflow(key: str, expected: str) -> None:
    got = M.mlflow_key(key)
    assert got == expected
    _validate_metric_name(got)  # raises MlflowException for an illegal key
    _validate_tag_name(got)


def test_metric_names_follow_the_cutoff() -> None:
    assert M.ENGAGEMENT_HITS == "engagement_hits@10"
    assert M.engagement_hits_key(20) == "engagement_hits@20"
    assert M.hits_key(5) == "hits@5"
    assert M.benchmark_key("english", "macro_f1") == "english_macro_f1"


def test_metrics_json_round_trip_numpy_and_nan(tmp_path: Path) -> None:
    path = M.write_metrics(tmp_path, {"b": np.float32(0.5), "a": [np.int64(3), float("nan")]})
    assert path == tmp_path / M.METRICS_FILE
    assert list(json.loads(path.read_text())) == ["a", "b"]  # sorted keys
    assert M.read_metrics(tmp_path) == {"a": [3, None], "b": 0.5}


def test_read_metrics_names_the_file_when_not_an_object(tmp_path: Path) -> None:
    (tmp_path / M.METRICS_FILE).write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"metrics\.json: expected a JSON object"):
        M.read_metrics(tmp_path)
    (tmp_path / M.METRICS_FILE).write_text("{oops")
    with pytest.raises(ValueError, match=r"metrics\.json: not valid JSON"):
        M.read_metrics(tmp_path)
