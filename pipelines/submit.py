"""Compile, submit and schedule the pipelines on a Kubeflow Pipelines endpoint, and manage
the runs and recurring runs they start.

Everything here goes through the KFP SDK's ``kfp.Client`` (API v2beta1). A ``Connection``
names the endpoint, the Kubeflow namespace (multi-user mode) and how to authenticate:

``token``
    a bearer token from ``$KFP_TOKEN`` or the file named by ``$KFP_TOKEN_FILE`` (e.g. a
    token minted with ``kubectl create token``, used through a port-forward);
``iap``
    a Google-signed OIDC ID token for the audience of the Identity-Aware Proxy (or any OIDC
    front end that accepts Google ID tokens), fetched and refreshed by google-auth from
    ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account key) or the metadata server
    (GCE, GKE Workload Identity, Cloud Run);
``sa-token``
    the projected Kubernetes service-account token of the pod we run in (audience
    ``pipelines.kubeflow.org``), re-read before every request, as kfp does in-cluster;
``none``
    no credential: a ``kubectl port-forward`` to ``ml-pipeline-ui`` of a standalone install.

Uploads are idempotent: a pipeline version is named after the SHA-256 of the compiled
package, so submitting the same spec twice reuses the version. A schedule is identified by
its name within its experiment: creating it again replaces it instead of adding a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from kfp import compiler
from kfp.client.token_credentials_base import TokenCredentialsBase
from twhin_bert import __version__
from twhin_bert.common.config import ConfigError
from twhin_bert.common.errors import ExitCode
from twhin_bert_pipelines.config import PipelineConfig
from twhin_bert_pipelines.pretrain_pipeline import build_pretrain_pipeline
from twhin_bert_pipelines.retrain_pipeline import build_retrain_pipeline

log = logging.getLogger(__name__)

PipelineName = Literal["pretrain", "retrain"]
BUILDERS: dict[str, Callable[[PipelineConfig], Callable]] = {
    "pretrain": build_pretrain_pipeline,
    "retrain": build_retrain_pipeline,
}
AuthMode = Literal["token", "iap", "sa-token", "none"]
AUTH_MODES: tuple[str, ...] = get_args(AuthMode)

# The states after which a run never changes again (v2beta1 RuntimeState).
TERMINAL_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
# The audience kfp's in-cluster clients use for projected service-account tokens.
SA_TOKEN_AUDIENCE = "pipelines.kubeflow.org"
# ``runs wait``: consecutive failed polls (unreachable, 5xx) tolerated before giving up.
WAIT_RETRIES = 5


class KfpError(Exception):
    """A request to Kubeflow Pipelines failed; ``exit_code`` says how the CLI exits."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.REMOTE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunNotSucceeded(KfpError):
    """A run ended without success, or ``wait`` gave up before it ended."""

    def __init__(self, message: str, run: dict[str, Any]) -> None:
        super().__init__(message, ExitCode.RUN_FAILED)
        self.run = run


def build(cfg: PipelineConfig, which: PipelineName = "pretrain") -> Callable:
    """The pipeline function ``which`` for ``cfg``."""
    try:
        return BUILDERS[which](cfg)
    except KeyError:
        raise ValueError(f"unknown pipeline {which!r}; choose one of {sorted(BUILDERS)}") from None


def compile_pipeline(
    cfg: PipelineConfig, out: str | Path, which: PipelineName = "pretrain", *, strict: bool = False
) -> Path:
    """Compiles pipeline ``which`` to a KFP IR YAML file (pipeline root: ``cluster.pipeline_root``).

    Args:
        strict: Refuse a config that is not ready for a cluster
            (:meth:`PipelineConfig.cluster_problems`: placeholders, no gs:// root, a tracking
            store that is not a server, missing timeouts or GPU limits); otherwise they are
            logged as warnings.

    Returns:
        The written file.

    Raises:
        ConfigError: ``strict`` and the config has cluster problems (one line, all of them).
    """
    problems = cfg.cluster_problems()
    if problems and strict:
        raise ConfigError(f"not ready for a cluster: {'; '.join(problems)}")
    for problem in problems:
        log.warning("not ready for a cluster: %s", problem)
    if strict:
        check_base_model(cfg)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        build(cfg, which), str(out), pipeline_parameters=None, type_check=True
    )
    return out


