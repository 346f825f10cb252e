"""What the compiled pipelines ask of a cluster: retry windows sized for multi-day training,
cache keys that can repeat across runs, /dev/shm and scratch where they are needed, GPU
requests that match GPU use, guard rails before a cluster run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from kfp import dsl
from twhin_bert.common.config import ConfigError, read_mapping
from twhin_bert.embed_graph.component import embed_graph
from twhin_bert_pipelines.config import (
    SHM_STAGES,
    PipelineConfig,
    config_path,
    load_pipeline_config,
    quantity_value,
)
from twhin_bert_pipelines.submit import Connection, compile_pipeline, submit

# What KFP substitutes per run: the run's id, name, times (kfp.dsl placeholders).
RUN_PLACEHOLDER = re.compile(
    r"\{\{\$\.pipeline_job_(uuid|name|resource_name|create_time|schedule_time)"
)


def compiled(cfg: PipelineConfig, tmp_path: Path, which: str = "pretrain") -> list[dict]:
    path = compile_pipeline(cfg, tmp_path / f"{which}.yaml", which)  # type: ignore[arg-type]
    return list(yaml.safe_load_all(path.read_text()))


def tasks(spec: list[dict]) -> dict[str, dict]:
    return spec[0]["root"]["dag"]["tasks"]


def executor(spec: list[dict], task: str) -> dict:
    label = tasks(spec)[task]["componentRef"]["name"].replace("comp-", "exec-")
    return spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]


def run_dependent_inputs(spec: list[dict]) -> dict[str, list[str]]:
    """Per task with caching on: the inputs whose value changes from run to run."""
    out = {}
    for name, task in tasks(spec).items():
        if not task.get("cachingOptions", {}).get("enableCache"):
            continue
        params = task.get("inputs", {}).get("parameters", {})
        bad = [k for k, v in params.items() if RUN_PLACEHOLDER.search(json.dumps(v))]
        if bad:
            out[name] = bad
    return out


def filled_prod() -> PipelineConfig:
    """prod.yaml with the operator's bucket filled in."""
    text = config_path("prod").read_text().replace("YOUR_BUCKET", "acme-ml")
    return PipelineConfig.model_validate(yaml.safe_load(text))


def edited(name: str, **changes: object) -> PipelineConfig:
    """A built-in config with dotted-path changes, validated again (as the loader would)."""
    data = read_mapping(config_path(name))
    for path, value in changes.items():
        *head, last = path.split("__")
        node = data
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return PipelineConfig.model_validate(data)


@pytest.mark.parametrize("which", ["pretrain", "retrain"])
def test_retry_policy_comes_from_config(which: str, tmp_path: Path) -> None:
    cfg = load_pipeline_config("prod")
    spec = compiled(cfg, tmp_path, which)
    pre = tasks(spec)["pretrain"]["retryPolicy"]
    res = cfg.task_resources("pretrain")
    assert pre == {
        "maxRetryCount": 3,
        "backoffDuration": "300s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": f"{res.retry_window_s}s",
    }
    # Multi-day: the window is days long and outlasts one full attempt.
    assert res.retry_window_s >= 7 * 86400 and res.retry_window_s > res.timeout_s
    ingest = tasks(spec)["ingest"]["retryPolicy"]
    assert ingest["backoffMaxDuration"] == f"{cfg.task_resources('ingest').retry_window_s}s"


def test_retry_window_shorter_than_an_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_window_s 3600 < timeout_s 7200"):
        edited("tiny", resources={"pretrain": {"retries": 2, "timeout_s": 7200}})


