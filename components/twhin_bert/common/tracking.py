"""MLflow helpers: one parent run per pipeline run, one nested run per stage.

The tracking store is ``MLFLOW_TRACKING_URI`` when set; otherwise a SQLite store and an
artifact folder under the work dir (``TWHIN_BERT_HOME``, default ``./twhin-bert-runs``).
Stages run in separate processes (KFP tasks), so they find their pipeline's parent run by
the tag ``twhin_bert.pipeline_run_id`` instead of sharing Python state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from twhin_bert import __version__
from twhin_bert.common.config import flatten
from twhin_bert.common.kfp_utils import flat_numeric
from twhin_bert.common.redact import redact_mapping

log = logging.getLogger(__name__)

PIPELINE_RUN_TAG = "twhin_bert.pipeline_run_id"
DEFAULT_EXPERIMENT = "twhin-bert"


def work_home() -> Path:
    """The local work dir for runs, the default MLflow store and artifacts."""
    return Path(os.environ.get("TWHIN_BERT_HOME", "twhin-bert-runs")).resolve()


def default_tracking_uri(home: Path | None = None) -> str:
    """``sqlite:///<home>/mlflow.db`` — the embedded default store."""
    home = home or work_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def configure(home: Path | None = None) -> str:
    """Points MLflow at ``MLFLOW_TRACKING_URI`` or the embedded SQLite default.

    Returns:
        The tracking URI in use.
    """
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(home)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    if mlflow.get_experiment_by_name(name) is None and uri.startswith("sqlite:"):
        # Keep artifacts beside the SQLite store, not in the process's cwd.
        artifacts = (home or work_home()) / "mlartifacts"
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # created concurrently
            mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(name)
    return uri


def git_sha() -> str:
    """The git SHA of the code: ``TWHIN_BERT_GIT_SHA`` (set in images) or ``git rev-parse``."""
    sha = os.environ.get("TWHIN_BERT_GIT_SHA")
    if sha:
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def run_tags(stage: str, pipeline_run_id: str | None) -> dict[str, str]:
    """The tags every stage run carries: stage, code version, git SHA, image, pipeline run."""
    tags = {
        "twhin_bert.stage": stage,
        "twhin_bert.version": __version__,
        "twhin_bert.git_sha": git_sha(),
        "twhin_bert.image": os.environ.get("TWHIN_BERT_IMAGE", "local"),
    }
    if pipeline_run_id:
        tags[PIPELINE_RUN_TAG] = pipeline_run_id
    return tags


def param_key(key: str) -> str:
    """An MLflow-safe param/metric name (MLflow allows letters, digits, _ - . space : /)."""
    return re.sub(r"[^\w\-. :/]", lambda m: "_at_" if m.group() == "@" else "_", key)


def _parent_run_id(pipeline_run_id: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(
        os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    )
    query = (
        f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}' and tags.`twhin_bert.stage` = 'pipeline'"
    )
    found = mlflow.search_runs(
        [exp.experiment_id], filter_string=query, order_by=["start_time ASC"], output_format="list"
    )
    if found:
        return found[0].info.run_id
    client = mlflow.MlflowClient()
    run = client.create_run(
        exp.experiment_id,
        run_name=f"pipeline-{pipeline_run_id}",
        tags=run_tags("pipeline", pipeline_run_id),
    )
    return run.info.run_id


@contextlib.contextmanager
def stage_run(
    stage: str, config: BaseModel | None = None, pipeline_run_id: str | None = None
) -> Iterator[Any]:
    """Opens the MLflow run of one stage (nested under its pipeline run when given one).

    Logs the flattened config as params, the resolved config as ``config.yaml`` and the
    standard tags. Set ``TWHIN_BERT_TRACKING=0`` to run without MLflow.

    Args:
        stage: Stage name (``ingest``, ``pretrain``, ...).
        config: The stage's resolved config.
        pipeline_run_id: The KFP run id; stages of one pipeline run share a parent run.

    Yields:
        The active ``mlflow.ActiveRun`` (or None when tracking is off).
    """
    if os.environ.get("TWHIN_BERT_TRACKING", "1") == "0":
        yield None
        return
    import mlflow

    configure()
    parent = _parent_run_id(pipeline_run_id) if pipeline_run_id else None
    with mlflow.start_run(
        run_name=stage,
        parent_run_id=parent,
        nested=parent is not None,
        tags=run_tags(stage, pipeline_run_id),
        log_system_metrics=os.environ.get("TWHIN_BERT_SYSTEM_METRICS", "0") == "1",
    ) as run:
        if config is not None:
            dumped = redact_mapping(config.model_dump(mode="json"))
            params = {param_key(k): str(v)[:500] for k, v in flatten(dumped).items()}
            for i in range(0, len(params), 90):  # MLflow takes at most 100 params per call
                mlflow.log_params(dict(list(params.items())[i : i + 90]))
            mlflow.log_text(yaml.safe_dump(dumped, sort_keys=False), "config.yaml")
        yield run


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Logs the numeric leaves of a (nested) metrics mapping to the active run, if any."""
    import mlflow

    if mlflow.active_run() is None:
        return
    flat = {param_key(k): v for k, v in flat_numeric(metrics).items()}
    if flat:
        mlflow.log_metrics(flat, step=step)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Logs a file or folder to the active run, if any."""
    import mlflow

    if mlflow.active_run() is None:
        return
    p = Path(path)
    if p.is_dir():
        mlflow.log_artifacts(str(p), artifact_path)
    else:
        mlflow.log_artifact(str(p), artifact_path)


def log_text(text: str, name: str) -> None:
    """Logs a text artifact to the active run, if any."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_text(text, name)


def tmp_dir() -> str:
    """A scratch folder for artifacts about to be logged."""
    return tempfile.mkdtemp(prefix="twhin-mlflow-")
