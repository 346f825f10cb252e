"""KFP component of the mine_pairs stage (thin: typed artifacts -> ``run_mine_pairs``)."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def mine_pairs(
    config: str,
    ingested: Input[Dataset],
    graph_embeddings: Input[Model],
    pipeline_run_id: str,
    parallel_tweets: str,
    truth: str,
    pairs: Output[Dataset],
    metrics: Output[Metrics],
):
    """Mines positive tweet pairs: FAISS neighbours of the graph embeddings (social), tweets
    sharing a frequent hashtag (HICL) and parallel tweets (TPP), mixed by configured weights.

    Args:
        config: The mine_pairs section of the pipeline config, as JSON.
        ingested: The ingest folder (its tweets).
        graph_embeddings: The embed_graph folder (its tweet vectors and ids).
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        parallel_tweets: Parallel-tweets JSONL (local path or gs:// URI); empty = none.
        truth: Planted-truth Parquet ``(tweet_id, topic)`` of demo data; empty = none.
        pairs: Folder with the pairs Parquet (schema ``pairs``) and the stage's metrics
            (layout: ``twhin_bert.common.artifacts.Pairs``).
        metrics: Pairs per source, index used, recall@k against exact search, truth precision.
    """
    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.mine_pairs.config import MinePairsConfig
    from twhin_bert.mine_pairs.mine import run_mine_pairs

    result = run_mine_pairs(
        MinePairsConfig.model_validate_json(config),
        pairs.path,
        pipeline_run_id=pipeline_run_id,
        ingested=ingested.path,
        graph_embeddings=graph_embeddings.path,
        parallel=parallel_tweets or None,
        truth=truth or None,
    )
    log_kfp_metrics(metrics, result)
