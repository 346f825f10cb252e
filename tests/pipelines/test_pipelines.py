"""The pipelines compile; their task graph, artifact wiring and runtime settings are as designed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from twhin_bert.common.config import ConfigError
from twhin_bert_pipelines.config import PipelineConfig, load_pipeline_config
from twhin_bert_pipelines.pretrain_pipeline import ablation_twin
from twhin_bert_pipelines.submit import compile_pipeline, to_kfp_cron


def _compile(cfg: PipelineConfig, which: str, tmp_path: Path) -> dict[str, Any]:
    path = compile_pipeline(cfg, tmp_path / f"{which}.yaml", which)  # type: ignore[arg-type]
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    spec["_platform"] = docs[1] if len(docs) > 1 else {}
    return spec


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tasks keyed by display name."""
    return {t["taskInfo"]["name"]: t for t in spec["root"]["dag"]["tasks"].values()}


def _artifact_source(task: dict[str, Any], name: str) -> tuple[str, str]:
    src = task["inputs"]["artifacts"][name]["taskOutputArtifact"]
    return src["producerTask"], src["outputArtifactKey"]


def _display(spec: dict[str, Any], key: str) -> str:
    return spec["root"]["dag"]["tasks"][key]["taskInfo"]["name"]


def test_builtin_configs_load() -> None:
    tiny, prod = load_pipeline_config("tiny"), load_pipeline_config("prod")
    assert tiny.pretrain.arch.num_layers == 2
    assert prod.pretrain.arch.hidden_size == 768 and prod.embed_graph.dimension == 256
    assert prod.mine_pairs.social.index == "OPQ64,IVF65536,PQ64"
    assert prod.task_resources("pretrain").accelerator_count >= 1


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: {arch: {num_layers: 2, hidden_size: 100, num_heads: 3}}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml(?s:.*)not divisible"):
        load_pipeline_config(bad)
    bad.write_text("resources: {pretrian: {cpu_limit: '2'}}\n")
    with pytest.raises(ConfigError, match="unknown stage"):
        load_pipeline_config(bad)
    bad.write_text("resources: {pretrain: {accelerator_count: 2}}\n")
    with pytest.raises(ConfigError, match="accelerator_type"):
        load_pipeline_config(bad)


def test_one_seed_drives_every_stage() -> None:
    cfg = PipelineConfig.model_validate({"seed": 123, "build_graph": {"seed": 5}})
    seeds = {
        s: getattr(cfg, s).seed
        for s in (
            "build_graph",
            "embed_graph",
            "mine_pairs",
            "train_tokenizer",
            "pretrain",
            "evaluate",
        )
    }
    assert set(seeds.values()) == {123}, seeds


def test_resources_merge_default_and_stage() -> None:
    cfg = PipelineConfig.model_validate(
        {
            "resources": {
                "default": {"cpu_request": "2", "retries": 3},
                "pretrain": {"cpu_request": "8"},
            }
        }
    )
    r = cfg.task_resources("pretrain")
    assert (r.cpu_request, r.retries) == ("8", 3)
    assert cfg.task_resources("ingest").cpu_request == "2"


def test_ablation_twin_takes_stage2_schedule() -> None:
    p = load_pipeline_config("tiny").pretrain
    twin = ablation_twin(p)
    assert twin.mlm.steps == p.mlm_social.steps and twin.mlm.peak_lr == p.mlm_social.peak_lr
    assert twin.mlm.micro_batch_size == p.mlm.micro_batch_size


def test_pretrain_pipeline_graph_and_wiring(tmp_path: Path) -> None:
    spec = _compile(load_pipeline_config("tiny"), "pretrain", tmp_path)
    tasks = _tasks(spec)
    assert set(tasks) == {
        "ingest", "build_graph", "embed_graph", "mine_pairs", "train_tokenizer",
        "pretrain-mlm", "pretrain-mlm-social", "pretrain-mlm-only", "evaluate", "register_model",
        "embed",
    }  # fmt: skip

    def src(task: str, art: str) -> tuple[str, str]:
        producer, key = _artifact_source(tasks[task], art)
        return _display(spec, producer), key

    assert src("build_graph", "ingested") == ("ingest", "ingested")
    assert src("embed_graph", "graph") == ("build_graph", "graph")
    assert src("mine_pairs", "graph_embeddings") == ("embed_graph", "graph_embeddings")
    assert src("pretrain-mlm", "tokenizer") == ("train_tokenizer", "tokenizer")
    assert src("pretrain-mlm-social", "init_from") == ("pretrain-mlm", "model")
    assert src("pretrain-mlm-social", "pairs") == ("mine_pairs", "pairs")
    assert src("pretrain-mlm-only", "init_from") == ("pretrain-mlm", "model")
    assert "pairs" not in tasks["pretrain-mlm-only"]["inputs"].get("artifacts", {})
    assert src("evaluate", "model") == ("pretrain-mlm-social", "model")
    assert src("evaluate", "baseline_model") == ("pretrain-mlm-only", "model")
    assert src("evaluate", "graph_embeddings") == ("embed_graph", "graph_embeddings")
    assert src("register_model", "model") == ("pretrain-mlm-social", "model")
    assert src("register_model", "evaluation") == ("evaluate", "evaluation")
    assert src("embed", "model") == ("pretrain-mlm-social", "model")
    assert src("embed", "ingested") == ("ingest", "ingested")
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"tweets", "engagements", "benchmarks", "data_window", "truth"} <= set(params)
    # the demo's planted topics reach mine_pairs (pair precision) and evaluate (references)
    for task in ("mine_pairs", "evaluate"):
        truth = tasks[task]["inputs"]["parameters"]["truth"]
        assert truth["componentInputParameter"] == "truth"


