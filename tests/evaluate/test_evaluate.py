"""run_evaluate end to end on a tiny random model, and the KFP component's interface."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from twhin_bert.evaluate.config import (
    BenchmarkConfig,
    EngagementConfig,
    EvaluateConfig,
    FinetuneConfig,
    HashtagConfig,
)
from twhin_bert.evaluate.report import fmt
from twhin_bert.evaluate.results import primary_metric_names


def small_config() -> EvaluateConfig:
    return EvaluateConfig(
        max_length=32,
        threads=1,
        engagement=EngagementConfig(epochs=3, seeds=1, batch_size=256, negatives=4, candidates=100),
        hashtag=HashtagConfig(top_n=4, min_examples=30),
        benchmarks=BenchmarkConfig(
            max_train=240, max_val=60, max_test=120, few_shot=[2, 8], few_shot_seeds=2
        ),
        finetune=FinetuneConfig(
            epochs=1, max_train=64, batch_size=32, tasks=["hashtag", "benchmarks"]
        ),
    )


def test_run_evaluate_end_to_end(
    tiny_model_dir: Path, eval_inputs: tuple[Path, Path], sample_data: Path, tmp_path: Path
) -> None:
    from twhin_bert.evaluate.evaluate import run_evaluate

    ingested, graph = eval_inputs
    out = tmp_path / "evaluation"
    # the same weights as both candidate and ablation: seeded runs must agree exactly
    res = run_evaluate(
        small_config(),
        out,
        models={"twhin_bert": tiny_model_dir, "mlm_only": tiny_model_dir},
        ingested=ingested,
        graph_embeddings=graph,
        benchmarks=[str(sample_data / "umsab" / "english")],  # 3-way sentiment, no test split
    )
    for f in ("metrics.json", "report.md", "report.html", "curves.json", "confusion.json"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["primary"] == pytest.approx(res["primary"])
    assert set(saved["primary"]) == {"engagement_hits@10", "hashtag_macro_f1", "english_macro_f1"}
    # what the pipeline config's gate check expects is what evaluate wrote
    bench = [str(sample_data / "umsab" / "english")]
    assert sorted(saved["primary"]) == sorted(primary_metric_names(small_config(), bench))
    for name in ("twhin_bert", "mlm_only"):
        m = saved["models"][name]
        assert 0.0 <= m["engagement"]["hits@10"] <= 1.0
        assert 0.0 <= m["hashtag"]["feature_macro_f1"] <= 1.0
        assert 0.0 <= m["hashtag"]["finetune_macro_f1"] <= 1.0
        assert set(m["english"]["few_shot"]) == {"2", "8"}
    assert (
        saved["primary"]["english_macro_f1"] == saved["models"]["twhin_bert"]["english"]["macro_f1"]
    )
    assert saved["ablation"]["engagement_hits@10_relative_lift"] == pytest.approx(0.0, abs=1e-9)
    assert saved["ablation"]["hashtag_macro_f1_delta"] == pytest.approx(0.0, abs=1e-9)
    # floors beside every number
    assert {"popularity", "tfidf", "random"} <= set(saved["floors"]["engagement"])
    assert saved["floors"]["engagement"]["random"]["hits@10"] == pytest.approx(
        10 / saved["info"]["engagement"]["mean_candidates"], rel=0.05
    )
    assert 0.0 < saved["floors"]["hashtag"]["tfidf"]["macro_f1"] <= 1.0
    assert 0.3 < saved["floors"]["english"]["tfidf"]["macro_f1"] <= 1.0  # 3 classes
    # planted topic words: the hashtag floor is well above chance (4 classes)
    assert saved["floors"]["hashtag"]["tfidf"]["macro_f1"] > 0.5
    assert saved["info"]["engagement"]["users_without_embedding"] == 5
    assert saved["info"]["hashtag"]["languages"] == 2
    conf = json.loads((out / "confusion.json").read_text())
    assert conf["categories"] == ["0", "1", "2"]  # no mapping.txt: the label ids
    assert sum(map(sum, conf["matrix"])) == 100  # UMSAB's val (100 tweets) is the test set
    # The report shows the numbers it reports, and every plot it links exists and is a PNG,
    # embedded once each in the self-contained HTML page.
    md = (out / "report.md").read_text()
    for value in (
        saved["primary"]["engagement_hits@10"],
        saved["floors"]["engagement"]["popularity"]["hits@10"],
        saved["primary"]["english_macro_f1"],
    ):
        assert fmt(value) in md, value
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) >= 5 and len(set(linked)) == len(linked)
    assert sorted(linked) == sorted(p.name for p in out.glob("*.png"))
    for name in linked:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(linked)
    curves = json.loads((out / "curves.json").read_text())
    assert len(curves["engagement"]["twhin_bert"]["hits_curve"]) == 100
    assert len(curves["engagement"]["twhin_bert"]["train_curve"]) == 3


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        EvaluateConfig(engagement=EngagementConfig(split_fractions=(0.8, 0.1, 0.2)))
    with pytest.raises(ValueError, match=r"finetune\.enabled"):
        EvaluateConfig(primary_mode="finetune", finetune=FinetuneConfig(enabled=False))
    with pytest.raises(ValueError, match=r"finetune\.tasks"):
        EvaluateConfig(primary_mode="finetune")  # tiny default fine-tunes benchmarks only
    both = FinetuneConfig(tasks=["hashtag", "benchmarks"])
    assert EvaluateConfig(primary_mode="finetune", finetune=both).primary_mode == "finetune"
    with pytest.raises(ValueError, match="Extra inputs"):
        EvaluateConfig.model_validate({"nope": 1})


def test_component_compiles_with_optional_baseline(tmp_path: Path) -> None:
    import yaml
    from kfp import compiler
    from twhin_bert.evaluate.component import evaluate

    path = tmp_path / "evaluate.yaml"
    compiler.Compiler().compile(evaluate, str(path))
    spec = yaml.safe_load(path.read_text())
    inputs = spec["root"]["inputDefinitions"]
    arts = inputs["artifacts"]
    assert {"model", "ingested", "graph_embeddings", "baseline_model"} <= set(arts)
    assert arts["baseline_model"].get("isOptional") is True
    assert not arts["model"].get("isOptional", False)
    # '' = no planted topics (real data): the references are demo-only
    truth = inputs["parameters"]["truth"]
    assert truth.get("isOptional") is True and truth["defaultValue"] == ""
    outs = spec["root"]["outputDefinitions"]["artifacts"]
    assert outs["classification"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"
    assert outs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
