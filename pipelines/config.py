"""The pipeline config: every stage's section, the inputs, and each task's runtime.

One YAML file (``pipelines/configs/tiny.yaml`` or ``prod.yaml``, or your own) configures a
whole pipeline run. The same code scales from a laptop to GPU node pools through this file:
``resources`` sets each stage's image, CPU/memory, accelerator type and count, node selector,
tolerations, shared memory, retries and caching.
"""

from __future__ import annotations

import re
from importlib import resources as importlib_resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from twhin_bert import STAGES
from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.common.config import ConfigError, K8sQuantity, StrictModel, read_mapping
from twhin_bert.common.kfp_utils import BASE_IMAGE, GPU_IMAGE
from twhin_bert.common.redact import is_secret_name, redact_text, uri_has_credentials
from twhin_bert.embed.config import EmbedConfig
from twhin_bert.embed_graph.config import EmbedGraphConfig
from twhin_bert.evaluate.config import EvaluateConfig
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.mine_pairs.config import MinePairsConfig
from twhin_bert.pretrain.config import PretrainConfig
from twhin_bert.register_model.config import RegisterModelConfig
from twhin_bert.train_tokenizer.config import TrainTokenizerConfig

BUILTIN_CONFIGS = ("tiny", "tiny-minilm", "prod")
# Every task a pipeline can run, by the name of its resources section.
TASKS = (*STAGES, "resolve_champion")


class Toleration(StrictModel):
    """A Kubernetes toleration (for tainted GPU or spot node pools)."""

    key: str = Field(description="Taint key, e.g. nvidia.com/gpu or cloud.google.com/gke-spot.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal or Exists.")
    value: str | None = Field(None, description="Taint value (with operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        "NoSchedule", description="Taint effect to tolerate (None: all effects)."
    )


# Kubernetes names: a Secret is a DNS subdomain, a Secret data key is [-._a-zA-Z0-9]+, an
# environment variable a C identifier (what a shell can read back).
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USE_SECRET_ENV = (
    "credentials reach tasks only through Kubernetes Secrets: move it to "
    "secret_env: {NAME: {secret: SECRET_NAME, key: KEY}} (docs/DEPLOY.md)"
)


class SecretRef(StrictModel):
    """One key of a Kubernetes Secret, given to a task as an environment variable."""

    model_config = ConfigDict(hide_input_in_errors=True)

    secret: str = Field(
        description="Name of the Kubernetes Secret in the pipeline's namespace, e.g. "
        "'mlflow-client' (create it with kubectl create secret generic)."
    )
    key: str = Field(description="Data key inside the Secret, e.g. 'password'.")
    optional: bool = Field(
        False, description="Start the task even when the Secret or key is missing."
    )

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, v: str) -> str:
        if not _K8S_NAME.fullmatch(v):
            raise ValueError(f"secret {v!r}: not a Kubernetes Secret name (lowercase a-z0-9 . -)")
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _SECRET_KEY.fullmatch(v):
            raise ValueError(f"key {v!r}: not a Kubernetes Secret data key (a-z A-Z 0-9 - . _)")
        return v


