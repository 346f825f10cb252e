"""The promotion gate's metric names are checked against evaluate's config when the pipeline
config loads, not at the end of a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from twhin_bert.common.config import ConfigError
from twhin_bert.evaluate.config import EvaluateConfig
from twhin_bert.evaluate.results import primary_metric_names
from twhin_bert_pipelines.config import config_path, load_pipeline_config


def _tiny_with(tmp_path: Path, **sections: dict) -> Path:
    data = yaml.safe_load(config_path("tiny").read_text())
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_gate_on_a_cutoff_evaluate_does_not_report_fails_at_load(tmp_path: Path) -> None:
    evaluate = yaml.safe_load(config_path("tiny").read_text()).get("evaluate", {})
    engagement = {**evaluate.get("engagement", {}), "k": 20}
    path = _tiny_with(tmp_path, evaluate={"engagement": engagement})
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "'engagement_hits@10'" in msg and "engagement_hits@20" in msg


def test_gate_on_hashtags_turned_off_fails_at_load(tmp_path: Path) -> None:
    path = _tiny_with(tmp_path, evaluate={"hashtag": {"enabled": False}})
    with pytest.raises(ConfigError, match=r"gate\.metrics names \['hashtag_macro_f1'\]") as e:
        load_pipeline_config(path)
    assert "\n" not in str(e.value)


def test_a_gate_naming_what_evaluate_writes_loads(tmp_path: Path) -> None:
    evaluate = yaml.safe_load(config_path("tiny").read_text()).get("evaluate", {})
    path = _tiny_with(
        tmp_path,
        evaluate={"engagement": {**evaluate.get("engagement", {}), "k": 20}},
        inputs={"benchmarks": ["sentiment=/data/tweeteval/sentiment"]},
        register_model={
            "gate": {"metrics": {"engagement_hits@20": {}, "sentiment_macro_recall": {}}}
        },
    )
    cfg = load_pipeline_config(path)
    assert [m.name for m in cfg.register_model.gate.metrics] == [
        "engagement_hits@20",
        "sentiment_macro_recall",
    ]
    for name in ("tiny", "tiny-minilm", "prod"):  # the shipped configs load
        load_pipeline_config(name)


def test_benchmark_names_and_metrics() -> None:
    cfg = EvaluateConfig()
    assert primary_metric_names(cfg, ["/x/umsab/english", "sentiment=/y/s"]) == [
        "engagement_hits@10",
        "hashtag_macro_f1",
        "english_macro_f1",
        "sentiment_macro_recall",  # metric_by_benchmark
    ]
