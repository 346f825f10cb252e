"""The evaluate stage: every model side by side on engagement, hashtags and benchmarks.

Reads top to bottom: load the frozen encoders, run the three task families (each a typed
:class:`~twhin_bert.evaluate.results.TaskResult`: every model beside its floors on the same
split), then build ``metrics.json`` (``models.<name>.<task>.<metric>``, ``floors.<task>...``,
``primary``, ``ablation``), the plots and the report from them, and log all of it to MLflow. Curves (HITS@k, training per epoch) go to ``curves.json``; the candidate's
confusion matrix on the main benchmark to ``confusion.json`` (the component hands it to KFP).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from twhin_bert.common import holdout, tracking
from twhin_bert.common.artifacts import Ingested, ModelFolder
from twhin_bert.common.compute import use_threads
from twhin_bert.common.metrics import PRIMARY
from twhin_bert.common.stage import stage
from twhin_bert.evaluate.config import EvaluateConfig
from twhin_bert.evaluate.features import FrozenEncoder
from twhin_bert.evaluate.report import report_blocks, write_report
from twhin_bert.evaluate.results import EvaluationResult, TaskResult

log = logging.getLogger(__name__)

CURVES_FILE = "curves.json"
CONFUSION_FILE = "confusion.json"


def _check_models(models: dict[str, Path], cfg: EvaluateConfig) -> dict[str, Path]:
    if cfg.candidate not in models:
        raise ValueError(
            f"models must include the candidate {cfg.candidate!r}, got {sorted(models)}"
        )
    out = {}
    for name, p in models.items():
        p = Path(p)
        if not (p / ModelFolder.CONFIG).is_file():
            raise FileNotFoundError(
                f"{p}: model {name!r} is not a Hugging Face model folder (no config.json)"
            )
        out[name] = p
    # Candidate first, so tables and plots list it first.
    return {
        cfg.candidate: out[cfg.candidate],
        **{n: p for n, p in out.items() if n != cfg.candidate},
    }


def models_to_score(
    cfg: EvaluateConfig,
    candidate: Path,
    *,
    baseline: Path | None = None,
    base_model: str | None = None,
    baseline_name: str | None = None,
) -> dict[str, Path]:
    """The models ``run_evaluate`` scores, under the names the evaluate config gives them.

    Args:
        cfg: Evaluate config (``candidate``, ``baseline`` and ``base`` name the models).
        candidate: The candidate's model folder.
        baseline: The MLM-only ablation twin's folder, when it ran.
        base_model: The released encoder the candidate continued (``pretrain.base_model``: a
            folder, ``gs://`` URI or ``pkg:`` reference), scored untouched; ''/None = trained
            from scratch.
        baseline_name: Another name for the twin (the CLI's ``--baseline-name``).
    """
    models = {cfg.candidate: Path(candidate)}
    if baseline is not None:
        models[baseline_name or cfg.baseline] = Path(baseline)
    if base_model:
        from twhin_bert.common.base_model import fetch

        models[cfg.base] = fetch(base_model)
    return models


@stage("evaluate")
def run_evaluate(
    cfg: EvaluateConfig,
    out_dir: Path,
    *,
    models: dict[str, Path],
    ingested: Path,
    graph_embeddings: Path,
    benchmarks: list[str],
    truth: str | None = None,
) -> dict[str, Any]:
    """Evaluates the candidate (and its ablation twin, when given) with floors beside.

    Args:
        cfg: Evaluate config.
        out_dir: Staging output folder.
        models: Name -> Hugging Face model folder; ``cfg.candidate`` (``twhin_bert``) is
            required, ``cfg.baseline`` (``mlm_only``) optional.
        ingested: The ingest folder (tweets and engagements).
        graph_embeddings: The embed_graph folder (user embeddings and the holdout rule).
        benchmarks: TweetEval/UMSAB-style folders (``path`` or ``name=path``).
        truth: Demo data's planted tweet topics (Parquet ``tweet_id``, ``topic``): the
            engagement task adds its references (``metrics.json`` ``references``).

    Returns:
        The metrics (also written as ``metrics.json``).
    """
    use_threads(cfg.threads)
    return _evaluate(
        cfg, Path(out_dir), models, Path(ingested), Path(graph_embeddings), benchmarks, truth
    )


def _evaluate(
    cfg: EvaluateConfig,
    out_dir: Path,
    models: dict[str, Path],
    ingested: Path,
    graph_embeddings: Path,
    benchmarks: list[str],
    truth: str | None,
) -> dict[str, Any]:
    model_dirs = _check_models(models, cfg)
    encoders = _load_encoders(model_dirs, cfg)
    result = EvaluationResult(list(model_dirs), cfg.candidate, cfg.baseline, cfg.base)
    if cfg.engagement.enabled:
        result.tasks.append(_engagement(cfg, encoders, ingested, graph_embeddings, truth))
    if cfg.hashtag.enabled:
        result.tasks.append(_hashtag(cfg, encoders, model_dirs, ingested, graph_embeddings))
    confusion: dict[str, Any] = {}
    if benchmarks:
        from twhin_bert.evaluate.benchmarks import run_benchmarks

        tasks, confusion = run_benchmarks(
            benchmarks, encoders=encoders, model_dirs=model_dirs, cfg=cfg
        )
        result.tasks.extend(tasks)

    (out_dir / CURVES_FILE).write_text(json.dumps(result.curves(), indent=1) + "\n")
    if confusion:
        (out_dir / CONFUSION_FILE).write_text(json.dumps(confusion, indent=1) + "\n")
    md, page = write_report(
        out_dir, report_blocks(result, model_dirs, cfg, out_dir), "TwHIN-BERT evaluation"
    )
    for p in sorted(out_dir.glob("*.png")):
        tracking.log_artifact(p, "plots")
    for p in (md, page, out_dir / CURVES_FILE):
        tracking.log_artifact(p, "report")
    metrics = result.metrics()
    log.info("evaluate: primary %s", metrics[PRIMARY])
    return metrics


def _load_encoders(model_dirs: dict[str, Path], cfg: EvaluateConfig) -> dict[str, FrozenEncoder]:
    """One frozen encoder (and feature cache) per folder, even under two names."""
    by_path: dict[Path, FrozenEncoder] = {}
    for p in model_dirs.values():
        if p.resolve() not in by_path:
            by_path[p.resolve()] = FrozenEncoder(
                p, batch_size=cfg.embed_batch_size, max_length=cfg.max_length, device=cfg.device
            )
    return {n: by_path[p.resolve()] for n, p in model_dirs.items()}


def _engagement(
    cfg: EvaluateConfig,
    encoders: dict[str, FrozenEncoder],
    ingested: Path,
    graph_embeddings: Path,
    truth: str | None,
) -> TaskResult:
    """Social engagement prediction on the models' Combined embeddings (with the planted-topic
    references on demo data); the projection model's training curves go to MLflow per epoch."""
    from twhin_bert.evaluate.engagement import (
        load_engagement_data,
        planted_topic_references,
        run_engagement,
    )

    data = load_engagement_data(
        ingested, graph_embeddings, cfg.engagement, cfg.seed, max_tweets=cfg.max_tweets
    )
    feats = {n: enc.embed(data.texts, "combined") for n, enc in encoders.items()}
    refs, ref_info = None, {}
    if truth and cfg.engagement.references:
        refs, ref_info = planted_topic_references(data, truth, cfg.seed)
    task = run_engagement(data, feats, cfg.engagement, cfg.seed, references=refs)
    task.info |= ref_info
    for n, score in task.models.items():
        for row in score.training or []:
            tracking.log_metrics(
                {
                    f"engagement.{n}.train_loss": row["loss"],
                    f"engagement.{n}.val_hits": row["val_hits"],
                },
                step=row["epoch"],
            )
    return task


def _hashtag(
    cfg: EvaluateConfig,
    encoders: dict[str, FrozenEncoder],
    model_dirs: dict[str, Path],
    ingested: Path,
    graph_embeddings: Path,
) -> TaskResult:
    """Hashtag prediction on the ingested tweets, split by build_graph's holdout."""
    from twhin_bert.evaluate.hashtag import run_hashtag
    from twhin_bert.evaluate.sample import read_tweets

    columns = ["tweet_id", "text", "lang", "hashtags"]
    tweets = read_tweets(Ingested(ingested), columns, cfg.max_tweets, cfg.seed).to_pandas()
    return run_hashtag(
        tweets,
        encoders=encoders,
        model_dirs=model_dirs,
        cfg=cfg,
        rule=holdout.read_rule(graph_embeddings),
    )
