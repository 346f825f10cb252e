"""The evaluate KFP component run for real through kfp.local (importers feed the artifacts)."""

# No `from __future__ import annotations`: KFP reads the pipeline's annotations at runtime.

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_component_runs_under_kfp_local(
    tiny_model_dir: Path, eval_inputs: tuple[Path, Path], sample_data: Path, tmp_path: Path
) -> None:
    from kfp import dsl, local
    from kfp.dsl import Dataset, Model
    from twhin_bert.evaluate.component import evaluate
    from twhin_bert.evaluate.config import (
        BenchmarkConfig,
        EngagementConfig,
        EvaluateConfig,
        FinetuneConfig,
        HashtagConfig,
    )

    ingested, graph = eval_inputs
    cfg = EvaluateConfig(
        max_length=32,
        threads=1,
        engagement=EngagementConfig(epochs=2, seeds=1, candidates=50),
        hashtag=HashtagConfig(top_n=4, min_examples=30),
        benchmarks=BenchmarkConfig(
            max_train=200, max_val=50, max_test=80, few_shot=[4], few_shot_seeds=1
        ),
        finetune=FinetuneConfig(enabled=False),
    )
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))

    @dsl.pipeline
    def p(config: str):
        m = dsl.importer(artifact_uri=str(tiny_model_dir), artifact_class=Model, reimport=False)
        i = dsl.importer(artifact_uri=str(ingested), artifact_class=Dataset, reimport=False)
        g = dsl.importer(artifact_uri=str(graph), artifact_class=Model, reimport=False)
        evaluate(
            config=config,
            model=m.output,
            ingested=i.output,
            graph_embeddings=g.output,
            pipeline_run_id="local-test",
            benchmarks=[str(sample_data / "umsab" / "english")],
        )

    p(config=cfg.model_dump_json())
    run = next(root.iterdir())
    out = run / "evaluate"
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert set(metrics["primary"]) == {"engagement_hits@10", "hashtag_macro_f1", "english_macro_f1"}
    assert "ablation" not in metrics  # no baseline model given
    assert (out / "report").read_text().startswith("<!DOCTYPE html>")
    executor = json.loads((out / "executor_output.json").read_text())
    arts = executor["artifacts"]
    kfp_metrics = arts["metrics"]["artifacts"][0]["metadata"]
    assert kfp_metrics["primary.engagement_hits@10"] == pytest.approx(
        metrics["primary"]["engagement_hits@10"]
    )
    assert not any(k.startswith("info.") for k in kfp_metrics)  # counts stay in metrics.json
    conf = arts["classification"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert [a["displayName"] for a in conf["annotationSpecs"]] == ["0", "1", "2"]
    assert sum(sum(r["row"]) for r in conf["rows"]) == 80  # max_test of UMSAB's 100 val tweets