def check_base_model(cfg: PipelineConfig) -> None:
    """Reads a gs:// ``pretrain.base_model``'s ``config.json`` before a run is sent, so that a
    wrong URI or an unsupported family fails now rather than after hours of ingest and graph
    training (a local or ``pkg:`` base was checked when the config loaded).

    Raises:
        ConfigError: The model is missing or of an unsupported family (one line).
    """
    from twhin_bert.common import base_model, io

    ref = cfg.pretrain.base_model
    if not ref or not io.is_gcs(ref):
        return
    try:
        kind = base_model.check_remote(ref)
    except base_model.BaseModelError as e:
        raise ConfigError(str(e)) from e
    except Exception as e:  # no credentials or no network here: the pipeline's account may read it
        log.warning("pretrain.base_model %s: not checked before submitting (%s)", ref, e)
        return
    log.info("pretrain.base_model %s: %s (%s)", ref, kind, base_model.FAMILIES[kind])


_CRON_FIELD = re.compile(r"^[\d*/,\-?LW#A-Za-z]+$")


def to_kfp_cron(expr: str) -> str:
    """Normalises a cron expression to KFP's 6-field form (seconds first).

    A standard 5-field expression (``min hour dom month dow``) gets ``0`` seconds prepended;
    a 6-field one is kept.

    Raises:
        ValueError: Not 5 or 6 fields, or a field with characters cron does not use.
    """
    fields = expr.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"cron {expr!r}: expected 5 fields (min hour day month weekday) or KFP's 6 "
            "(seconds first), e.g. '0 0 3 * * *' for 03:00 daily"
        )
    return " ".join(["0", *fields] if len(fields) == 5 else fields)


# ----------------------------------------------------------------------------- connection
@dataclass(frozen=True)
class Connection:
    """Where Kubeflow Pipelines is and how to authenticate to it.

    Attributes:
        host: The KFP API endpoint, e.g. ``https://kubeflow.example.com/pipeline`` (behind
            IAP), ``http://localhost:8080`` (port-forward) or
            ``http://ml-pipeline.kubeflow.svc.cluster.local:8888`` (in-cluster).
        namespace: The Kubeflow profile namespace (multi-user mode); None on a standalone
            install. Sent with every upload, experiment, list and schedule.
        auth: One of ``AUTH_MODES``; None picks ``token`` when ``$KFP_TOKEN`` or
            ``$KFP_TOKEN_FILE`` is set, else ``none``.
        iap_audience: The OAuth client ID of the IAP in front of Kubeflow (``iap`` only).
    """

    host: str
    namespace: str | None = None
    auth: str | None = None
    iap_audience: str | None = None


def _bearer_token() -> str | None:
    token = os.environ.get("KFP_TOKEN")
    path = os.environ.get("KFP_TOKEN_FILE")
    if token:
        return token.strip()
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as e:
            raise ValueError(f"KFP_TOKEN_FILE {path}: cannot read the token ({e.strerror})") from e
    return None