@pytest.mark.parametrize("name", ["tiny", "prod"])
@pytest.mark.parametrize("which", ["pretrain", "retrain"])
def test_cached_tasks_take_no_run_dependent_input(name: str, which: str, tmp_path: Path) -> None:
    cfg = edited(name, resources={"default": {"caching": True}}) if name == "tiny" else None
    cfg = cfg or load_pipeline_config(name)
    spec = compiled(cfg, tmp_path, which)
    assert (
        sum(t.get("cachingOptions", {}).get("enableCache", False) for t in tasks(spec).values())
        >= 4
    )
    assert run_dependent_inputs(spec) == {}
    # The run's id still reaches every task: from the pod's run label, outside the cache key.
    execs = spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label, ex in execs.items():
        assert {"name": "TWHIN_BERT_PIPELINE_RUN_ID",
                "fieldPath": "metadata.labels['pipeline/runid']"} in ex["fieldPathAsEnv"], label  # fmt: skip


def test_rolling_window_build_graph_is_not_cached(tmp_path: Path) -> None:
    cfg = edited("prod", build_graph__window_days=21.0)
    spec = compiled(cfg, tmp_path, "retrain")
    params = tasks(spec)["build-graph"]["inputs"]["parameters"]
    assert RUN_PLACEHOLDER.search(json.dumps(params))  # it reads the run's times ...
    assert not tasks(spec)["build-graph"].get("cachingOptions", {}).get("enableCache")
    assert run_dependent_inputs(spec) == {}  # ... so it is the one task left uncached


def test_the_check_catches_a_run_id_input(tmp_path: Path) -> None:
    """The old wiring (the run-id placeholder as an input) is what the check reports."""

    @dsl.pipeline(name="probe")
    def probe():
        embed_graph(config="{}", graph=dsl.importer(artifact_uri="gs://b/g", artifact_class=dsl.Dataset).output,
                    pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)  # fmt: skip

    from kfp import compiler

    out = tmp_path / "probe.yaml"
    compiler.Compiler().compile(probe, str(out))
    spec = list(yaml.safe_load_all(out.read_text()))
    spec = spec if len(spec) > 1 else [*spec, {}]
    assert run_dependent_inputs(spec) == {"embed-graph": ["pipeline_run_id"]}


def test_shm_by_rule_on_shared_memory_stages(tmp_path: Path) -> None:
    cfg = load_pipeline_config("prod")
    spec = compiled(cfg, tmp_path)
    for task, stage in [("embed-graph", "embed_graph"), ("embed", "embed"), ("pretrain", "pretrain"),
                        ("ingest", "ingest"), ("mine-pairs", "mine_pairs")]:  # fmt: skip
        mounts = {m["mountPath"]: m for m in executor(spec, task).get("emptyDirMounts", [])}
        if stage not in SHM_STAGES:
            assert "/dev/shm" not in mounts, task
            continue
        shm = mounts["/dev/shm"]
        assert shm["medium"] == "Memory"
        res = cfg.task_resources(stage)
        explicit = cfg.resources[stage].shm_size if stage in cfg.resources else None
        want = (
            quantity_value(explicit)
            if explicit
            else max(2**30, quantity_value(res.memory_request) / 4)
        )
        assert quantity_value(shm["sizeLimit"]) == pytest.approx(want, rel=1e-3), task
    # embed_graph's PBG workers: a quarter of 512G, not the container default of 64 MiB.
    assert quantity_value(cfg.task_resources("embed_graph").shm_size) > 100e9


def test_pipeline_root_and_scratch(tmp_path: Path) -> None:
    cfg = load_pipeline_config("prod")
    spec = compiled(cfg, tmp_path)
    assert spec[0]["defaultPipelineRoot"] == cfg.cluster.pipeline_root
    assert cfg.cluster.pipeline_root.startswith("gs://")
    for task, stage in [("ingest", "ingest"), ("embed", "embed"), ("pretrain", "pretrain")]:
        mounts = {m["mountPath"]: m for m in executor(spec, task)["emptyDirMounts"]}
        assert mounts["/gcs"]["sizeLimit"] == cfg.task_resources(stage).scratch_size
        assert "medium" not in mounts["/gcs"]  # node disk, not memory
    tiny = compiled(load_pipeline_config("tiny"), tmp_path / "t")
    assert "defaultPipelineRoot" not in tiny[0]


