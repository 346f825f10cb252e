"""KFP component of the evaluate stage (thin: typed artifacts -> ``run_evaluate``)."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    config: str,
    model: Input[Model],
    ingested: Input[Dataset],
    graph_embeddings: Input[Model],
    pipeline_run_id: str,
    benchmarks: list,
    evaluation: Output[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    baseline_model: Input[Model] = None,
    base_model: str = "",
    truth: str = "",
):
    """Evaluates the candidate model (and the MLM-only ablation twin) beside TF-IDF/popularity floors.

    Args:
        config: The evaluate section of the pipeline config, as JSON.
        model: The candidate (MLM + social) Hugging Face model folder.
        ingested: The ingest folder (tweets, engagements).
        graph_embeddings: The embed_graph folder (user embeddings).
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        benchmarks: TweetEval/UMSAB-style benchmark folders (``path`` or ``name=path``).
        evaluation: Folder with ``metrics.json``, ``report.md``, ``report.html``, plots,
            ``curves.json``, ``confusion.json``.
        metrics: The numeric metrics (models, floors, primary, ablation).
        classification: Confusion matrix of the candidate on the main benchmark.
        report: The HTML report.
        baseline_model: The MLM-only model, when the ablation runs.
        base_model: The released encoder the candidate continued (``pretrain.base_model``:
            a folder, gs:// URI or ``pkg:`` reference), scored untouched as a third model;
            '' = trained from scratch.
        truth: The demo data's planted tweet topics (Parquet ``tweet_id``, ``topic``): adds
            the engagement references; '' = none (real data).
    """
    import json
    import shutil
    from pathlib import Path

    from twhin_bert.common.artifacts import Evaluation
    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.evaluate.config import EvaluateConfig
    from twhin_bert.evaluate.evaluate import CONFUSION_FILE, models_to_score, run_evaluate

    cfg = EvaluateConfig.model_validate_json(config)
    models = models_to_score(
        cfg,
        Path(model.path),
        baseline=Path(baseline_model.path) if baseline_model is not None else None,
        base_model=base_model,
    )
    result = run_evaluate(
        cfg,
        evaluation.path,
        pipeline_run_id=pipeline_run_id,
        models=models,
        ingested=Path(ingested.path),
        graph_embeddings=Path(graph_embeddings.path),
        benchmarks=[str(b) for b in benchmarks],
        truth=truth or None,
    )
    # Scores only; the counts under "info" stay in metrics.json.
    log_kfp_metrics(metrics, {k: v for k, v in result.items() if k != "info"})
    out = Path(evaluation.path)
    conf = out / CONFUSION_FILE
    if conf.exists():
        c = json.loads(conf.read_text())
        classification.log_confusion_matrix(c["categories"], c["matrix"])
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / Evaluation.REPORT_HTML, report.path)