class GoogleIdTokenCredentials(TokenCredentialsBase):
    """Bearer credentials for kfp: a Google-signed OIDC ID token for one audience.

    google-auth finds the identity (``GOOGLE_APPLICATION_CREDENTIALS`` naming a
    service-account key, else the metadata server of GCE/GKE/Cloud Run) and signs a
    request for an ID token whose ``aud`` is the IAP's OAuth client ID. The token lives an
    hour; it is refreshed before a request when it has expired, so ``runs wait`` outlives it.
    """

    def __init__(self, audience: str) -> None:
        self.audience = audience
        self._credentials: Any = None

    def token(self) -> str:
        """The current ID token, fetched or refreshed when needed.

        Raises:
            ValueError: google-auth found no identity to sign with.
            KfpError: The token endpoint refused or could not be reached.
        """
        import google.auth.exceptions
        import google.auth.transport.requests
        import google.oauth2.id_token

        request = google.auth.transport.requests.Request()
        try:
            if self._credentials is None:
                self._credentials = google.oauth2.id_token.fetch_id_token_credentials(
                    self.audience, request=request
                )
            if not self._credentials.valid:
                self._credentials.refresh(request)
        except google.auth.exceptions.DefaultCredentialsError as e:
            raise ValueError(
                "--auth iap: no Google identity to sign an ID token with; set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file or run on "
                f"GCE/GKE with Workload Identity ({str(e).splitlines()[0]})"
            ) from e
        except google.auth.exceptions.GoogleAuthError as e:
            raise KfpError(
                f"--auth iap: fetching an ID token for audience {self.audience} failed: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        return str(self._credentials.token)

    def refresh_api_key_hook(self, config: Any) -> None:
        """Called by kfp's API client before each request: sets the bearer token.

        Args:
            config: The ``kfp_server_api.Configuration`` of the client.
        """
        config.api_key["authorization"] = self.token()


def resolve_auth(conn: Connection) -> str:
    """The authentication mode for ``conn`` (see ``Connection.auth``).

    Raises:
        ValueError: An unknown mode.
    """
    mode = conn.auth or ("token" if _bearer_token() else "none")
    if mode not in AUTH_MODES:
        raise ValueError(f"--auth {mode!r}: expected one of {', '.join(AUTH_MODES)}")
    return mode


def _credentials(conn: Connection) -> dict[str, Any]:
    """The ``kfp.Client`` keyword arguments that authenticate ``conn``."""
    mode = resolve_auth(conn)
    if mode == "token":
        token = _bearer_token()
        if not token:
            raise ValueError(
                "--auth token: set KFP_TOKEN or KFP_TOKEN_FILE (a file with the token)"
            )
        return {"existing_token": token}
    if mode == "iap":
        audience = conn.iap_audience or os.environ.get("KFP_IAP_AUDIENCE")
        if not audience:
            raise ValueError(
                "--auth iap needs the IAP's OAuth client ID as audience: --iap-audience or "
                "KFP_IAP_AUDIENCE (e.g. 1234-abc.apps.googleusercontent.com)"
            )
        return {"credentials": GoogleIdTokenCredentials(audience)}
    if mode == "sa-token":
        from kfp import client as kfp_client
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        path = os.environ.get(kfp_client.KF_PIPELINES_SA_TOKEN_ENV) or (
            kfp_client.KF_PIPELINES_SA_TOKEN_PATH
        )
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"--auth sa-token: no service-account token at {path}; project one into the pod "
                f"(serviceAccountToken volume, audience {SA_TOKEN_AUDIENCE}) or set "
                f"{kfp_client.KF_PIPELINES_SA_TOKEN_ENV}"
            )
        return {"credentials": ServiceAccountTokenVolumeCredentials(path)}
    return {}


@contextlib.contextmanager
def _api(conn: Connection, what: str) -> Iterator[None]:
    """Turns kfp's request failures into one-line ``KfpError``s; kfp's prints go to stderr.

    kfp prints links ("Run details: ...") on stdout, which would corrupt the JSON the CLI
    prints there.
    """
    import kfp_server_api
    import urllib3.exceptions

    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    except kfp_server_api.ApiException as e:
        detail = _api_message(e)
        code = ExitCode.BAD_INPUT if e.status in (400, 404, 409) else ExitCode.REMOTE
        hint = ""
        if e.status in (401, 403):
            hint = f" (check --auth, now {resolve_auth(conn)}, and --namespace)"
        raise KfpError(
            f"KFP at {conn.host}: {what} failed: HTTP {e.status} {e.reason or ''}".rstrip()
            + (f": {detail}" if detail else "")
            + hint,
            code,
        ) from e
    except urllib3.exceptions.HTTPError as e:
        reason = getattr(e, "reason", None) or e
        errno_text = re.search(r"\[Errno -?\d+\] ([^'\"]+)", str(reason))
        raise KfpError(
            f"cannot reach Kubeflow Pipelines at {conn.host} ({what}): "
            + (errno_text[1].strip() if errno_text else type(reason).__name__)
        ) from e


def _api_message(e: Any) -> str:
    """The first line of the server's error message in an ApiException's JSON body."""
    try:
        body = json.loads(e.body or "")
    except (TypeError, ValueError):
        return ""
    msg = (
        str(body.get("message") or body.get("error_message") or "")
        if isinstance(body, dict)
        else ""
    )
    return msg.splitlines()[0] if msg else ""


