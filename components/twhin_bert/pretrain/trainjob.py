"""Multi-node pretraining on Kubeflow Trainer v2: one ``TrainJob`` per pretrain task.

With ``pretrain.num_nodes`` > 1 the KFP pretrain task no longer trains: it is a small launcher
pod that stages its input artifacts on the shared checkpoint volume, creates a ``TrainJob``
(``trainer.kubeflow.org/v1alpha1``) that runs ``num_nodes`` pods of ``num_gpus`` GPUs each
against a torch ``ClusterTrainingRuntime`` (``torch-distributed`` by default), follows the job's
status conditions, and finishes with it: its model and metrics are copied back from the volume
into the task's output artifacts; a failed job fails the task; a cancelled task (SIGTERM)
deletes the job.

Each node runs this package's own launcher, ``python -m twhin_bert.pretrain.train --torchrun``
(``torch.distributed.run``), whose arguments come from the ``PET_NNODES``, ``PET_NPROC_PER_NODE``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT`` variables the Trainer's torch
plugin sets on every node (torchrun reads ``PET_<ARG>`` for each of its options), so the same
command serves every node. Checkpoints go to ``checkpoint_dir`` on the shared volume
(ReadWriteMany): every rank writes its ZeRO shard there and every rank resumes from it.

:func:`render_trainjob` is pure (config in, manifest out; tests validate it against the CRD's
schema); :func:`follow` is the loop over a :class:`TrainJobApi`; :func:`run_trainjob` is what
the pretrain stage calls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from twhin_bert.common.artifacts import Ingested, Pairs
from twhin_bert.common.config import StrictModel
from twhin_bert.pretrain.config import PretrainConfig

if TYPE_CHECKING:
    from twhin_bert.pretrain.checkpoints import CheckpointFolder
    from twhin_bert.pretrain.inputs import PretrainInputs

log = logging.getLogger(__name__)

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
#: The replicated job and container name of Kubeflow Trainer's torch runtimes.
NODE = "node"
#: Where the pipeline puts the :class:`NodeSpec` (JSON) for the launcher task to read.
NODE_SPEC_ENV = "TWHIN_BERT_TRAINJOB_NODE"
#: Owner of this package's runtime patch (TrainJob spec.runtimePatches[].manager).
PATCH_MANAGER = "twhin-bert.github.io/pretrain"
#: The launcher command every node runs (torchrun's options come from PET_* variables).
NODE_COMMAND = ["python", "-m", "twhin_bert.pretrain.train", "--torchrun"]
#: Env of the node pods that the Trainer owns; a NodeSpec may not set them.
RESERVED_ENV = frozenset(
    {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}
)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class NodeSpec(StrictModel):
    """How each TrainJob node runs: the pipeline fills it from ``resources.pretrain``."""

    namespace: str = Field(description="Namespace of the TrainJob (the pipeline's namespace).")
    image: str = Field(description="Image of the node pods (the pretrain task's image).")
    runtime: str = Field(
        "torch-distributed", description="ClusterTrainingRuntime with the torch ML policy."
    )
    service_account: str | None = Field(None, description="Service account of the node pods.")
    gpu_resource: str = Field("nvidia.com/gpu", description="Extended resource of one GPU.")
    cpu_request: str | None = Field(None, description="CPU request per node.")
    cpu_limit: str | None = Field(None, description="CPU limit per node.")
    memory_request: str | None = Field(None, description="Memory request per node.")
    memory_limit: str | None = Field(None, description="Memory limit per node.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels.")
    tolerations: list[dict[str, str]] = Field(
        default_factory=list, description="Pod tolerations (Kubernetes field names)."
    )
    shm_size: str | None = Field(None, description="Memory-backed /dev/shm size (NCCL).")
    pvc_mounts: dict[str, str] = Field(
        default_factory=dict, description="Claims to mount, name -> path (the checkpoint volume)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Plain environment variables.")
    secret_env: dict[str, tuple[str, str]] = Field(
        default_factory=dict, description="Env from Secrets, name -> (secret, key)."
    )
    secret_volumes: dict[str, str] = Field(
        default_factory=dict, description="Secrets mounted as files, name -> path."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the node pods.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the node pods."
    )
    timeout_s: int | None = Field(None, ge=1, description="The job's activeDeadlineSeconds.")
    run_as_user: int = Field(1000, description="UID of the image's user (runAsNonRoot).")


def job_name(objective: str, key: str) -> str:
    """The TrainJob's name: one per checkpoint folder (objective + content fingerprint), so a
    retried launcher finds the job its previous attempt created (an RFC 1035 label)."""
    name = f"twhin-bert-{objective.replace('_', '-')}-{key[:12]}".lower()
    return re.sub(r"[^a-z0-9-]", "-", name)[:63].rstrip("-")


def render_trainjob(
    cfg: PretrainConfig, node: NodeSpec, *, name: str, args: list[str]
) -> dict[str, Any]:
    """The TrainJob manifest of a multi-node pretrain (pure: no cluster needed).

    Args:
        cfg: The pretrain config: ``num_nodes`` nodes of ``num_gpus`` GPUs (one rank each).
        node: Image, resources, scheduling, volumes and env of each node.
        name: The job's name (:func:`job_name`).
        args: Arguments after :data:`NODE_COMMAND` (torchrun's ``-m twhin_bert.pretrain.train``
            and the stage's own ``--config ... --out ...``).

    Returns:
        The manifest as a dict (``kubectl apply``-able, CustomObjectsApi ``body``).
    """
    clash = RESERVED_ENV & (set(node.env) | set(node.secret_env))
    if clash:
        raise ValueError(f"TrainJob env: {sorted(clash)} are set by the Trainer's torch runtime")
    limits: dict[str, Any] = {node.gpu_resource: cfg.num_gpus}
    requests: dict[str, Any] = {node.gpu_resource: cfg.num_gpus}
    for key, req, lim in (
        ("cpu", node.cpu_request, node.cpu_limit),
        ("memory", node.memory_request, node.memory_limit),
    ):
        if req:
            requests[key] = req
        if lim:
            limits[key] = lim
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(node.env.items())]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}}
        for k, (s, key) in sorted(node.secret_env.items())
    ]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, (claim, path) in enumerate(sorted(node.pvc_mounts.items())):
        volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"pvc-{i}", "mountPath": path})
    for i, (secret, path) in enumerate(sorted(node.secret_volumes.items())):
        volumes.append({"name": f"secret-{i}", "secret": {"secretName": secret}})
        mounts.append({"name": f"secret-{i}", "mountPath": path, "readOnly": True})
    if node.shm_size:
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": node.shm_size}}
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    pod_spec: dict[str, Any] = {
        "securityContext": {"runAsUser": node.run_as_user, "runAsNonRoot": True},
        "containers": [{"name": NODE, "volumeMounts": mounts}],
        "volumes": volumes,
    }
    if node.node_selector:
        pod_spec["nodeSelector"] = dict(node.node_selector)
    if node.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in node.tolerations]
    if node.service_account:
        pod_spec["serviceAccountName"] = node.service_account
    pod_template: dict[str, Any] = {"spec": pod_spec}
    if node.labels or node.annotations:
        pod_template["metadata"] = {
            k: v for k, v in (("labels", node.labels), ("annotations", node.annotations)) if v
        }
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": node.runtime},
        "trainer": {
            "image": node.image,
            "command": list(NODE_COMMAND),
            "args": list(args),
            "numNodes": cfg.num_nodes,
            "numProcPerNode": cfg.num_gpus,
            "resourcesPerNode": {"requests": requests, "limits": limits},
            "env": env,
        },
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {"name": NODE, "template": {"spec": {"template": pod_template}}}
                            ]
                        }
                    }
                },
            }
        ],
    }
    if node.timeout_s:
        spec["activeDeadlineSeconds"] = node.timeout_s
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {
            "name": name,
            "namespace": node.namespace,
            "labels": {"app.kubernetes.io/part-of": "twhin-bert", **node.labels},
        },
        "spec": spec,
    }


def job_state(job: dict[str, Any]) -> tuple[str, str]:
    """``(state, message)`` of a TrainJob from its status conditions: ``Complete`` or
    ``Failed`` (terminal, condition status True), ``Suspended``, else ``Running`` (the
    Trainer has no running condition: ``Created`` is set once its JobSet exists)."""
    conds = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []}
    for state in ("Failed", "Complete", "Suspended"):
        c = conds.get(state)
        if c and c.get("status") == "True":
            return state, f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
    created = conds.get("Created")
    return "Running", (created or {}).get("message", "") or "waiting for the Trainer"


class TrainJobApi:
    """create / get / delete of TrainJobs in one namespace (the ``kubernetes`` client)."""

    def __init__(self, namespace: str, api_client: Any = None) -> None:
        """Connects with ``api_client``, else the pod's service account (in cluster) or the
        local kubeconfig."""
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.namespace = namespace
        self._api = client.CustomObjectsApi(api_client)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates the job; returns the stored object."""
        return self._api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )

    def get(self, name: str) -> dict[str, Any] | None:
        """The job, or None when there is none of that name."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def delete(self, name: str) -> None:
        """Deletes the job and, in the foreground, its pods."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._api.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, propagation_policy="Foreground"
            )
        except ApiException as e:
            if e.status != 404:
                raise


