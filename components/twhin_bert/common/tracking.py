"""MLflow helpers: one parent run per pipeline run, one nested run per stage.

The tracking store is ``MLFLOW_TRACKING_URI`` when set; otherwise a SQLite store and an
artifact folder under the work dir (``TWHIN_BERT_HOME``, default ``./twhin-bert-runs``).
Stages run in separate processes (KFP tasks), so they find their pipeline's parent run by
the tag ``twhin_bert.pipeline_run_id`` instead of sharing Python state.

Every MLflow call is bounded in time: :func:`apply_http_defaults` (called by
:func:`configure`, so by the CLI and the stage wrapper alike) sets MLflow's HTTP timeout
and retry budget unless the user set them, so an unreachable tracking server fails in
about a minute at most instead of MLflow's default of several minutes of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from twhin_bert import __version__
from twhin_bert.common.metrics import flat_numeric, flatten, mlflow_key
from twhin_bert.common.redact import redact_mapping, uri_has_credentials

log = logging.getLogger(__name__)

PIPELINE_RUN_TAG = "twhin_bert.pipeline_run_id"
# The pipeline run's id when no ``pipeline_run_id`` is passed: set on cluster tasks from the
# pod's run label (pipelines/runtime.py), by the local runner for its tasks.
PIPELINE_RUN_ENV = "TWHIN_BERT_PIPELINE_RUN_ID"
STAGE_TAG = "twhin_bert.stage"
OUT_DIR_TAG = "twhin_bert.out_dir"
HOST_TAG = "twhin_bert.host"
PID_TAG = "twhin_bert.pid"
DEFAULT_EXPERIMENT = "twhin-bert"

# MLflow's defaults (120 s per request, 7 retries with exponential backoff) let one call to
# an unreachable server hang for minutes. Worst case with these: 3 tries x 20 s + ~3 s of
# backoff; a refused connection fails in about 3 s.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def apply_http_defaults() -> None:
    """Bounds MLflow's HTTP timeout and retries (``HTTP_DEFAULTS``); values already set win.

    urllib3 logs each retry as a warning ("Retrying ... after connection broken"); an
    unreachable server would print one per attempt before our one-line error, so only its
    errors are shown.
    """
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


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

    apply_http_defaults()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(home)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    if uri_has_credentials(uri):  # else MLflow prints "View run at <uri>" with the password
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
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
        STAGE_TAG: stage,
        "twhin_bert.version": __version__,
        "twhin_bert.git_sha": git_sha(),
        "twhin_bert.image": os.environ.get("TWHIN_BERT_IMAGE", "local"),
    }
    if pipeline_run_id:
        tags[PIPELINE_RUN_TAG] = pipeline_run_id
    return tags


def _parent_run_id(pipeline_run_id: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(
        os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    )
    query = f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}' and tags.`{STAGE_TAG}` = 'pipeline'"
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def end_stale_runs(stage: str, out_dir: str | Path) -> list[str]:
    """Ends as KILLED the RUNNING runs of ``stage`` that wrote to ``out_dir`` and are dead.

    A stage killed by a signal (OOM, pod eviction, ``kill -9``) cannot end its own run, so
    it would stay RUNNING forever; the next start of the same stage on the same output
    folder ends it. A run whose process is still alive on this host is left alone.

    Args:
        stage: Stage name.
        out_dir: The stage's output folder (as recorded in the ``twhin_bert.out_dir`` tag).

    Returns:
        The ids of the runs ended.
    """
    import mlflow

    exp = mlflow.get_experiment_by_name(
        os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    )
    if exp is None:
        return []
    out = str(Path(out_dir).resolve()).replace("'", "\\'")
    query = (
        f"tags.`{STAGE_TAG}` = '{stage}' and tags.`{OUT_DIR_TAG}` = '{out}' "
        "and attributes.status = 'RUNNING'"
    )
    client = mlflow.MlflowClient()
    ended = []
    for run in client.search_runs([exp.experiment_id], filter_string=query):
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit() and _pid_alive(int(pid)):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        log.info(
            "%s: ended its stale run %s (left RUNNING by a killed process)", stage, run.info.run_id
        )
        ended.append(run.info.run_id)
    return ended


@contextlib.contextmanager
def stage_run(
    stage: str,
    config: BaseModel | None = None,
    pipeline_run_id: str | None = None,
    out_dir: str | Path | None = None,
) -> Iterator[Any]:
    """Opens the MLflow run of one stage (nested under its pipeline run when given one).

    Logs the flattened config as params, the resolved config as ``config.yaml`` and the
    standard tags. Set ``TWHIN_BERT_TRACKING=0`` to run without MLflow. The run ends
    FINISHED, FAILED when the stage raises, or KILLED on Ctrl-C; runs of earlier processes
    killed outright are ended KILLED when the stage starts again (:func:`end_stale_runs`).

    Args:
        stage: Stage name (``ingest``, ``pretrain``, ...).
        config: The stage's resolved config.
        pipeline_run_id: The KFP run id; stages of one pipeline run share a parent run.
            None or '': ``$TWHIN_BERT_PIPELINE_RUN_ID``, if set.
        out_dir: The stage's output folder: tagged on the run, and the key under which stale
            runs of the same stage are found.

    Yields:
        The active ``mlflow.ActiveRun`` (or None when tracking is off).
    """
    if os.environ.get("TWHIN_BERT_TRACKING", "1") == "0":
        yield None
        return
    import mlflow

    configure()
    pipeline_run_id = pipeline_run_id or os.environ.get(PIPELINE_RUN_ENV) or None
    tags = run_tags(stage, pipeline_run_id)
    if out_dir is not None:
        end_stale_runs(stage, out_dir)
        tags |= {
            OUT_DIR_TAG: str(Path(out_dir).resolve()),
            HOST_TAG: socket.gethostname(),
            PID_TAG: str(os.getpid()),
        }
    parent = _parent_run_id(pipeline_run_id) if pipeline_run_id else None
    with mlflow.start_run(
        run_name=stage,
        parent_run_id=parent,
        nested=parent is not None,
        tags=tags,
        log_system_metrics=os.environ.get("TWHIN_BERT_SYSTEM_METRICS", "0") == "1",
    ) as run:
        if config is not None:
            dumped = redact_mapping(config.model_dump(mode="json"))
            params = {mlflow_key(k): str(v)[:500] for k, v in flatten(dumped).items()}
            for i in range(0, len(params), 90):  # MLflow takes at most 100 params per call
                mlflow.log_params(dict(list(params.items())[i : i + 90]))
            mlflow.log_text(yaml.safe_dump(dumped, sort_keys=False), "config.yaml")
        try:
            yield run
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")  # start_run's exit would record FAILED
            raise


def _active_mlflow() -> Any:
    """The ``mlflow`` module when a run is active, else None. MLflow is not imported for
    the question: with tracking off nothing has imported it, so no run can be active, and
    the import alone costs a stage about a second of CPU."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return None
    return mlflow


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Logs the numeric leaves of a (nested) metrics mapping to the active run, if any."""
    mlflow = _active_mlflow()
    if mlflow is None:
        return
    flat = {mlflow_key(k): v for k, v in flat_numeric(metrics).items()}
    if flat:
        mlflow.log_metrics(flat, step=step)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Logs a file or folder to the active run, if any."""
    mlflow = _active_mlflow()
    if mlflow is None:
        return
    p = Path(path)
    if p.is_dir():
        mlflow.log_artifacts(str(p), artifact_path)
    else:
        mlflow.log_artifact(str(p), artifact_path)


def log_text(text: str, name: str) -> None:
    """Logs a text artifact to the active run, if any."""
    mlflow = _active_mlflow()
    if mlflow is not None:
        mlflow.log_text(text, name)