def connect(conn: Connection) -> Any:
    """A ``kfp.Client`` for ``conn``.

    Returns:
        The client.

    Raises:
        ValueError: A missing credential or audience (one line).
        KfpError: The endpoint is unreachable or refused.
    """
    import kfp

    auth = _credentials(conn)
    try:
        with _api(conn, "connect"):
            return kfp.Client(host=conn.host, namespace=conn.namespace, **auth)
    except TimeoutError as e:  # kfp's health check (no namespace given) failed 5 times
        raise KfpError(f"KFP at {conn.host}: the health check failed ({e})") from e


# ----------------------------------------------------------------------------- uploads
def _eq(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def spec_digest(package: Path) -> str:
    """The SHA-256 of a compiled pipeline package (its first 12 hex digits name versions)."""
    return hashlib.sha256(package.read_bytes()).hexdigest()


def upload(client: Any, conn: Connection, package: Path, name: str) -> tuple[str, str, bool]:
    """Uploads ``package`` as pipeline ``name`` in ``conn.namespace``, once per content.

    The pipeline is created empty (``CreatePipeline``) and every spec is added as a version
    named ``<name>-<package version>-<sha12>``: the first submit makes one version, and a
    submit of an unchanged spec finds that version by name and uploads nothing.

    Returns:
        ``(pipeline_id, version_id, uploaded)``; ``uploaded`` is False when reused.
    """
    import kfp_server_api

    digest = spec_digest(package)
    version_name = f"{name}-{__version__}-{digest[:12]}"
    with _api(conn, f"find pipeline {name}"):
        found = client.list_pipelines(filter=_eq("display_name", name), namespace=conn.namespace)
    pipelines = found.pipelines or []
    if len(pipelines) > 1:
        raise KfpError(
            f"{len(pipelines)} pipelines named {name!r}; delete all but one", ExitCode.BAD_INPUT
        )
    if pipelines:
        pipeline_id = pipelines[0].pipeline_id
        with _api(conn, f"find version {version_name}"):
            versions = client.list_pipeline_versions(
                pipeline_id, filter=_eq("display_name", version_name)
            )
        if versions.pipeline_versions:
            return pipeline_id, versions.pipeline_versions[0].pipeline_version_id, False
    else:
        with _api(conn, f"create pipeline {name}"):
            pipeline = client.pipelines.pipeline_service_create_pipeline(
                kfp_server_api.V2beta1Pipeline(
                    display_name=name,
                    description=f"TwHIN-BERT {name} (twhin-bert {__version__})",
                    namespace=conn.namespace,
                )
            )
        pipeline_id = pipeline.pipeline_id
    with _api(conn, f"upload version {version_name}"):
        version = client.upload_pipeline_version(
            str(package),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=f"sha256:{digest}",
        )
    return pipeline_id, version.pipeline_version_id, True


def _experiment(client: Any, conn: Connection, name: str) -> str:
    with _api(conn, f"experiment {name}"):
        return client.create_experiment(name, namespace=conn.namespace).experiment_id


def cluster_service_account(
    cfg: PipelineConfig, conn: Connection, service_account: str | None
) -> str:
    """The service account a run's pods use (``service_account`` or ``cluster.service_account``),
    after checking that the run goes to the namespace the config was set up for.

    Raises:
        ConfigError: ``conn.namespace`` (multi-user mode: where the pods will run) is not
            ``cluster.namespace``, where the service account, claim and Secrets live.
    """
    if conn.namespace and conn.namespace != cfg.cluster.namespace:
        raise ConfigError(
            f"--namespace {conn.namespace}: the run's pods would run there, but "
            f"cluster.namespace is {cfg.cluster.namespace} (its service account, checkpoint "
            "claim and Secrets are set up there); make them the same"
        )
    return service_account or cfg.cluster.service_account


def submit(
    cfg: PipelineConfig,
    conn: Connection,
    *,
    which: PipelineName = "pretrain",
    experiment: str = "twhin-bert",
    run_name: str | None = None,
    params: dict[str, Any] | None = None,
    service_account: str | None = None,
    work_dir: Path = Path("."),
) -> dict[str, Any]:
    """Compiles, uploads (a new version only when the spec changed) and starts one run.

    A config that is not ready for a cluster (``PipelineConfig.cluster_problems``) is refused
    before anything is sent.

    Returns:
        ``{"run_id", "pipeline_id", "version_id", "uploaded", "experiment_id"}``.
    """
    service_account = cluster_service_account(cfg, conn, service_account)
    package = compile_pipeline(cfg, work_dir / f"{cfg.name}-{which}.yaml", which, strict=True)
    client = connect(conn)
    pipeline_id, version_id, uploaded = upload(client, conn, package, f"{cfg.name}-{which}")
    experiment_id = _experiment(client, conn, experiment)
    with _api(conn, "create run"):
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name or f"{cfg.name}-{which}",
            params=params or {},
            pipeline_id=pipeline_id,
            version_id=version_id,
            service_account=service_account,
        )
    return {
        "run_id": run.run_id,
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "uploaded": uploaded,
        "experiment_id": experiment_id,
    }


