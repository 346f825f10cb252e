"""KFP component of the embed_graph stage (thin: typed artifacts -> ``run_embed_graph``)."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def embed_graph(
    config: str,
    graph: Input[Dataset],
    pipeline_run_id: str,
    graph_embeddings: Output[Model],
    metrics: Output[Metrics],
):
    """Trains TwHIN user/tweet embeddings with PyTorch-BigGraph and evaluates them.

    Args:
        config: The embed_graph section of the pipeline config, as JSON.
        graph: The build_graph stage's folder.
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        graph_embeddings: Folder with the user and tweet vectors (float32) and their ids, the
            relation vectors, the model description, the holdout rule and PBG's
            ``checkpoint/`` (a retried task resumes from it); layout:
            ``twhin_bert.common.artifacts.GraphEmbeddings``.
        metrics: Link prediction under ``link_prediction.`` (MRR, Hits@1, Hits@10) beside
            the popularity baseline, PBG edges/s and the time spent outside PBG training.
    """
    from pathlib import Path

    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.embed_graph.pbg import run_embed_graph

    result = run_embed_graph(
        EmbedGraphConfig.model_validate_json(config),
        graph_embeddings.path,
        pipeline_run_id=pipeline_run_id,
        graph=Path(graph.path),
    )
    log_kfp_metrics(metrics, result)