def start(
    api: TrainJobApi,
    body: dict[str, Any],
    prepare: Callable[[], None] | None = None,
    *,
    poll_s: float = 2.0,
) -> bool:
    """Creates the job, or adopts a running one of the same name (a retried launcher); a
    finished one of that name (an earlier attempt's) is deleted and created anew: training
    resumes from the checkpoints on the shared volume.

    Args:
        api: The TrainJob API of the namespace.
        body: The manifest (:func:`render_trainjob`).
        prepare: Called right before a create, never while an adopted job's nodes run (the
            staging of the inputs they read).
        poll_s: Wait between checks that a replaced job is gone.

    Returns:
        True when the job was created, False when a running one was adopted.
    """
    name = body["metadata"]["name"]
    old = api.get(name)
    if old is not None:
        state, _ = job_state(old)
        if state in ("Running", "Suspended"):
            log.info("pretrain: following the existing TrainJob %s/%s", api.namespace, name)
            return False
        log.info("pretrain: replacing the %s TrainJob %s/%s", state, api.namespace, name)
        api.delete(name)
        while api.get(name) is not None:
            time.sleep(poll_s)
    if prepare is not None:
        prepare()
    api.create(body)
    log.info("pretrain: created TrainJob %s/%s", api.namespace, name)
    return True