# ----------------------------------------------------------------------------- runs
def _state(obj: Any) -> str:
    return str(obj or "RUNTIME_STATE_UNSPECIFIED")


def run_summary(run: Any) -> dict[str, Any]:
    """The fields of a v2beta1 run that ``runs list|status`` show.

    Returns:
        ``run_id``, ``name``, ``state``, ``created_at``, ``finished_at``, ``experiment_id``,
        ``error`` and ``tasks`` (name -> state, from the run details when present).
    """
    tasks = {}
    for t in getattr(run.run_details, "task_details", None) or []:
        tasks[t.display_name or t.task_id] = _state(t.state)
    err = run.error.message if run.error is not None and run.error.message else None
    finished = (
        run.finished_at.isoformat() if run.finished_at and run.finished_at.year > 1970 else None
    )
    return {
        "run_id": run.run_id,
        "name": run.display_name,
        "state": _state(run.state),
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": finished,
        "experiment_id": run.experiment_id,
        "error": err,
        "tasks": tasks,
    }


def list_runs(
    conn: Connection, *, experiment: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest runs in the namespace (or of one experiment), newest first."""
    client = connect(conn)
    experiment_id = None
    if experiment:
        with _api(conn, f"find experiment {experiment}"):
            exps = client.list_experiments(
                filter=_eq("display_name", experiment), namespace=conn.namespace
            )
        if not exps.experiments:
            raise KfpError(f"no experiment named {experiment!r}", ExitCode.BAD_INPUT)
        experiment_id = exps.experiments[0].experiment_id
    with _api(conn, "list runs"):
        res = client.list_runs(
            page_size=limit,
            sort_by="created_at desc",
            experiment_id=experiment_id,
            namespace=conn.namespace,
        )
    return [run_summary(r) for r in res.runs or []]


def run_status(conn: Connection, run_id: str) -> dict[str, Any]:
    """One run's state, timing, error and per-task states."""
    client = connect(conn)
    with _api(conn, f"get run {run_id}"):
        return run_summary(client.get_run(run_id))


def wait_run(
    conn: Connection,
    run_id: str,
    *,
    timeout_s: float = 7 * 24 * 3600,
    interval_s: float = 30.0,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Polls a run until it ends (SUCCEEDED, SKIPPED, FAILED, CANCELED).

    ``kfp.Client.wait_for_run_completion`` does not stop on CANCELED, so the loop is ours.

    Args:
        conn: The endpoint.
        run_id: The run.
        timeout_s: Give up after this many seconds.
        interval_s: Seconds between polls.
        on_change: Called with the summary whenever the state changes.

    Returns:
        The final summary of a run that SUCCEEDED (or was SKIPPED).

    Raises:
        RunNotSucceeded: The run FAILED or was CANCELED, or the timeout passed first.
    """
    client = connect(conn)
    deadline = time.monotonic() + timeout_s
    last = None
    failures = 0
    while True:
        try:
            with _api(conn, f"get run {run_id}"):
                summary = run_summary(client.get_run(run_id))
            failures = 0
        except KfpError as e:
            # A multi-day wait outlives a restarting API server or a network blip: only
            # WAIT_RETRIES failed polls in a row end it.
            failures += 1
            if e.exit_code != ExitCode.REMOTE or failures > WAIT_RETRIES:
                raise
            time.sleep(interval_s)
            continue
        if summary["state"] != last and on_change is not None:
            on_change(summary)
        last = summary["state"]
        if last in ("SUCCEEDED", "SKIPPED"):
            return summary
        if last in TERMINAL_STATES:
            why = f": {summary['error']}" if summary["error"] else ""
            raise RunNotSucceeded(f"run {run_id} ended {last}{why}", summary)
        if time.monotonic() + interval_s > deadline:
            raise RunNotSucceeded(
                f"run {run_id} still {last} after {timeout_s:g} s (it keeps running)", summary
            )
        time.sleep(interval_s)


def cancel_run(conn: Connection, run_id: str) -> dict[str, Any]:
    """Terminates a run (its state goes CANCELING, then CANCELED)."""
    client = connect(conn)
    with _api(conn, f"cancel run {run_id}"):
        client.terminate_run(run_id)
        return run_summary(client.get_run(run_id))


def retry_run(conn: Connection, run_id: str) -> dict[str, Any]:
    """Retries a failed run in place: its failed tasks run again, finished ones are kept.

    ``kfp.Client`` has no method for it; the generated API (``client.runs``) has.
    """
    client = connect(conn)
    with _api(conn, f"retry run {run_id}"):
        client.runs.run_service_retry_run(run_id=run_id)
        return run_summary(client.get_run(run_id))


# ----------------------------------------------------------------------------- schedules
def schedule_summary(rr: Any) -> dict[str, Any]:
    """The fields of a v2beta1 recurring run that ``schedule list`` shows."""
    trigger = rr.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    ref = rr.pipeline_version_reference
    return {
        "recurring_run_id": rr.recurring_run_id,
        "name": rr.display_name,
        "status": str(rr.status or rr.mode or ""),
        "cron": cron,
        "version_id": ref.pipeline_version_id if ref else None,
        "experiment_id": rr.experiment_id,
        "created_at": rr.created_at.isoformat() if rr.created_at else None,
    }


def _same_schedule(rr: Any, want: dict[str, Any]) -> bool:
    s = schedule_summary(rr)
    params = (rr.runtime_config.parameters if rr.runtime_config else None) or {}
    return (
        s["cron"] == want["cron"]
        and s["version_id"] == want["version_id"]
        and params == want["params"]
        and str(rr.max_concurrency) == str(want["max_concurrency"])
        and (rr.service_account or None) == (want["service_account"] or None)
    )


def schedule(
    cfg: PipelineConfig,
    conn: Connection,
    cron: str,
    *,
    experiment: str = "twhin-bert",
    job_name: str | None = None,
    params: dict[str, Any] | None = None,
    max_concurrency: int = 1,
    service_account: str | None = None,
    work_dir: Path = Path("."),
    window_days: float | None = None,
) -> dict[str, Any]:
    """Creates or updates the recurring run of the retrain pipeline named ``job_name``.

    Each run trains on the ``build_graph.window_days`` days of engagements before its
    scheduled time (``window_days`` here overrides the config's); ingest re-reads the inputs.

    A schedule is one name in one experiment. The same settings again change nothing. New
    settings replace the old schedule (KFP v2beta1 cannot update one) in the order that
    neither loses the schedule nor fires it twice: pause the old, create the new, delete the
    old; when creating fails, the old one is resumed and the error raised.

    Returns:
        ``{"recurring_run_id", "action" (created | updated | unchanged), "replaced" (ids),
        "cron", "pipeline_id", "version_id", "experiment_id"}``.

    Raises:
        ValueError: No window: every scheduled run would train on the same engagements.
    """
    if window_days is not None:
        cfg = cfg.model_copy(
            update={"build_graph": cfg.build_graph.model_copy(update={"window_days": window_days})}
        )
    if cfg.build_graph.window_days is None:
        raise ValueError(
            "scheduled retraining needs a rolling window: set build_graph.window_days in the "
            "config (or pass window_days), else every run trains on the same engagements"
        )
    if cfg.build_graph.start is not None or cfg.build_graph.end is not None:
        raise ValueError("build_graph.start/end are fixed dates: a schedule uses window_days")
    kfp_cron = to_kfp_cron(cron)
    name = job_name or f"{cfg.name}-retrain-schedule"
    service_account = cluster_service_account(cfg, conn, service_account)
    package = compile_pipeline(cfg, work_dir / f"{cfg.name}-retrain.yaml", "retrain", strict=True)
    client = connect(conn)
    pipeline_id, version_id, _ = upload(client, conn, package, f"{cfg.name}-retrain")
    experiment_id = _experiment(client, conn, experiment)
    want = {
        "cron": kfp_cron,
        "version_id": version_id,
        "params": params or {},
        "max_concurrency": max_concurrency,
        "service_account": service_account,
    }
    existing = _schedules_named(client, conn, name, experiment_id=experiment_id)
    result = {
        "cron": kfp_cron,
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "experiment_id": experiment_id,
        "replaced": [],
    }
    if len(existing) == 1 and _same_schedule(existing[0], want):
        return {**result, "recurring_run_id": existing[0].recurring_run_id, "action": "unchanged"}
    paused = []
    for rr in existing:
        if str(rr.status) != "DISABLED":
            with _api(conn, f"pause schedule {rr.recurring_run_id}"):
                client.disable_recurring_run(rr.recurring_run_id)
            paused.append(rr.recurring_run_id)
    try:
        with _api(conn, f"create schedule {name}"):
            job = client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=name,
                cron_expression=kfp_cron,
                max_concurrency=max_concurrency,
                no_catchup=True,
                params=params or {},
                pipeline_id=pipeline_id,
                version_id=version_id,
                service_account=service_account,
            )
    except BaseException:
        for rid in paused:  # leave the old schedule as it was
            with _api(conn, f"resume schedule {rid}"):
                client.enable_recurring_run(rid)
        raise
    for rr in existing:
        with _api(conn, f"delete replaced schedule {rr.recurring_run_id}"):
            client.delete_recurring_run(rr.recurring_run_id)
    return {
        **result,
        "recurring_run_id": job.recurring_run_id,
        "action": "updated" if existing else "created",
        "replaced": [rr.recurring_run_id for rr in existing],
    }


def _schedules_named(
    client: Any, conn: Connection, name: str, *, experiment_id: str | None = None
) -> list[Any]:
    with _api(conn, f"find schedule {name}"):
        res = client.list_recurring_runs(
            page_size=100,
            experiment_id=experiment_id,
            namespace=conn.namespace,
            filter=_eq("display_name", name),
        )
    # The filter is the server's; keep only exact names in case it is ignored.
    return [rr for rr in res.recurring_runs or [] if rr.display_name == name]


def list_schedules(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """The recurring runs in the namespace, newest first."""
    client = connect(conn)
    with _api(conn, "list schedules"):
        res = client.list_recurring_runs(
            page_size=limit, sort_by="created_at desc", namespace=conn.namespace
        )
    return [schedule_summary(rr) for rr in res.recurring_runs or []]


def _resolve_schedule(client: Any, conn: Connection, name_or_id: str) -> list[Any]:
    import kfp_server_api

    named = _schedules_named(client, conn, name_or_id)
    if named:
        return named
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return [client.get_recurring_run(name_or_id)]
    except kfp_server_api.ApiException as e:
        if e.status in (400, 404):
            raise KfpError(
                f"no schedule named {name_or_id!r} (nor with that id)", ExitCode.BAD_INPUT
            ) from e
        with _api(conn, f"find schedule {name_or_id}"):
            raise


def set_schedule(
    conn: Connection, name_or_id: str, action: Literal["pause", "resume", "delete"]
) -> list[dict[str, Any]]:
    """Pauses, resumes or deletes the recurring run(s) with this name (or this id).

    Returns:
        The summaries of the schedules acted on, as they were before.
    """
    client = connect(conn)
    targets = _resolve_schedule(client, conn, name_or_id)
    call = {
        "pause": client.disable_recurring_run,
        "resume": client.enable_recurring_run,
        "delete": client.delete_recurring_run,
    }[action]
    for rr in targets:
        with _api(conn, f"{action} schedule {rr.recurring_run_id}"):
            call(rr.recurring_run_id)
    return [schedule_summary(rr) for rr in targets]
