"""KFP components of the register_model stage (thin: typed artifacts -> the logic).

``register_model`` registers, tags and gates the pipeline's model; ``resolve_champion`` fetches
the current champion as a Hugging Face folder for the retrain pipeline's warm start.
"""

# No `from __future__ import annotations`: KFP reads the real annotation objects.

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_model(
    config: str,
    model: Input[Model],
    evaluation: Input[Dataset],
    pipeline_run_id: str,
    pipeline_config: str,
    data_window: str,
    registration: Output[Artifact],
    metrics: Output[Metrics],
    evaluated_champion: str = "",
):
    """Registers the model in the MLflow Model Registry as `challenger` and runs the promotion gate.

    Args:
        config: The register_model section of the pipeline config, as JSON.
        model: The exported Hugging Face model folder (weights, config, tokenizer).
        evaluation: The evaluate stage's folder; its primary metrics feed the gate.
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run, tags the version).
        pipeline_config: The whole resolved pipeline config, as JSON (logged with the model).
        data_window: The engagement window the model was trained on.
        registration: Folder with the registration record (name, version, aliases, gate
            verdict; ``twhin_bert.common.artifacts.Registration``).
        metrics: Version, gate passed (0/1), promoted (0/1) and the key metrics.
        evaluated_champion: The champion version evaluated beside the model ('' = none): the
            gate then compares with its numbers from this run's split.
    """
    import json
    from pathlib import Path

    from twhin_bert.common.artifacts import Registration
    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.register_model.config import RegisterModelConfig
    from twhin_bert.register_model.register import run_register_model

    result = run_register_model(
        RegisterModelConfig.model_validate_json(config),
        registration.path,
        pipeline_run_id=pipeline_run_id,
        model=Path(model.path),
        evaluation=Path(evaluation.path),
        pipeline_config=json.loads(pipeline_config),
        data_window=data_window,
        evaluated_champion=evaluated_champion or None,
    )
    info = Registration(registration.path).read()
    registration.metadata.update(
        {k: info[k] for k in ("name", "version", "model_uri", "verdict", "promoted")}
    )
    log_kfp_metrics(metrics, result)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def resolve_champion(model_name: str, champion: Output[Model]) -> str:
    """Downloads the registered model's current `champion` as a Hugging Face folder.

    Args:
        model_name: Registered model name in the MLflow Model Registry.
        champion: Folder loadable by AutoModel / AutoTokenizer (the warm start of retraining).

    Returns:
        The champion's version.
    """
    from pathlib import Path

    from twhin_bert.register_model.registry import resolve_champion as fetch_champion

    info = fetch_champion(model_name, Path(champion.path))
    champion.metadata.update({k: info[k] for k in ("name", "version", "run_id", "model_uri")})
    return info["version"]