def test_gpu_count_has_one_source_of_truth() -> None:
    with pytest.raises(
        ValueError, match=r"pretrain.num_gpus is 4 but resources.pretrain requests 8"
    ):
        edited("prod", pretrain__num_gpus=4)
    with pytest.raises(
        ValueError,
        match=r"resources.mine_pairs requests accelerators but mine_pairs.social.use_gpu is false",
    ):
        edited("prod", mine_pairs__social__use_gpu=False)
    with pytest.raises(
        ValueError, match=r"resources.evaluate requests accelerators but evaluate.device is cpu"
    ):
        edited("prod", evaluate__device="cpu")
    # Without GPUs mine_pairs is fine on CPU.
    resources = read_mapping(config_path("prod"))["resources"]
    resources["mine_pairs"] = {"cpu_request": "16", "memory_request": "256G"}
    cfg = edited("prod", mine_pairs__social__use_gpu=False, resources=resources)
    assert cfg.task_resources("mine_pairs").accelerator_count == 0


def test_one_gpu_tasks_have_their_own_pool() -> None:
    cfg = load_pipeline_config("prod")
    pools = {s: cfg.task_resources(s).node_selector.get("cloud.google.com/gke-accelerator")
             for s in ("pretrain", "mine_pairs", "embed", "evaluate")}  # fmt: skip
    assert pools["pretrain"] == pools["mine_pairs"] == "nvidia-h100-80gb"
    assert pools["embed"] == pools["evaluate"] == "nvidia-l4"
    assert cfg.task_resources("embed").accelerator_count == 1


def test_prod_guard_rails(tmp_path: Path) -> None:
    cfg = load_pipeline_config("prod")
    # Only the operator's placeholders stand between prod.yaml and a cluster.
    assert cfg.cluster_problems() == [
        "placeholders ['YOUR_BUCKET'] still in the config: replace them"
    ]
    filled = filled_prod()
    assert filled.cluster_problems() == []
    spec = compiled(filled, tmp_path)
    execs = spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all(int(ex["activeDeadlineSeconds"]) > 0 for ex in execs.values())
    gpu = [c for c in spec[0]["deploymentSpec"]["executors"].values()
           if c["container"].get("resources", {}).get("accelerator")]  # fmt: skip
    assert len(gpu) >= 3
    for c in gpu:
        assert c["container"]["resources"]["resourceCpuLimit"]
        assert c["container"]["resources"]["resourceMemoryLimit"]
    for ex in execs.values():
        assert ex["securityContext"] == {"runAsNonRoot": True, "runAsUser": "1000"}
    # A compile for a cluster refuses the placeholders; a plain compile warns and writes.
    with pytest.raises(ConfigError, match="YOUR_BUCKET"):
        compile_pipeline(cfg, tmp_path / "strict.yaml", strict=True)
    assert not (tmp_path / "strict.yaml").exists()


def test_tiny_is_refused_for_a_cluster(tmp_path: Path) -> None:
    cfg = load_pipeline_config("tiny")
    problems = " | ".join(cfg.cluster_problems())
    assert "SQLite" in problems and "pipeline_root" in problems and "timeout_s" in problems
    file_uri = edited(
        "tiny", resources={"default": {"env": {"MLFLOW_TRACKING_URI": "sqlite:///m.db"}}}
    )
    assert any("MLFLOW_TRACKING_URI" in p for p in file_uri.cluster_problems())
    # submit refuses before it connects (port 9: nothing listens; a connection would fail otherwise).
    with pytest.raises(ConfigError, match="not ready for a cluster"):
        submit(cfg, Connection(host="http://127.0.0.1:9"), work_dir=tmp_path)


def test_submit_refuses_a_namespace_the_config_was_not_set_up_for(tmp_path: Path) -> None:
    cfg = filled_prod()
    with pytest.raises(ConfigError, match=r"--namespace team-a: .* cluster.namespace is kubeflow"):
        submit(cfg, Connection(host="http://127.0.0.1:9", namespace="team-a"), work_dir=tmp_path)
