"""KFP component of the build_graph stage (thin: typed artifacts -> ``run_build_graph``)."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_graph(
    config: str,
    ingested: Input[Dataset],
    pipeline_run_id: str,
    graph: Output[Dataset],
    metrics: Output[Metrics],
    window_end: str = "",
    schedule_time: str = "",
    create_time: str = "",
) -> str:
    """Builds the TwHIN (users, tweets, one relation per engagement type) in PBG's format.

    Args:
        config: The build_graph section of the pipeline config, as JSON.
        ingested: The ingest stage's folder (its engagements).
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        window_end: End of a rolling ``window_days`` window (ISO 8601); '' = the next one.
        schedule_time: A recurring run's scheduled time (KFP placeholder), or ''.
        create_time: The run's creation time (KFP placeholder), or ''.
        graph: Folder with ``pbg/`` (entity counts, partitioned HDF5 edge buckets for
            ``train/``, ``valid/``, ``test/``), the entities table, relations, graph metadata,
            holdout rule and the stage's metrics (layout:
            ``twhin_bert.common.artifacts.Graph``).
        metrics: Entity and edge counts, split sizes, rows dropped by reason.

    Returns:
        The data window's label (``start/end``), for the registry's ``data_window`` tag.
    """
    from pathlib import Path

    from twhin_bert.build_graph.config import BuildGraphConfig
    from twhin_bert.build_graph.graph import first_instant, run_build_graph
    from twhin_bert.common.kfp_utils import log_kfp_metrics

    result = run_build_graph(
        BuildGraphConfig.model_validate_json(config),
        graph.path,
        pipeline_run_id=pipeline_run_id,
        ingested=Path(ingested.path),
        window_end=first_instant(window_end, schedule_time, create_time),
    )
    log_kfp_metrics(metrics, result)
    return result["window"]