def follow(
    api: TrainJobApi,
    name: str,
    *,
    poll_s: float = 30.0,
    progress: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """Waits for the job to finish, logging each state change and ``progress()``.

    Returns:
        The completed job.

    Raises:
        RuntimeError: The job failed, or disappeared.
    """
    last = None
    while True:
        job = api.get(name)
        if job is None:
            raise RuntimeError(f"pretrain: TrainJob {api.namespace}/{name} was deleted")
        state, message = job_state(job)
        if (state, message) != last:
            log.info("pretrain: TrainJob %s/%s %s (%s)", api.namespace, name, state, message)
            last = (state, message)
        if state == "Complete":
            return job
        if state == "Failed":
            raise RuntimeError(f"pretrain: TrainJob {api.namespace}/{name} failed: {message}")
        if progress is not None:
            log.info("pretrain: TrainJob %s %s", name, progress())
        time.sleep(poll_s)


@contextlib.contextmanager
def deleted_on_term(api: TrainJobApi, name: str) -> Iterator[None]:
    """Deletes the job if this process gets SIGTERM (a cancelled KFP run stops its pods so)."""

    def _on_term(signum: int, frame: Any) -> None:
        log.info("pretrain: cancelled: deleting TrainJob %s/%s", api.namespace, name)
        api.delete(name)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def own_namespace(default: str) -> str:
    """The pod's namespace (its service account's), else ``default``."""
    return _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.is_file() else default


def stage_inputs(
    job_dir: Path,
    *,
    tweets: Path,
    tokenizer: Path,
    pairs: Path | None,
    init_from: Path | None,
) -> dict[str, Path]:
    """Copies the task's input artifacts into ``job_dir/inputs`` on the shared volume (the nodes
    have no KFP launcher to download them); returns the copies' paths. Copies keep the
    contents, so the checkpoint fingerprint the nodes compute is the launcher's."""
    inputs = job_dir / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    (inputs / "ingested").mkdir(parents=True)
    out = {"ingested": inputs / "ingested"}
    shutil.copy2(tweets, out["ingested"] / tweets.name)
    out["tokenizer"] = Path(shutil.copytree(tokenizer, inputs / "tokenizer"))
    if pairs is not None:
        (inputs / "pairs").mkdir()
        shutil.copy2(pairs, inputs / "pairs" / pairs.name)
        out["pairs"] = inputs / "pairs"
    if init_from is not None:
        out["init_from"] = Path(shutil.copytree(init_from, inputs / "init_from"))
    return out


def node_spec_from_env() -> NodeSpec:
    """The :class:`NodeSpec` the pipeline compiled into the launcher task's env.

    Raises:
        ValueError: It is missing (num_nodes > 1 outside a pipeline compiled for it).
    """
    raw = os.environ.get(NODE_SPEC_ENV)
    if not raw:
        raise ValueError(
            f"pretrain: num_nodes > 1 runs a Kubeflow TrainJob, described by ${NODE_SPEC_ENV}, "
            "which only a pipeline compiled with num_nodes > 1 sets; set num_nodes: 1 to train "
            "in this process"
        )
    return NodeSpec.model_validate(json.loads(raw))


def run_trainjob(
    cfg: PretrainConfig,
    out_dir: Path,
    inputs: PretrainInputs,
    ckpt: CheckpointFolder,
    *,
    api: TrainJobApi | None = None,
    poll_s: float = 30.0,
) -> dict[str, Any]:
    """The pretrain stage with ``num_nodes`` > 1: stage the inputs beside the checkpoint
    folder, run the TrainJob, copy its model into ``out_dir``; returns rank 0's metrics.

    The job's folder ``<checkpoint folder>.job`` on the shared volume holds the staged inputs,
    the config and the nodes' output folder; it is removed once the model is copied out.

    Args:
        cfg: The pretrain config (``num_nodes`` > 1, ``checkpoint_dir`` set).
        out_dir: The task's (staging) output folder.
        inputs: The task's resolved inputs.
        ckpt: The run's checkpoint folder (on the shared volume) and its fingerprint (names
            the job).
        api: The TrainJob API; default: the pod's namespace through its service account.
        poll_s: Seconds between status checks.

    Raises:
        RuntimeError: The job failed or left no result.
    """
    from twhin_bert.common import tracking
    from twhin_bert.pretrain import train as T

    node = node_spec_from_env()
    job_dir = ckpt.path.with_name(ckpt.path.name + ".job")
    work_out = job_dir / "out"
    staged = inputs.under(job_dir / "inputs")
    cfg_file = job_dir / "config.json"
    args = [
        "-m", "twhin_bert.pretrain.train", "--config", str(cfg_file), "--out", str(work_out),
        *staged.argv(),
    ]  # fmt: skip
    env = dict(node.env)
    for name in (tracking.PIPELINE_RUN_ENV, "TWHIN_BERT_IMAGE", "TWHIN_BERT_GIT_SHA"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    with contextlib.suppress(ImportError):
        import mlflow

        if mlflow.active_run() is not None:  # rank 0 logs into this task's MLflow run
            env[T.MLFLOW_RUN_ENV] = mlflow.active_run().info.run_id
    node = node.model_copy(update={"namespace": own_namespace(node.namespace), "env": env})
    name = job_name(inputs.objective, ckpt.fingerprint)
    body = render_trainjob(cfg, node, name=name, args=args)
    api = api or TrainJobApi(node.namespace)

    def prepare() -> None:
        stage_inputs(
            job_dir,
            tweets=Ingested(inputs.ingested).tweets_path(),
            tokenizer=inputs.tokenizer,
            pairs=Pairs(inputs.pairs).pairs_path() if inputs.pairs is not None else None,
            init_from=inputs.init_from,
        )
        shutil.rmtree(work_out, ignore_errors=True)
        work_out.mkdir(parents=True)
        cfg_file.write_text(cfg.model_dump_json())

    def progress() -> str:
        done = max((step for step, _ in ckpt.tags()), default=0)
        return f"newest checkpoint: step {done} of {cfg.training(inputs.objective).steps}"

    with deleted_on_term(api, name):
        start(api, body, prepare)
        follow(api, name, poll_s=poll_s, progress=progress)
    result = work_out / T.RESULT_FILE
    if not result.is_file():
        raise RuntimeError(
            f"pretrain: TrainJob {node.namespace}/{name} completed but left no {result}"
        )
    metrics = json.loads(result.read_text())
    result.unlink()
    shutil.copytree(work_out, out_dir, dirs_exist_ok=True)
    shutil.rmtree(job_dir)
    return metrics