def test_no_ablation_drops_the_twin(tmp_path: Path) -> None:
    cfg = load_pipeline_config("tiny")
    cfg.ablation = False
    tasks = _tasks(_compile(cfg, "pretrain", tmp_path))
    assert "pretrain-mlm-only" not in tasks
    cfg.embed_tweets = False
    assert "embed" not in _tasks(_compile(cfg, "pretrain", tmp_path))
    assert "baseline_model" not in tasks["evaluate"]["inputs"].get("artifacts", {})


def test_retrain_pipeline_warm_starts_from_champion(tmp_path: Path) -> None:
    spec = _compile(load_pipeline_config("tiny"), "retrain", tmp_path)
    tasks = _tasks(spec)
    assert {
        "resolve_champion",
        "ingest",
        "mine_pairs",
        "pretrain-mlm-social",
        "evaluate",
        "register_model",
    } <= set(tasks)
    assert "train_tokenizer" not in tasks and "pretrain-mlm" not in tasks
    producer, key = _artifact_source(tasks["pretrain-mlm-social"], "init_from")
    assert (_display(spec, producer), key) == ("resolve_champion", "champion")
    # the gate compares with the champion version evaluated beside the challenger
    ev = tasks["register_model"]["inputs"]["parameters"]["evaluated_champion"]
    assert _display(spec, ev["taskOutputParameter"]["producerTask"]) == "resolve_champion"
    truth = tasks["evaluate"]["inputs"]["parameters"]["truth"]
    assert truth["componentInputParameter"] == "truth"


def test_retrain_reads_new_data_each_scheduled_run(tmp_path: Path) -> None:
    """Ingest is never a cache hit; a rolling window ends at the run's scheduled time and
    build_graph's resolved window is what register_model records as data_window."""
    cfg = load_pipeline_config("prod")  # caching on by default (tiny turns it off)
    cfg.build_graph.window_days = 28
    spec = _compile(cfg, "retrain", tmp_path)
    tasks = _tasks(spec)
    assert tasks["ingest"]["cachingOptions"] == {}  # enableCache absent = off
    # It reads the run's times: a cache key that never repeats, so caching is off.
    assert tasks["build_graph"]["cachingOptions"] == {}
    bg = tasks["build_graph"]["inputs"]["parameters"]
    assert bg["schedule_time"]["runtimeValue"]["constant"] == "{{$.pipeline_job_schedule_time_utc}}"
    assert bg["create_time"]["runtimeValue"]["constant"] == "{{$.pipeline_job_create_time_utc}}"
    assert bg["window_end"]["componentInputParameter"] == "window_end"
    dw = tasks["register_model"]["inputs"]["parameters"]["data_window"]["taskOutputParameter"]
    assert _display(spec, dw["producerTask"]) == "build_graph"
    # A fixed-data pretrain run keeps both cacheable: no run times reach build_graph.
    plain = _tasks(_compile(load_pipeline_config("prod"), "pretrain", tmp_path))
    assert "schedule_time" not in plain["build_graph"]["inputs"]["parameters"]
    assert plain["ingest"]["cachingOptions"].get("enableCache") is True


def test_prod_runtime_settings_reach_the_compiled_spec(tmp_path: Path) -> None:
    cfg = load_pipeline_config("prod")
    cfg.resources["pretrain"].timeout_s = 7 * 24 * 3600
    spec = _compile(cfg, "pretrain", tmp_path)
    tasks = _tasks(spec)
    executors = spec["deploymentSpec"]["executors"]
    comp = tasks["pretrain-mlm-social"]["componentRef"]["name"]
    executor = spec["components"][comp]["executorLabel"]
    container = executors[executor]["container"]
    res = cfg.task_resources("pretrain")
    assert container["image"] == (res.image or cfg.gpu_image)
    assert container["resources"]["accelerator"]["resourceCount"] == str(res.accelerator_count)
    assert container["resources"]["accelerator"]["resourceType"] == res.accelerator_type
    ingest_exec = spec["components"][tasks["ingest"]["componentRef"]["name"]]["executorLabel"]
    assert (
        executors[ingest_exec]["container"]["image"] == cfg.task_resources("ingest").image
        or cfg.image
    )
    k8s = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
    assert k8s["nodeSelector"]["labels"] == res.node_selector
    assert [t["key"] for t in k8s["tolerations"]] == [t.key for t in res.tolerations]
    if res.shm_size:
        assert k8s["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    assert res.pod_annotations and res.pod_labels
    assert k8s["podMetadata"]["annotations"] == res.pod_annotations
    assert k8s["podMetadata"]["labels"] == res.pod_labels
    assert int(k8s["activeDeadlineSeconds"]) == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("0 3 * * *", "0 0 3 * * *"),
        ("0 0 3 * * *", "0 0 3 * * *"),
        ("*/15 * * * 1-5", "0 */15 * * * 1-5"),
    ],
)
def test_cron_is_normalised_to_six_fields(expr: str, want: str) -> None:
    assert to_kfp_cron(expr) == want


@pytest.mark.parametrize("expr", ["daily", "* * *", "0 3 * * * * *", "0 3 * * $"])
def test_bad_cron_is_rejected(expr: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        to_kfp_cron(expr)
