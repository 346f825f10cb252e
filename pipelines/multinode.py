"""The pretrain task with ``pretrain.num_nodes`` > 1: a small launcher pod and a TrainJob.

``resources.pretrain`` describes one training node, as it describes the single pretrain pod
with ``num_nodes: 1``. With more nodes that description travels (as a
:class:`~twhin_bert.pretrain.trainjob.NodeSpec` in ``$TWHIN_BERT_TRAINJOB_NODE``) to the
TrainJob's node pods, and the KFP task itself becomes a launcher without GPUs: it keeps the
volumes, env, Secrets, timeout and retries, and runs on the default pool.
"""

from __future__ import annotations

from twhin_bert.pretrain.trainjob import NODE_SPEC_ENV, NodeSpec
from twhin_bert_pipelines.config import PipelineConfig, TaskResources

#: What the launcher pod asks for: it copies inputs to the volume and polls the TrainJob.
LAUNCHER_CPU = "1"
LAUNCHER_MEMORY = "4Gi"


def split_pretrain(
    cfg: PipelineConfig, res: TaskResources, image: str
) -> tuple[TaskResources, NodeSpec]:
    """``(launcher resources, node spec)`` of a multi-node pretrain task.

    Args:
        cfg: The pipeline config (``pretrain.num_nodes`` > 1).
        res: ``resources.pretrain`` as resolved (one node's).
        image: The node image (the task's GPU image).

    Returns:
        The launcher's task resources, and each node's spec.
    """
    node = NodeSpec(
        namespace=cfg.cluster.namespace,
        image=image,
        service_account=cfg.cluster.service_account,
        gpu_resource=res.accelerator_type or "nvidia.com/gpu",
        cpu_request=res.cpu_request,
        cpu_limit=res.cpu_limit,
        memory_request=res.memory_request,
        memory_limit=res.memory_limit,
        node_selector=res.node_selector,
        tolerations=[t.model_dump(exclude_none=True) for t in res.tolerations],
        shm_size=res.shm_size,
        pvc_mounts=res.pvc_mounts,
        env=res.env,
        secret_env={k: (ref.secret, ref.key) for k, ref in res.secret_env.items()},
        secret_volumes=res.secret_volumes,
        labels=res.pod_labels,
        annotations=res.pod_annotations,
        timeout_s=res.timeout_s,
    )
    launcher = res.model_copy(
        update={
            "image": image,
            "cpu_request": LAUNCHER_CPU,
            "cpu_limit": None,
            "memory_request": LAUNCHER_MEMORY,
            "memory_limit": None,
            "accelerator_type": None,
            "accelerator_count": 0,
            "node_selector": {},
            "tolerations": [],
            "shm_size": None,
            "env": {**res.env, NODE_SPEC_ENV: node.model_dump_json()},
        }
    )
    return launcher, node