class TaskResources(StrictModel):
    """Where and how one stage's task runs on the cluster (ignored by the local runner)."""

    # A refused env entry must not be echoed back in the error message.
    model_config = ConfigDict(hide_input_in_errors=True)

    image: str | None = Field(
        None,
        description="Container image; None: the pipeline's `image`, or `gpu_image` when the "
        "task asks for accelerators.",
    )
    cpu_request: K8sQuantity | None = Field(None, description="CPU request, e.g. '4'.")
    cpu_limit: K8sQuantity | None = Field(None, description="CPU limit, e.g. '8'.")
    memory_request: K8sQuantity | None = Field(None, description="Memory request, e.g. '16G'.")
    memory_limit: K8sQuantity | None = Field(None, description="Memory limit, e.g. '32G'.")
    accelerator_type: str | None = Field(
        None, description="Accelerator resource, e.g. 'nvidia.com/gpu'."
    )
    accelerator_count: int = Field(0, ge=0, description="Accelerators per task (GPUs of one pod).")
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels, e.g. {'cloud.google.com/gke-accelerator': 'nvidia-h100-80gb'}.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations for tainted node pools."
    )
    shm_size: K8sQuantity | None = Field(
        None, description="Size of a memory-backed /dev/shm (NCCL needs it for multi-GPU)."
    )
    pvc_mounts: dict[str, str] = Field(
        default_factory=dict,
        description="PersistentVolumeClaims to mount, name -> mount path (e.g. for checkpoints).",
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Pod labels, e.g. Kueue's {'kueue.x-k8s.io/queue-name': 'gpu', "
        "'kueue.x-k8s.io/priority-class': 'training'} (KFP cannot set priorityClassName).",
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Pod annotations, e.g. {'cluster-autoscaler.kubernetes.io/safe-to-evict': "
        "'false'} for long training pods.",
    )
    timeout_s: int | None = Field(
        None, ge=1, description="Kill the pod after this many seconds (activeDeadlineSeconds)."
    )
    retries: int = Field(1, ge=0, description="Retries for transient failures (KFP set_retry).")
    retry_backoff_s: int = Field(
        60,
        ge=0,
        description="Wait before the first retry; doubled (retry_backoff_factor) each time.",
    )
    retry_backoff_factor: float = Field(2.0, ge=1.0, description="Growth of the retry wait.")
    retry_window_s: int = Field(
        3600,
        ge=1,
        description="Retries start only within this many seconds of the FIRST attempt's start "
        "(KFP's backoff_max_duration, Argo's retryStrategy maxDuration; kubeflow/pipelines "
        "issue 13452): a task that may run for days needs a window of days.",
    )
    scratch_size: K8sQuantity | None = Field(
        None,
        description="Size limit of a node-disk emptyDir mounted where the KFP launcher stages "
        "the task's input and output artifacts (/gcs for a gs:// pipeline root): large artifacts "
        "land on the node's (local SSD) ephemeral storage with a bound, not on the image's "
        "writable layer. KFP has no per-task ephemeral-storage request: the namespace's "
        "LimitRange sets one (manifests/pipeline/limitrange.yaml).",
    )
    caching: bool = Field(True, description="Let KFP reuse an identical earlier execution.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables with non-secret values. They are written "
        "into the compiled pipeline and logged to MLflow, so a name that looks like a "
        "credential (PASSWORD, TOKEN, SECRET, CREDENTIAL, ..._KEY) or a value that is a URI "
        "with a password is refused: use secret_env.",
    )
    secret_env: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Environment variables read from Kubernetes Secrets, name -> {secret, "
        "key}, e.g. {MLFLOW_TRACKING_PASSWORD: {secret: mlflow-client, key: password}}. "
        "The compiled pipeline and MLflow record only the Secret's name and key.",
    )
    secret_volumes: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes Secrets to mount as files, name -> mount path (e.g. a "
        "service-account key; point an env variable such as GOOGLE_APPLICATION_CREDENTIALS "
        "at a file under the mount path).",
    )

    @model_validator(mode="after")
    def _accelerator(self) -> TaskResources:
        if self.accelerator_count > 0 and not self.accelerator_type:
            raise ValueError("accelerator_count > 0 needs accelerator_type (e.g. nvidia.com/gpu)")
        return self

    @model_validator(mode="after")
    def _no_literal_secrets(self) -> TaskResources:
        # Messages never repeat a value: they end up on the terminal and in CI logs.
        mounts = [PurePosixPath(m) for m in self.secret_volumes.values()]
        for name, value in self.env.items():
            in_mount = any(PurePosixPath(value).is_relative_to(m) for m in mounts)
            if is_secret_name(name) and not in_mount:
                raise ValueError(f"env.{name}: looks like a credential; {_USE_SECRET_ENV}")
            if uri_has_credentials(value):
                raise ValueError(
                    f"env.{name}: the value is a URI with a password or token "
                    f"({redact_text(value)}); {_USE_SECRET_ENV}"
                )
        for name in self.secret_env:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"secret_env.{name}: not an environment variable name")
            if name in self.env:
                raise ValueError(f"{name} is set in both env and secret_env; keep one")
        for secret, mount in self.secret_volumes.items():
            if not _K8S_NAME.fullmatch(secret):
                raise ValueError(f"secret_volumes.{secret}: not a Kubernetes Secret name")
            if not mount.startswith("/"):
                raise ValueError(f"secret_volumes.{secret}: mount path {mount!r} is not absolute")
        return self


