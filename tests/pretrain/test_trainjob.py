"""Multi-node pretraining: the TrainJob we render validates against Kubeflow Trainer's CRD
schema, torchrun reads the Trainer's PET_* variables into the launch we expect, the compiled
pipeline's pretrain task becomes a GPU-less launcher, and the follow loop drives the real
``kubernetes`` client against RecordingKubeApi -- a local HTTP recorder of the custom-objects
requests (not a Kubernetes API server); its slow twin runs the rendered node command as two
local CPU "nodes" the way the Trainer would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from twhin_bert.pretrain import trainjob as tj
from twhin_bert.pretrain.config import ObjectiveTraining, PretrainConfig
from twhin_bert_pipelines.config import PipelineConfig, load_pipeline_config
from twhin_bert_pipelines.multinode import split_pretrain

ROOT = Path(__file__).resolve().parents[2]
CRD_SCHEMA = ROOT / "tests/deploy/crds/trainer.kubeflow.org_trainjobs.schema.yaml"
TORCH_RUNTIME = ROOT / "tests/deploy/crds/torch_distributed.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return yaml.safe_load(CRD_SCHEMA.read_text())


def _prod_2x8() -> tuple[PipelineConfig, PretrainConfig, tj.NodeSpec]:
    cfg = load_pipeline_config("prod")
    assert cfg.pretrain.num_gpus == 8
    cfg = PipelineConfig.model_validate(
        cfg.model_dump(exclude_unset=True)
        | {"pretrain": {**cfg.pretrain.model_dump(), "num_nodes": 2}}
    )
    res = cfg.task_resources("pretrain")
    _, node = split_pretrain(cfg, res, cfg.gpu_image)
    return cfg, cfg.pretrain, node


def unknown_fields(schema: dict[str, Any], obj: Any, path: str = "") -> list[str]:
    """Fields of ``obj`` the structural schema does not know: the API server would prune them
    silently (CRD schemas carry no additionalProperties: false), so a typo must fail here."""
    out: list[str] = []
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        if props is None or schema.get("x-kubernetes-preserve-unknown-fields"):
            return out
        for k, v in obj.items():
            if k not in props:
                out.append(f"{path}.{k}")
            else:
                out += unknown_fields(props[k], v, f"{path}.{k}")
    elif isinstance(obj, list) and "items" in schema:
        for i, v in enumerate(obj):
            out += unknown_fields(schema["items"], v, f"{path}[{i}]")
    return out


def _validate(schema: dict[str, Any], job: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema).validate(job)
    assert unknown_fields(schema, job) == []
    # The CRD's x-kubernetes-validations on metadata.name (CEL, not JSON Schema).
    name = job["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


def _render_2x8() -> dict[str, Any]:
    _, pre, node = _prod_2x8()
    return tj.render_trainjob(
        pre, node, name=tj.job_name("mlm_social", "ab" * 32), args=["-m", "twhin_bert.x"]
    )


def test_two_nodes_of_eight_gpus_validate_against_the_crd(schema: dict[str, Any]) -> None:
    job = _render_2x8()
    _validate(schema, job)
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 8
    assert trainer["resourcesPerNode"]["requests"]["cpu"] == "96"
    assert trainer["command"] == tj.NODE_COMMAND
    assert job["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    assert job["metadata"]["name"] == "twhin-bert-mlm-social-abababababab"
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"
    ][0]["template"]["spec"]["template"]["spec"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"twhin-bert-checkpoints"}
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/mnt/ckpt", "/dev/shm"} <= mounts
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["serviceAccountName"] == "twhin-bert-pipeline"


def test_runtime_ref_and_patch_targets_exist_in_the_torch_runtime() -> None:
    """The TrainJob names things of the ClusterTrainingRuntime it runs on: the runtime itself,
    the replicated job its patch targets (listMap key ``name``) and that job's container. The
    copy of upstream's torch-distributed runtime must hold every one of them, and spec.trainer
    must land on the patched job (the one the runtime marks as the trainer step)."""
    runtime = yaml.safe_load(TORCH_RUNTIME.read_text())
    job = _render_2x8()
    ref = job["spec"]["runtimeRef"]
    assert runtime["apiVersion"] == f"{ref['apiGroup']}/{tj.VERSION}" == job["apiVersion"]
    assert (runtime["kind"], runtime["metadata"]["name"]) == (ref["kind"], ref["name"])
    assert "torch" in runtime["spec"]["mlPolicy"]  # the plugin that sets PET_* (RESERVED_ENV)
    jobs = {rj["name"]: rj for rj in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    step = "trainer.kubeflow.org/trainjob-ancestor-step"
    labels = {n: rj["template"].get("metadata", {}).get("labels", {}) for n, rj in jobs.items()}
    trainer_step = [n for n, lab in labels.items() if lab.get(step) == "trainer"]
    assert trainer_step == [tj.NODE]
    targeted = 0
    for patch in job["spec"]["runtimePatches"]:
        for rj in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
            assert rj["name"] in jobs, f"patch targets replicated job {rj['name']!r}"
            have = {
                c["name"]
                for c in jobs[rj["name"]]["template"]["spec"]["template"]["spec"]["containers"]
            }
            pod = rj["template"]["spec"]["template"]["spec"]
            for c in pod.get("containers", []):
                assert c["name"] in have, f"patch targets container {c['name']!r} of {have}"
                targeted += 1
    assert targeted == 1


@pytest.mark.parametrize(
    ("where", "bad", "expect"),
    [
        (("spec", "trainer"), {"numProcPerNode": "8"}, "is not of type 'integer'"),
        (("spec", "runtimeRef"), {"name": ""}, "should be non-empty|is too short"),
        (("spec",), {"runtimeRef": {"kind": "ClusterTrainingRuntime"}}, "'name' is a required"),
        (("spec", "trainer"), {"resourcePerNode": {}}, "unknown"),  # a typo: pruned silently
    ],
)
def test_a_wrong_field_fails_the_schema(
    schema: dict[str, Any], where: tuple[str, ...], bad: dict[str, Any], expect: str
) -> None:
    job = _render_2x8()
    target = job
    for key in where:
        target = target[key]
    target.update(bad)
    with pytest.raises((jsonschema.ValidationError, AssertionError), match=expect):
        jsonschema.Draft7Validator(schema).validate(job)
        unknown = unknown_fields(schema, job)
        assert not unknown, f"unknown fields {unknown}"


def test_reserved_torchrun_env_is_refused() -> None:
    _, pre, node = _prod_2x8()
    node = node.model_copy(update={"env": {"PET_NNODES": "3"}})
    with pytest.raises(ValueError, match="PET_NNODES"):
        tj.render_trainjob(pre, node, name="x", args=[])


def test_num_nodes_needs_a_shared_checkpoint_dir() -> None:
    with pytest.raises(ValueError, match="num_nodes 2 needs checkpoint_dir"):
        PretrainConfig(num_nodes=2)


def test_torchrun_reads_the_trainers_pet_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The node command's torchrun (no options of its own) takes nodes, ranks and the master
    from the variables the Trainer's torch plugin sets (kubeflow/trainer pkg/constants)."""
    from torch.distributed.run import config_from_args, parse_args

    env = {
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "8",
        "PET_NODE_RANK": "1",
        "PET_MASTER_ADDR": "job-node-0-0.job",
        "PET_MASTER_PORT": "29400",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = parse_args(["-m", "twhin_bert.pretrain.train", "--config", "c.json", "--out", "o"])
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", 1)
    assert (args.master_addr, args.master_port) == ("job-node-0-0.job", 29400)
    assert args.module and args.training_script == "twhin_bert.pretrain.train"
    launch, _, script_args = config_from_args(args)
    assert (launch.min_nodes, launch.max_nodes, launch.nproc_per_node) == (2, 2, 8)
    assert launch.rdzv_endpoint == "job-node-0-0.job:29400"
    assert script_args[-4:] == ["--config", "c.json", "--out", "o"]
    assert script_args[script_args.index("-m") + 1] == "twhin_bert.pretrain.train"


def test_compiled_pretrain_task_is_a_launcher_without_gpus(tmp_path: Path) -> None:
    from twhin_bert_pipelines.submit import compile_pipeline

    cfg, _, node = _prod_2x8()
    path = compile_pipeline(cfg, tmp_path / "p.yaml", "pretrain")
    docs = list(yaml.safe_load_all(path.read_text()))
    execs = docs[0]["deploymentSpec"]["executors"]
    pre = [e for k, e in execs.items() if k.startswith("exec-pretrain")]
    assert pre
    for e in pre:
        res = e["container"].get("resources", {})
        assert "accelerator" not in res, res
        env = {v["name"]: v["value"] for v in e["container"].get("env", [])}
        assert tj.NodeSpec.model_validate_json(env[tj.NODE_SPEC_ENV]) == node
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for k, e in platform.items():
        if k.startswith("exec-pretrain"):
            assert [p["constant"] for p in e["pvcMount"]] == ["twhin-bert-checkpoints"]
            assert "nodeSelector" not in e and "tolerations" not in e


# --------------------------------------------------------------------------- follow loop


class RecordingKubeApi:
    """A local HTTP recorder of TrainJob custom-object requests. Each created job walks
    through ``script`` (a list of condition lists), one entry per GET."""

    def __init__(self, script: list[list[dict[str, str]]], on_create: Any = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.script = script
        self.on_create = on_create
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _name(self) -> str:
                return self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path))
                job = api.jobs.get(self._name())
                if job is None:
                    self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                step = job.pop("_script", [])
                if step:
                    job["status"] = {"conditions": step.pop(0)}
                    job["_script"] = step
                self._send(200, {k: v for k, v in job.items() if k != "_script"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(("POST", self.path))
                body["_script"] = [list(s) for s in api.script]
                api.jobs[body["metadata"]["name"]] = body
                if api.on_create is not None:
                    api.on_create(body)
                self._send(201, {k: v for k, v in body.items() if k != "_script"})

            def do_DELETE(self) -> None:
                api.requests.append(("DELETE", self.path))
                api.jobs.pop(self._name(), None)
                self._send(200, {"kind": "Status", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self, namespace: str = "team") -> tj.TrainJobApi:
        from kubernetes import client

        conf = client.Configuration()
        conf.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        return tj.TrainJobApi(namespace, client.ApiClient(conf))


@pytest.fixture
def recorder() -> Iterator[Any]:
    made: list[RecordingKubeApi] = []

    def make(script: list[list[dict[str, str]]], on_create: Any = None) -> RecordingKubeApi:
        made.append(RecordingKubeApi(script, on_create))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()


CREATED = {"type": "Created", "status": "True", "reason": "JobsCreated", "message": "ok"}
COMPLETE = {"type": "Complete", "status": "True", "reason": "JobsCompleted", "message": "done"}
FAILED = {"type": "Failed", "status": "True", "reason": "JobsFailed", "message": "node-1 OOMKilled"}


def _body(name: str = "twhin-bert-mlm-abc") -> dict[str, Any]:
    _, pre, node = _prod_2x8()
    return tj.render_trainjob(
        pre, node.model_copy(update={"namespace": "team"}), name=name, args=[]
    )


def test_follow_creates_then_succeeds_with_the_job(recorder: Any) -> None:
    rec = recorder([[], [CREATED], [CREATED], [CREATED, COMPLETE]])
    api = rec.client()
    staged: list[bool] = []
    assert tj.start(api, _body(), lambda: staged.append(True)) is True
    progress: list[int] = []
    job = tj.follow(api, "twhin-bert-mlm-abc", poll_s=0, progress=lambda: str(progress.append(1)))
    assert tj.job_state(job)[0] == "Complete"
    assert staged == [True] and len(progress) == 3
    base = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team/trainjobs"
    assert rec.requests[:2] == [("GET", f"{base}/twhin-bert-mlm-abc"), ("POST", base)]


def test_follow_fails_with_the_job_and_names_why(recorder: Any) -> None:
    rec = recorder([[CREATED], [CREATED, FAILED]])
    api = rec.client()
    tj.start(api, _body())
    with pytest.raises(
        RuntimeError, match=r"team/twhin-bert-mlm-abc failed: JobsFailed: node-1 OOMKilled"
    ):
        tj.follow(api, "twhin-bert-mlm-abc", poll_s=0)


def test_a_retried_launcher_adopts_the_running_job(recorder: Any) -> None:
    rec = recorder([[CREATED], [CREATED], [CREATED, COMPLETE]])
    api = rec.client()
    tj.start(api, _body())
    n = len(rec.requests)
    assert (
        tj.start(api, _body(), lambda: pytest.fail("restaged inputs under a running job")) is False
    )
    assert [m for m, _ in rec.requests[n:]] == ["GET"]  # no POST, no DELETE


def test_a_finished_job_of_an_earlier_attempt_is_replaced(recorder: Any) -> None:
    rec = recorder([[CREATED, FAILED]])
    api = rec.client()
    tj.start(api, _body())
    n = len(rec.requests)
    assert tj.start(api, _body(), poll_s=0) is True
    assert [m for m, _ in rec.requests[n:]] == ["GET", "DELETE", "GET", "POST"]


def test_job_state_reads_conditions() -> None:
    assert tj.job_state({})[0] == "Running"
    assert tj.job_state({"status": {"conditions": [CREATED]}}) == ("Running", "ok")
    off = {"type": "Complete", "status": "False"}
    assert tj.job_state({"status": {"conditions": [CREATED, off]}})[0] == "Running"
    assert tj.job_state({"status": {"conditions": [CREATED, FAILED]}})[0] == "Failed"


@pytest.mark.slow
def test_two_local_nodes_run_the_rendered_command(
    tmp_path: Path,
    pt_ingested: Path,
    pt_tokenizer: Path,
    recorder: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run_pretrain with num_nodes 2: the launcher stages inputs, creates the job; this test
    plays the Trainer -- it starts the job's command on two local CPU "nodes" with the PET_*
    variables the torch plugin sets -- and the launcher copies the model out."""
    from transformers import AutoModel
    from twhin_bert.pretrain.train import _free_port, run_pretrain

    procs: list[subprocess.Popen[bytes]] = []

    def as_trainer(body: dict[str, Any]) -> None:
        t = body["spec"]["trainer"]
        port = str(_free_port())
        for rank in range(t["numNodes"]):
            env = dict(
                os.environ,
                PET_NNODES=str(t["numNodes"]),
                PET_NPROC_PER_NODE=str(t["numProcPerNode"]),
                PET_NODE_RANK=str(rank),
                PET_MASTER_ADDR="127.0.0.1",
                PET_MASTER_PORT=port,
                **{e["name"]: e["value"] for e in t["env"] if "value" in e},
            )
            cmd = [sys.executable, *t["command"][1:], *t["args"]]
            procs.append(subprocess.Popen(cmd, env=env))

    def script() -> list[list[dict[str, str]]]:
        return []

    rec = recorder([])
    rec.on_create = as_trainer
    api = rec.client()
    orig_get = api.get

    def get(name: str) -> dict[str, Any] | None:
        job = orig_get(name)
        if job is not None and procs and all(p.poll() is not None for p in procs):
            ok = all(p.returncode == 0 for p in procs)
            job["status"] = {"conditions": [CREATED, COMPLETE if ok else FAILED]}
        return job

    monkeypatch.setattr(api, "get", get)
    node = tj.NodeSpec(namespace="team", image="local")
    monkeypatch.setenv(tj.NODE_SPEC_ENV, node.model_dump_json())
    import twhin_bert.pretrain.trainjob as mod

    real = mod.run_trainjob
    monkeypatch.setattr(mod, "run_trainjob", lambda *a, **k: real(*a, **k, api=api, poll_s=1.0))
    cfg = PretrainConfig(
        mlm=ObjectiveTraining(micro_batch_size=2, peak_lr=2e-3, warmup_steps=1, steps=4),
        num_nodes=2,
        num_gpus=1,
        threads=1,
        checkpoint_every=2,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    out = tmp_path / "out"
    m = run_pretrain(cfg, out, objective="mlm", ingested=pt_ingested, tokenizer=pt_tokenizer)
    assert m["world_size"] == 2 and m["steps"] == 4
    assert AutoModel.from_pretrained(str(out)).config.num_hidden_layers == 2
    assert not list((tmp_path / "ckpt").glob("*.job"))
    assert [m for m, _ in rec.requests if m == "POST"] == ["POST"]
