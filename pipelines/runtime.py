"""Applies a stage's runtime settings (image, resources, accelerators, scheduling) to a KFP task."""

from __future__ import annotations

from typing import Any

from kfp import kubernetes
from kfp.dsl import PipelineTask
from twhin_bert.common.tracking import PIPELINE_RUN_ENV
from twhin_bert_pipelines.config import PipelineConfig, staging_dir
from twhin_bert_pipelines.multinode import split_pretrain

# The label the KFP API server puts on every pod of a run (pipeline/runid = the run's id,
# kubeflow/pipelines backend/src/apiserver/template/v2_template.go, SetPodMetadataLabels).
RUN_ID_LABEL = "pipeline/runid"
# The run's id is no task input: KFP hashes a task's inputs into its cache key, and an input
# naming the run would make every key unique (nothing ever cached). Tasks read the id from
# $TWHIN_BERT_PIPELINE_RUN_ID, set from the pod's run label (apply_runtime).
RUN_ID = ""
# The UID of the images (images/Dockerfile.*): tasks declare it and runAsNonRoot. That is all
# of a security context the KFP SDK can set: allowPrivilegeEscalation, dropped capabilities
# and the seccomp profile that the Pod Security Standard `restricted` also asks for cannot be
# compiled into a task, so task pods meet `baseline` and `restricted` only warns about them.
IMAGE_UID = 1000


def apply_runtime(
    task: PipelineTask, cfg: PipelineConfig, stage: str, display_name: str
) -> PipelineTask:
    """Sets image, CPU/memory, accelerators, node selector, tolerations, /dev/shm, scratch,
    PVCs, pod labels and annotations, timeout, retries, caching, env and Secrets of ``task``
    from ``cfg.resources`` (kfp.local ignores all but caching and env).

    The run's id reaches the task as ``$TWHIN_BERT_PIPELINE_RUN_ID`` through the downward
    API (the pod's ``pipeline/runid`` label), not as an input: KFP's cache key hashes the
    task's input values, output specs, image, command, args and PVC names, never its env or
    pod metadata, so a run-specific input would make every cache key unique.

    ``secret_env`` and ``secret_volumes`` become references to Kubernetes Secrets
    (kfp-kubernetes ``use_secret_as_env`` / ``use_secret_as_volume``): the compiled spec
    names the Secret and its key, never a value.

    Args:
        task: The pipeline task.
        cfg: The pipeline config.
        stage: The stage name whose resources apply.
        display_name: The task's display name in the KFP UI.

    Returns:
        The task.
    """
    res = cfg.task_resources(stage)
    task.set_display_name(display_name)
    image = res.image or (cfg.gpu_image if res.accelerator_count else cfg.image)
    if stage == "pretrain" and cfg.pretrain.num_nodes > 1:
        # A launcher without GPUs; resources.pretrain describes each TrainJob node instead.
        res, _ = split_pretrain(cfg, res, image)
    task.set_container_image(image)
    task.set_env_variable("TWHIN_BERT_IMAGE", image)
    if res.cpu_request:
        task.set_cpu_request(res.cpu_request)
    if res.cpu_limit:
        task.set_cpu_limit(res.cpu_limit)
    if res.memory_request:
        task.set_memory_request(res.memory_request)
    if res.memory_limit:
        task.set_memory_limit(res.memory_limit)
    if res.accelerator_count:
        task.set_accelerator_type(res.accelerator_type).set_accelerator_limit(res.accelerator_count)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in res.tolerations:
        kubernetes.add_toleration(
            task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect
        )
    kubernetes.use_field_path_as_env(
        task, env_name=PIPELINE_RUN_ENV, field_path=f"metadata.labels['{RUN_ID_LABEL}']"
    )
    kubernetes.set_security_context(task, run_as_user=IMAGE_UID, run_as_non_root=True)
    if res.shm_size:
        kubernetes.empty_dir_mount(
            task,
            volume_name="dshm",
            mount_path="/dev/shm",
            medium="Memory",
            size_limit=res.shm_size,
        )
    staging = staging_dir(cfg.cluster.pipeline_root)
    if res.scratch_size and staging:
        kubernetes.empty_dir_mount(
            task, volume_name="scratch", mount_path=staging, size_limit=res.scratch_size
        )
    for pvc, mount_path in res.pvc_mounts.items():
        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=mount_path)
    for key, value in res.pod_labels.items():
        kubernetes.add_pod_label(task, label_key=key, label_value=value)
    for key, value in res.pod_annotations.items():
        kubernetes.add_pod_annotation(task, annotation_key=key, annotation_value=value)
    if res.timeout_s:
        kubernetes.set_timeout(task, seconds=res.timeout_s)
    if res.retries:
        task.set_retry(
            num_retries=res.retries,
            backoff_duration=f"{res.retry_backoff_s}s",
            backoff_factor=res.retry_backoff_factor,
            backoff_max_duration=f"{res.retry_window_s}s",
        )
    task.set_caching_options(res.caching)
    for key, value in res.env.items():
        task.set_env_variable(key, value)
    for env_name, ref in res.secret_env.items():
        kubernetes.use_secret_as_env(
            task,
            secret_name=ref.secret,
            secret_key_to_env={ref.key: env_name},
            optional=ref.optional,
        )
    for secret, mount_path in res.secret_volumes.items():
        kubernetes.use_secret_as_volume(task, secret_name=secret, mount_path=mount_path)
    return task


def stage_task(
    component: Any,
    cfg: PipelineConfig,
    stage: str,
    display_name: str | None = None,
    *,
    config: str | None = None,
    **inputs: Any,
) -> PipelineTask:
    """A stage's task in one call: its config section, its inputs and its runtime.

    Args:
        component: The stage's KFP component (e.g. ``twhin_bert.ingest.component.ingest``).
        cfg: The pipeline config.
        stage: The stage name: its config section (``cfg.<stage>``) and its resources.
        display_name: The task's name in the KFP UI (default: ``stage``).
        config: The stage config as JSON, when it is not ``cfg.<stage>`` as is (the
            ablation twin, the retrain evaluation).
        **inputs: The component's other inputs (artifacts and parameters), by name.

    Returns:
        The task, with :func:`apply_runtime` applied.
    """
    if config is None:
        config = getattr(cfg, stage).model_dump_json()
    task = component(config=config, pipeline_run_id=RUN_ID, **inputs)
    return apply_runtime(task, cfg, stage, display_name or stage)