# Stages whose processes share memory through /dev/shm: PyTorch-BigGraph's HOGWILD workers
# (embed_graph) keep the embedding tables there, and the torchrun ranks of pretrain and embed
# exchange tensors through it (NCCL, gloo). Their default /dev/shm: SHM_FRACTION of the
# memory request, at least SHM_MIN (a memory-backed emptyDir counts against the pod's memory).
SHM_STAGES = ("embed_graph", "pretrain", "embed")
SHM_FRACTION = 0.25
SHM_MIN = "1Gi"
# The values prod.yaml ships with, which an operator must replace before a cluster run.
PLACEHOLDERS = ("YOUR_BUCKET", "PROJECT_ID", "REGION")
# Where the KFP launcher stages artifacts of a pipeline root on each object store.
_STAGING_DIRS = {"gs://": "/gcs", "s3://": "/s3", "minio://": "/minio"}
_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
          "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
          "Ei": 2**60}  # fmt: skip


def quantity_value(quantity: str) -> float:
    """A Kubernetes quantity as a plain number ('16Gi' -> 17179869184.0, '500m' -> 0.5)."""
    m = re.fullmatch(r"([0-9.]+)(?:[eE]([+-]?\d+)|([a-zA-Z]*))", quantity)
    if not m or (m.group(3) or "") not in _UNITS:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    if m.group(2) is not None:
        return float(m.group(1)) * 10 ** int(m.group(2))
    return float(m.group(1)) * _UNITS[m.group(3) or ""]


def staging_dir(pipeline_root: str) -> str | None:
    """Where the KFP launcher stages artifacts for ``pipeline_root`` in the task's container."""
    return next((d for p, d in _STAGING_DIRS.items() if pipeline_root.startswith(p)), None)


class ClusterConfig(StrictModel):
    """Where on the Kubeflow cluster the pipeline's pods run, as whom, and where artifacts go."""

    namespace: str = Field(
        "kubeflow",
        description="Namespace the task pods run in: 'kubeflow' on a standalone KFP install, "
        "your profile namespace on multi-user Kubeflow. The service account, the checkpoint "
        "claim and the Secrets the tasks use must exist there (manifests/overlays/kfp-standalone "
        "or kubeflow-profile).",
    )
    service_account: str = Field(
        "twhin-bert-pipeline",
        description="Kubernetes service account of the task pods (submit/schedule's default; "
        "Workload Identity maps it to the Google service account that reads the bucket).",
    )
    pipeline_root: str = Field(
        "",
        description="Where KFP writes the artifacts, e.g. gs://BUCKET/pipeline-root (compiled "
        "into the pipeline as its default root). '' = the KFP install's default (its in-cluster "
        "object store): refused for a cluster run.",
    )

    @field_validator("namespace", "service_account")
    @classmethod
    def _k8s_name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError(f"{v!r}: not a Kubernetes name (lowercase a-z 0-9 -, <= 63)")
        return v

    @field_validator("pipeline_root")
    @classmethod
    def _root(cls, v: str) -> str:
        if v and staging_dir(v) is None:
            raise ValueError(f"{v!r}: expected a gs://, s3:// or minio:// URI (or '')")
        return v.rstrip("/")


class Inputs(StrictModel):
    """What a pipeline run reads. Empty tweets/engagements: `twhin-bert run` generates demo data."""

    tweets: list[str] = Field(
        default_factory=list, description="Tweet files, folders, globs or gs:// URIs."
    )
    engagements: list[str] = Field(
        default_factory=list, description="Engagement files, folders, globs or gs:// URIs."
    )
    parallel_tweets: str = Field(
        "", description="Parallel-tweets JSONL for the translation pair source ('' = none)."
    )
    truth: str = Field(
        "",
        description="Planted tweet topics (demo data only): mine_pairs scores pair precision and "
        "evaluate adds its engagement references ('' = none).",
    )
    benchmarks: list[str] = Field(
        default_factory=list,
        description="Benchmark folders in TweetEval/UMSAB format for the evaluate stage.",
    )
    data_window: str = Field(
        "",
        description="Label of the engagement window this run trains on, e.g. 2026-11-01/2026-11-22 "
        "(with build_graph.window_days the window build_graph applied is recorded instead).",
    )
    window_end: str = Field(
        "",
        description="End of build_graph's rolling window_days window (ISO 8601). '' = the "
        "scheduled time of a recurring run, else the run's creation time.",
    )


