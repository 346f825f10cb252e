"""KFP component of the ingest stage (thin: typed artifacts -> ``run_ingest``)."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def ingest(
    config: str,
    tweets: list,
    engagements: list,
    pipeline_run_id: str,
    ingested: Output[Dataset],
    metrics: Output[Metrics],
):
    """Validates, normalises and deduplicates raw tweets and engagements.

    Args:
        config: The ingest section of the pipeline config, as JSON.
        tweets: Tweet inputs: local paths or gs:// URIs of files, folders or globs
            (JSONL[.gz], CSV, Parquet, or TweetEval-style ``*_text.txt``).
        engagements: Engagement inputs, same forms.
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        ingested: Folder with the tweets, engagements and quarantine Parquet files and
            the stage's metrics (layout: ``twhin_bert.common.artifacts.Ingested``).
        metrics: Rows in / out / quarantined by reason.
    """
    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.ingest.config import IngestConfig
    from twhin_bert.ingest.ingest import run_ingest

    result = run_ingest(
        IngestConfig.model_validate_json(config),
        ingested.path,
        pipeline_run_id=pipeline_run_id,
        tweets=list(tweets),
        engagements=list(engagements),
    )
    log_kfp_metrics(metrics, result)
