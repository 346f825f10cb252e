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
        "", description="Planted tweet topics (demo data only) to score pair precision ('' = none)."
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

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        unknown = set(self.resources) - {*STAGES, "default", "resolve_champion"}
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
        # One seed drives every random choice.
        for stage in STAGES:
            section = getattr(self, stage, None)
            if section is not None and "seed" in type(section).model_fields:
                section.seed = self.seed
        return self

    def task_resources(self, stage: str) -> TaskResources:
        """The runtime of ``stage``: its own section over 'default' over built-in defaults."""
        merged: dict = {}
        for key in ("default", stage):
            if key in self.resources:
                merged.update(self.resources[key].model_dump(exclude_unset=True))
        return TaskResources.model_validate(merged)


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