class PipelineConfig(StrictModel):
    """A whole pipeline run: inputs, every stage's config and every task's runtime."""

    # Errors must not echo a refused value (a planted credential) back to the terminal.
    model_config = ConfigDict(hide_input_in_errors=True)

    name: str = Field("twhin-bert-pretrain", description="Pipeline name (KFP and MLflow).")
    seed: int = Field(0, description="The one seed: copied into every stage that draws randomly.")
    image: str = Field(BASE_IMAGE, description="Default image of every task (tag = version).")
    gpu_image: str = Field(GPU_IMAGE, description="Default image of tasks with accelerators.")
    ablation: bool = Field(
        True,
        description="Also train the MLM-only twin for as many steps as stage 2 and evaluate "
        "both side by side.",
    )
    embed_tweets: bool = Field(
        True,
        description="Embed every ingested tweet with the trained encoder (the embed stage: CLS, "
        "mean and Combined vectors) as a Dataset artifact of the run.",
    )
    inputs: Inputs = Field(default_factory=Inputs, description="What the run reads.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="ingest stage.")
    build_graph: BuildGraphConfig = Field(
        default_factory=BuildGraphConfig, description="build_graph stage."
    )
    embed_graph: EmbedGraphConfig = Field(
        default_factory=EmbedGraphConfig, description="embed_graph stage."
    )
    mine_pairs: MinePairsConfig = Field(
        default_factory=MinePairsConfig, description="mine_pairs stage."
    )
    train_tokenizer: TrainTokenizerConfig = Field(
        default_factory=TrainTokenizerConfig, description="train_tokenizer stage."
    )
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig, description="pretrain stage.")
    embed: EmbedConfig = Field(default_factory=EmbedConfig, description="embed stage.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="evaluate stage.")
    register_model: RegisterModelConfig = Field(
        default_factory=RegisterModelConfig, description="register_model stage."
    )
    resources: dict[str, TaskResources] = Field(
        default_factory=dict,
        description="Per-stage runtime (keys: stage names, or 'default' for every stage).",
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig,
        description="Namespace, service account and pipeline root on the cluster.",
    )

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        unknown = set(self.resources) - {*TASKS, "default"}
        if unknown:
            raise ValueError(
                f"resources: unknown stage(s) {sorted(unknown)}; known: {list(STAGES)}"
            )
        # The whole config is compiled into the pipeline spec and logged to MLflow: no
        # credential may sit in it as a literal (resources' env is checked per section).
        where = _credential_field(self.model_dump(mode="json", exclude={"resources"}))
        if where:
            raise ValueError(
                f"{where}: a URI with a password or token; give credentials to tasks through "
                "resources.<stage>.secret_env (docs/DEPLOY.md), not in the config"
            )
        self._check_runtime()
        self._check_gate_metrics()
        # One seed drives every random choice.
        for stage in STAGES:
            section = getattr(self, stage, None)
            if section is not None and "seed" in type(section).model_fields:
                section.seed = self.seed
        return self

    def _check_runtime(self) -> None:
        """GPU requests match GPU use, one source of truth for the GPU count, retry windows
        that cover a full attempt."""
        for stage in TASKS:
            res = self.task_resources(stage)
            if res.retries and res.timeout_s and res.retry_window_s < res.timeout_s:
                raise ValueError(
                    f"resources.{stage}: retry_window_s {res.retry_window_s} < timeout_s "
                    f"{res.timeout_s}: a failure late in an attempt would not be retried "
                    "(the window counts from the first attempt's start)"
                )
        gpus = self.task_resources("pretrain").accelerator_count
        if gpus and gpus != self.pretrain.num_gpus:
            raise ValueError(
                f"pretrain.num_gpus is {self.pretrain.num_gpus} but resources.pretrain requests "
                f"{gpus} accelerators: one torchrun rank per GPU of the pod; make them equal"
            )
        unused = {
            "mine_pairs": not self.mine_pairs.social.use_gpu,
            "embed": self.embed.device == "cpu",
            "evaluate": self.evaluate.device == "cpu",
        }
        for stage, cpu_only in unused.items():
            if cpu_only and self.task_resources(stage).accelerator_count:
                setting = "social.use_gpu is false" if stage == "mine_pairs" else "device is cpu"
                raise ValueError(
                    f"resources.{stage} requests accelerators but {stage}.{setting}: "
                    "set accelerator_count: 0 (or let the stage use them)"
                )

    def _check_gate_metrics(self) -> None:
        """Every metric the promotion gate compares is one evaluate writes with this config
        (a gate on ``engagement_hits@10`` with ``evaluate.engagement.k: 20``, or on hashtag
        F1 with hashtags off, would otherwise fail every model at the end of the run)."""
        from twhin_bert.evaluate.results import primary_metric_names

        written = primary_metric_names(self.evaluate, self.inputs.benchmarks)
        missing = [m.name for m in self.register_model.gate.metrics if m.name not in written]
        if missing:
            raise ValueError(
                f"register_model.gate.metrics names {missing}, which evaluate does not write "
                f"with this config (it writes {written}): rename the gate metric or turn its "
                "evaluate task on"
            )

    def task_resources(self, stage: str) -> TaskResources:
        """The runtime of ``stage``: its own section over 'default' over built-in defaults.

        A stage of ``SHM_STAGES`` without ``shm_size`` gets a /dev/shm of ``SHM_FRACTION`` of
        its memory request, at least ``SHM_MIN``.
        """
        merged: dict = {}
        for key in ("default", stage):
            if key in self.resources:
                merged.update(self.resources[key].model_dump(exclude_unset=True))
        res = TaskResources.model_validate(merged)
        if stage in SHM_STAGES and res.shm_size is None:
            floor = quantity_value(SHM_MIN)
            share = quantity_value(res.memory_request or SHM_MIN) * SHM_FRACTION
            res.shm_size = SHM_MIN if share <= floor else f"{int(share // 2**20)}Mi"
        return res

    def cluster_problems(self) -> list[str]:
        """What would break or be lost if this config ran on a cluster, one line each.

        Placeholders left from prod.yaml, no gs:// pipeline root, a task whose MLflow store is
        not a server (a SQLite file in the pod dies with it), a task without a timeout, a GPU
        task without CPU and memory limits. ``submit`` and ``schedule`` refuse a config with
        problems; ``compile`` prints them (and refuses with ``--strict``).
        """
        problems = []
        text = self.model_dump_json()
        left = [p for p in PLACEHOLDERS if re.search(rf"(?<![A-Za-z0-9]){p}(?![A-Za-z0-9])", text)]
        if left:
            problems.append(f"placeholders {left} still in the config: replace them")
        if not self.cluster.pipeline_root:
            problems.append(
                "cluster.pipeline_root is empty: artifacts would go to the KFP install's "
                "object store; set gs://BUCKET/pipeline-root"
            )
        no_server, no_timeout, no_limits = [], [], []
        for stage in TASKS:
            res = self.task_resources(stage)
            uri = res.env.get("MLFLOW_TRACKING_URI")
            if "MLFLOW_TRACKING_URI" not in res.secret_env and (
                uri is None or not re.match(r"(https?|databricks)(://|$)", uri)
            ):
                no_server.append(stage)
            if not res.timeout_s:
                no_timeout.append(stage)
            if res.accelerator_count and not (res.cpu_limit and res.memory_limit):
                no_limits.append(stage)
        if no_server:
            problems.append(
                f"resources.{{{','.join(no_server)}}}: MLFLOW_TRACKING_URI is not an http(s) "
                "server: each pod would track into a SQLite file that vanishes with it"
            )
        if no_timeout:
            problems.append(f"resources.{{{','.join(no_timeout)}}}: no timeout_s")
        if no_limits:
            problems.append(
                f"resources.{{{','.join(no_limits)}}}: GPU task without cpu_limit and memory_limit"
            )
        return problems


def _credential_field(data: Any, where: str = "") -> str | None:
    """The dotted path of the first string in ``data`` that holds a URI with credentials."""
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = [(f"{where}{k}", v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(f"{where}{i}", v) for i, v in enumerate(data)]
    else:
        return where.rstrip(".") if isinstance(data, str) and uri_has_credentials(data) else None
    for path, value in items:
        if isinstance(value, dict | list):
            found = _credential_field(value, f"{path}.")
        else:
            found = _credential_field(value, path)
        if found:
            return found
    return None


def config_path(name_or_path: str | Path) -> Path:
    """A built-in config name ('tiny', 'prod') or a file path -> the file."""
    if str(name_or_path) in BUILTIN_CONFIGS:
        ref = importlib_resources.files("twhin_bert_pipelines") / "configs" / f"{name_or_path}.yaml"
        return Path(str(ref))
    return Path(name_or_path)


def load_pipeline_config(name_or_path: str | Path = "tiny") -> PipelineConfig:
    """Loads and validates a pipeline config (built-in name or YAML/JSON path).

    Raises:
        ConfigError: Unreadable or invalid file (the message names the file and the field).
    """
    path = config_path(name_or_path)
    data = read_mapping(path)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'top level'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"{path}: invalid pipeline config: {problems}") from e
