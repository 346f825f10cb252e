"""KFP component of the embed stage (thin: typed artifacts -> ``run_embed``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def embed(
    config: str,
    model: Input[Model],
    ingested: Input[Dataset],
    pipeline_run_id: str,
    embeddings: Output[Dataset],
    metrics: Output[Metrics],
):
    """Batch-embeds tweets into CLS, mean (non-special tokens) and Combined (CLS ‖ mean) vectors.

    Args:
        config: The embed section of the pipeline config, as JSON.
        model: A Hugging Face encoder folder (pretrain's output, or any BERT/XLM-R-style one).
        ingested: The ingest folder (its tweets) or a tweets Parquet file.
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        embeddings: Folder with the CLS, mean and Combined arrays (float32) and the tweet
            ids (row i of each array is tweet ``id[i]``); layout:
            ``twhin_bert.common.artifacts.Embeddings``.
        metrics: Tweets, tweets per second, padding share.
    """
    from pathlib import Path

    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.embed.config import EmbedConfig
    from twhin_bert.embed.embed import run_embed

    result = run_embed(
        EmbedConfig.model_validate_json(config),
        embeddings.path,
        pipeline_run_id=pipeline_run_id,
        model=Path(model.path),
        ingested=Path(ingested.path),
    )
    log_kfp_metrics(metrics, result)
