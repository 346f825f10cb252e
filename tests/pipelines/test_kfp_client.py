"""submit, schedule and the run lifecycle through the real ``kfp.Client`` (2.17), against a
local HTTP server that records the KFP v2beta1 requests (``RecordingKfpApi``).

The recorder is not a Kubeflow Pipelines backend: it records every request (method, path,
query, body, headers) and answers with the smallest valid v2beta1 JSON, keeping what was
created through it so that a later list or get sees it. What is asserted is what the
client sent: which requests, in which order, with which namespace and credentials.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from twhin_bert_pipelines.cli import app
from typer.testing import CliRunner

runner = CliRunner()
NOW = "2026-11-02T03:00:00Z"


@dataclass
class Recorded:
    """One request as the client sent it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class RecordingKfpApi:
    """A local HTTP server that records the KFP v2beta1 requests sent to it.

    It only records requests and answers with minimal valid v2beta1 JSON; it is NOT a KFP
    backend (nothing runs, nothing is scheduled, no authentication is checked). Objects
    created through it (pipelines, versions, experiments, runs, recurring runs) are kept
    in memory with the namespace they were created in, so lists filtered by namespace and
    by ``display_name EQUALS`` (the only filter it understands; any other is a 400) see
    them. A run's state is set by the test (``run_states`` scripts what successive GETs of
    a run answer). ``POST /token`` answers a Google OAuth2 JWT-bearer grant with an ID token.
    """

    requests: list[Recorded] = field(default_factory=list)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    recurring: list[dict[str, Any]] = field(default_factory=list)
    run_states: dict[str, list[str]] = field(default_factory=dict)
    id_token: str = ""
    fail_next: int = 0
    url: str = ""
    _ids: int = 0

    def new_id(self, kind: str) -> str:
        self._ids += 1
        return f"{kind}-{self._ids}"

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """The recorded requests with this method whose path matches ``pattern`` fully."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/apis/")]


def _matches(obj: dict[str, Any], query: dict[str, str]) -> bool:
    ns = query.get("namespace")
    if ns is not None and obj.get("namespace", "") != ns:
        return False
    if "experiment_id" in query and obj.get("experiment_id") != query["experiment_id"]:
        return False
    if "filter" in query:
        for pred in json.loads(query["filter"])["predicates"]:
            if pred["key"] != "display_name" or pred["operation"] not in ("EQUALS", 1):
                raise ValueError(f"filter not understood: {pred}")
            if obj["display_name"] != pred["stringValue"]:
                return False
    return True


def _jwt(payload: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(payload)}.c2ln"


def _jwt_payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _handler(api: RecordingKfpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("multipart/form-data"):
                msg = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                )
                return {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                        for p in msg.iter_parts()}  # fmt: skip
            if ctype.startswith("application/x-www-form-urlencoded"):
                return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            return json.loads(raw) if raw else None

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body = self._body() if method in ("POST", "PATCH") else None
            api.requests.append(
                Recorded(method, parts.path, query, body, {k.lower(): v for k, v in self.headers.items()})
            )  # fmt: skip
            if api.fail_next > 0:  # an API server restarting
                api.fail_next -= 1
                self._reply(503, {"code": 14, "message": "upstream connect error"})
                return
            try:
                status, payload = self._route(method, parts.path, query, body)
            except ValueError as e:
                status, payload = 400, {"code": 3, "message": str(e)}
            self._reply(status, payload)

        def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
            p = path.removeprefix("/apis/v2beta1")
            if method == "POST" and path == "/token":
                return 200, {"id_token": api.id_token}
            if p == "/healthz":
                return 200, {"multi_user": False}
            if p == "/pipelines" and method == "GET":
                found = [x for x in api.pipelines if _matches(x, q)]
                return 200, {"pipelines": found, "total_size": len(found)}
            if p == "/pipelines" and method == "POST":
                pid = api.new_id("pipeline")
                pipe = {
                    **body,
                    "pipeline_id": pid,
                    "created_at": NOW,
                    "namespace": body.get("namespace", ""),
                }
                api.pipelines.append(pipe)
                return 200, pipe
            if p == "/pipelines/upload_version":
                vid = api.new_id("version")
                ver = {"pipeline_id": q["pipelineid"], "pipeline_version_id": vid,
                       "display_name": q["name"], "description": q.get("description", ""),
                       "created_at": NOW}  # fmt: skip
                api.versions.append(ver)
                return 200, ver
            if m := re.fullmatch(r"/pipelines/([^/]+)/versions", p):
                found = [v for v in api.versions if v["pipeline_id"] == m[1] and _matches(v, q)]
                return 200, {"pipeline_versions": found, "total_size": len(found)}
            if p == "/experiments" and method == "GET":
                found = [x for x in api.experiments if _matches(x, q)]
                return 200, {"experiments": found, "total_size": len(found)}
            if p == "/experiments" and method == "POST":
                exp = {**body, "experiment_id": api.new_id("experiment"), "created_at": NOW}
                exp.setdefault("namespace", "")
                api.experiments.append(exp)
                return 200, exp
            if p == "/runs" and method == "GET":
                found = [x for x in api.runs if _matches(x, q)]
                return 200, {"runs": found, "total_size": len(found)}
            if p == "/runs" and method == "POST":
                exp = next(
                    e for e in api.experiments if e["experiment_id"] == body["experiment_id"]
                )
                run = {**body, "run_id": api.new_id("run"), "state": "PENDING",
                       "created_at": NOW, "namespace": exp["namespace"]}  # fmt: skip
                api.runs.append(run)
                return 200, run
            if m := re.fullmatch(r"/runs/([^/:]+)(:terminate|:retry)?", p):
                run = next((r for r in api.runs if r["run_id"] == m[1]), None)
                if run is None:
                    return 404, {"code": 5, "message": f"Run {m[1]} not found"}
                if m[2] == ":terminate":
                    run["state"] = "CANCELING"
                    return 200, {}
                if m[2] == ":retry":
                    run["state"] = "RUNNING"
                    return 200, {}
                if api.run_states.get(m[1]):
                    run["state"] = api.run_states[m[1]].pop(0)
                return 200, run
            if p == "/recurringruns" and method == "GET":
                found = [x for x in api.recurring if _matches(x, q)]
                return 200, {"recurringRuns": found, "total_size": len(found)}
            if p == "/recurringruns" and method == "POST":
                exp = next(
                    e for e in api.experiments if e["experiment_id"] == body["experiment_id"]
                )
                rr = {**body, "recurring_run_id": api.new_id("recurring"), "created_at": NOW,
                      "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
                      "namespace": exp["namespace"]}  # fmt: skip
                api.recurring.append(rr)
                return 200, rr
            if m := re.fullmatch(r"/recurringruns/([^/:]+)(:enable|:disable)?", p):
                rr = next((r for r in api.recurring if r["recurring_run_id"] == m[1]), None)
                if rr is None:
                    return 404, {"code": 5, "message": f"RecurringRun {m[1]} not found"}
                if method == "DELETE":
                    api.recurring.remove(rr)
                    return 200, {}
                if m[2]:
                    rr["status"] = "ENABLED" if m[2] == ":enable" else "DISABLED"
                    rr["mode"] = "ENABLE" if m[2] == ":enable" else "DISABLE"
                    return 200, {}
                return 200, rr
            return 404, {"code": 5, "message": f"{method} {path}: not answered by the recorder"}

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler


@pytest.fixture
def kfp_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RecordingKfpApi]:
    import kfp

    api = RecordingKfpApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # kfp keeps a context file in ~/.config/kfp; keep it out of the user's home.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for var in ("KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_AUTH", "KFP_NAMESPACE", "KFP_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield api
    server.shutdown()
    server.server_close()


def invoke(args: list[str]) -> Any:
    res = runner.invoke(app, args)
    return res


def _json_out(output: str) -> dict[str, Any]:
    """The JSON object the command printed (kfp's own lines go to stderr, before it)."""
    return json.loads(output[output.index("{") :])


@pytest.fixture
def cluster_config(tmp_path: Path) -> Path:
    """tiny.yaml made ready for a cluster (``cluster_problems`` empty): namespace team-a, a
    gs:// pipeline root, an MLflow server with the pipeline user's password from a Secret,
    task timeouts. ``submit`` and ``schedule`` refuse anything less."""
    from twhin_bert.common.config import read_mapping
    from twhin_bert_pipelines.config import PipelineConfig, config_path

    data = read_mapping(config_path("tiny"))
    data["cluster"] = {"namespace": "team-a", "pipeline_root": "gs://acme-ml/pipeline-root"}
    default = data.setdefault("resources", {}).setdefault("default", {})
    default["timeout_s"] = 3600
    default.setdefault("env", {}).update(
        MLFLOW_TRACKING_URI="http://mlflow.twhin-bert.svc.cluster.local:5000",
        MLFLOW_TRACKING_USERNAME="pipeline",
    )
    default["secret_env"] = {
        "MLFLOW_TRACKING_PASSWORD": {"secret": "mlflow-client", "key": "password"}
    }
    assert PipelineConfig.model_validate(data).cluster_problems() == []
    path = tmp_path / "config" / "cluster.yaml"  # not beside the compiled *-pretrain.yaml
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    return path


# ----------------------------------------------------------------------------- submit
def test_submit_twice_uploads_once_and_a_changed_spec_adds_one_version(
    kfp_api: RecordingKfpApi, cluster_config: Path, tmp_path: Path
) -> None:
    args = ["submit", "--host", kfp_api.url, "--config", str(cluster_config)]
    args += ["--namespace", "team-a"]
    first = invoke([*args, "--param", 'data_window="w1"'])
    assert first.exit_code == 0, first.output
    second = invoke(args)
    assert second.exit_code == 0, second.output
    r1, r2 = _json_out(first.stdout), _json_out(second.stdout)
    assert (r1["uploaded"], r2["uploaded"]) == (True, False)
    assert r1["version_id"] == r2["version_id"] and r1["pipeline_id"] == r2["pipeline_id"]
    # one pipeline, created empty in the namespace, and one version: no second identical one
    (create,) = kfp_api.calls("POST", "/apis/v2beta1/pipelines")
    assert create.body["namespace"] == "team-a"
    assert kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload") == []
    (upload,) = kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    (package,) = tmp_path.glob("*-pretrain.yaml")
    assert upload.body["uploadfile"] == package.read_bytes()
    assert re.fullmatch(rf"{package.stem}-.+-[0-9a-f]{{12}}", upload.query["name"])
    # every lookup was namespaced; both runs reference the same version
    for r in kfp_api.calls("GET", "/apis/v2beta1/(pipelines|experiments)"):
        assert r.query["namespace"] == "team-a", r
    runs = kfp_api.calls("POST", "/apis/v2beta1/runs")
    assert len(runs) == 2 and len(kfp_api.calls("POST", "/apis/v2beta1/experiments")) == 1
    assert {r.body["pipeline_version_reference"]["pipeline_version_id"] for r in runs} == {
        r1["version_id"]
    }
    assert runs[0].body["runtime_config"]["parameters"] == {"data_window": "w1"}
    assert runs[0].body["service_account"] == "twhin-bert-pipeline"
    assert kfp_api.experiments[0]["namespace"] == "team-a"

    # run parameters are not part of the spec: still no upload
    res = invoke([*args, "--param", 'data_window="w2"'])
    assert res.exit_code == 0 and _json_out(res.stdout)["uploaded"] is False
    # a changed spec: a new version of the same pipeline
    from twhin_bert_pipelines.config import load_pipeline_config
    from twhin_bert_pipelines.submit import Connection, submit

    base = load_pipeline_config(cluster_config)
    cfg = base.model_copy(update={"seed": base.seed + 1})

    out = submit(cfg, Connection(kfp_api.url, namespace="team-a"), work_dir=tmp_path / "w")
    assert out["uploaded"] is True and out["pipeline_id"] == r1["pipeline_id"]
    assert out["version_id"] != r1["version_id"]
    assert len(kfp_api.calls("POST", "/apis/v2beta1/pipelines")) == 1
    assert len(kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload_version")) == 2


def test_submit_without_namespace_sends_none(
    kfp_api: RecordingKfpApi, cluster_config: Path
) -> None:
    res = invoke(["submit", "--host", kfp_api.url, "--config", str(cluster_config)])
    assert res.exit_code == 0, res.output
    assert all("namespace" not in r.query for r in kfp_api.api_requests())
    # without a namespace the client asks the backend whether it is multi-user
    assert kfp_api.calls("GET", "/apis/v2beta1/healthz")


def test_submit_and_schedule_refuse_a_config_not_ready_for_a_cluster(
    kfp_api: RecordingKfpApi,
) -> None:
    """tiny.yaml tracks into a per-pod SQLite file, has no gs:// root and no timeouts: one line
    naming every problem, exit 2, before any request reaches the API."""
    for args in (
        ["submit", "--host", kfp_api.url, "--config", "tiny"],
        ["schedule", "create", "--host", kfp_api.url, "--config", "tiny", "--cron", "0 3 * * 0"],
    ):
        res = invoke(args)
        assert res.exit_code == 2, res.output
        (line,) = res.output.strip().splitlines()
        assert line.startswith("error: not ready for a cluster: "), line
        for problem in ("cluster.pipeline_root is empty", "MLFLOW_TRACKING_URI", "no timeout_s"):
            assert problem in line, (problem, line)
        assert "Traceback" not in res.output
    assert kfp_api.requests == []


def test_submit_reads_a_gs_base_model_before_sending(
    kfp_api: RecordingKfpApi, cluster_config: Path, gcs_emulator: Any
) -> None:
    """A gs:// ``pretrain.base_model`` is read (its config.json only) when the run is
    submitted: a missing folder or an unsupported family fails there with one line and exit
    2, not hours into the run; a supported one is sent."""
    bucket = gcs_emulator.create_bucket("acme-models")
    for name, model_type in (("gpt2", "gpt2"), ("bertweet", "roberta")):
        bucket.blob(f"{name}/config.json").upload_from_string(
            json.dumps({"model_type": model_type, "hidden_size": 16})
        )
    data = yaml.safe_load(cluster_config.read_text())
    args = ["submit", "--host", kfp_api.url, "--config", str(cluster_config)]
    for name, expected in (
        ("gpt2", "model_type 'gpt2' is not supported as a base model"),
        ("nothing-here", "nothing-here/config.json does not exist"),
    ):
        data.setdefault("pretrain", {})["base_model"] = f"gs://acme-models/{name}"
        cluster_config.write_text(yaml.safe_dump(data))
        res = invoke(args)
        assert res.exit_code == 2, res.output
        # (the emulator's own request log shares the output)
        (line,) = [x for x in res.output.splitlines() if x.startswith("error: ")]
        assert expected in line and "Traceback" not in res.output, res.output
    assert kfp_api.requests == []

    data["pretrain"]["base_model"] = "gs://acme-models/bertweet"
    cluster_config.write_text(yaml.safe_dump(data))
    res = invoke(args)
    assert res.exit_code == 0, res.output
    assert kfp_api.calls("POST", "/apis/v2beta1/runs")


# ----------------------------------------------------------------------------- schedules
def _schedule(api: RecordingKfpApi, config: Path | str, *extra: str) -> Any:
    return invoke(["schedule", "create", "--host", api.url, "--config", str(config),
                   "--namespace", "team-a", "--job-name", "weekly", *extra])  # fmt: skip


def test_schedule_is_idempotent_by_name_and_replaces_without_duplicates(
    kfp_api: RecordingKfpApi, cluster_config: Path
) -> None:
    first = _schedule(kfp_api, cluster_config, "--cron", "0 3 * * 0")
    assert first.exit_code == 0, first.output
    assert _json_out(first.stdout)["action"] == "created"
    (create,) = kfp_api.calls("POST", "/apis/v2beta1/recurringruns")
    assert create.body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 0"
    assert create.body["display_name"] == "weekly" and create.body["no_catchup"] is True
    assert str(create.body["max_concurrency"]) == "1"

    # the same schedule again: nothing created, nothing deleted
    again = _schedule(kfp_api, cluster_config, "--cron", "0 0 3 * * 0")
    assert again.exit_code == 0, again.output
    assert _json_out(again.stdout)["action"] == "unchanged"
    assert len(kfp_api.calls("POST", "/apis/v2beta1/recurringruns")) == 1
    assert kfp_api.calls("DELETE", "/apis/v2beta1/recurringruns/.+") == []

    # a new cron: the old one is paused, the new created, then the old deleted
    old_id = create_id = kfp_api.recurring[0]["recurring_run_id"]
    mark = len(kfp_api.requests)
    moved = _schedule(kfp_api, cluster_config, "--cron", "0 4 * * 0")
    assert moved.exit_code == 0, moved.output
    res = _json_out(moved.stdout)
    assert res["action"] == "updated" and res["replaced"] == [old_id]
    order = [
        (r.method, r.path.rsplit("/", 1)[-1])
        for r in kfp_api.requests[mark:]
        if "recurringruns" in r.path and r.method != "GET"
    ]
    assert order == [("POST", f"{create_id}:disable"), ("POST", "recurringruns"),
                     ("DELETE", create_id)]  # fmt: skip
    (left,) = kfp_api.recurring  # one schedule remains, with the new cron
    assert left["display_name"] == "weekly" and left["recurring_run_id"] == res["recurring_run_id"]
    assert left["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * 0"
    assert left["status"] == "ENABLED" and left["namespace"] == "team-a"
    # the lookup was by name, in the experiment
    lookups = kfp_api.calls("GET", "/apis/v2beta1/recurringruns")
    assert all("weekly" in r.query["filter"] and r.query.get("experiment_id") for r in lookups)


def test_schedule_list_pause_resume_delete(kfp_api: RecordingKfpApi, cluster_config: Path) -> None:
    assert _schedule(kfp_api, cluster_config, "--cron", "0 3 * * 0").exit_code == 0
    rid = kfp_api.recurring[0]["recurring_run_id"]
    conn = ["--host", kfp_api.url, "--namespace", "team-a"]
    listed = invoke(["schedule", "list", *conn])
    assert listed.exit_code == 0, listed.output
    assert (
        "weekly" in listed.stdout and "0 0 3 * * 0" in listed.stdout and "ENABLED" in listed.stdout
    )
    (lst,) = [
        r for r in kfp_api.calls("GET", "/apis/v2beta1/recurringruns") if "filter" not in r.query
    ]
    assert lst.query["namespace"] == "team-a"

    assert invoke(["schedule", "pause", "weekly", *conn]).exit_code == 0
    assert kfp_api.calls("POST", f"/apis/v2beta1/recurringruns/{rid}:disable")
    as_json = invoke(["schedule", "list", *conn, "--json"])
    assert json.loads(as_json.stdout)[0]["status"] == "DISABLED"
    assert invoke(["schedule", "resume", rid, *conn]).exit_code == 0  # by id too
    assert kfp_api.recurring[0]["status"] == "ENABLED"
    deleted = invoke(["schedule", "delete", "weekly", *conn])
    assert deleted.exit_code == 0 and "deleted schedule weekly" in deleted.stdout
    assert kfp_api.recurring == []
    missing = invoke(["schedule", "delete", "nope", *conn])
    assert missing.exit_code == 2 and "no schedule named 'nope'" in missing.output


def test_schedule_needs_a_valid_cron(kfp_api: RecordingKfpApi, cluster_config: Path) -> None:
    bad = _schedule(kfp_api, cluster_config, "--cron", "every day")
    assert bad.exit_code == 2 and "cron" in bad.output
    assert kfp_api.requests == []


# ----------------------------------------------------------------------------- runs
def _a_run(api: RecordingKfpApi, **fields: Any) -> str:
    run_id = api.new_id("run")
    api.runs.append({"run_id": run_id, "display_name": f"pretrain-{run_id}", "state": "RUNNING",
                     "experiment_id": "experiment-0", "namespace": "team-a",
                     "created_at": NOW, **fields})  # fmt: skip
    return run_id


def test_runs_list_and_status_print_tables(kfp_api: RecordingKfpApi) -> None:
    done = _a_run(kfp_api, state="SUCCEEDED", finished_at="2026-11-02T09:30:00Z")
    failed = _a_run(kfp_api, state="FAILED", error={"code": 2, "message": "pretrain: OOM"},
                    run_details={"task_details": [{"display_name": "ingest", "state": "SUCCEEDED"},
                                                  {"display_name": "pretrain", "state": "FAILED"}]})  # fmt: skip
    conn = ["--host", kfp_api.url, "--namespace", "team-a"]
    res = invoke(["runs", "list", *conn, "--limit", "5"])
    assert res.exit_code == 0, res.output
    (req,) = kfp_api.calls("GET", "/apis/v2beta1/runs")
    assert req.query["namespace"] == "team-a" and req.query["page_size"] == "5"
    assert req.query["sort_by"] == "created_at desc"
    lines = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if "run-" in line}
    assert "SUCCEEDED" in lines[done] and "2026-11-02 09:30" in lines[done]
    assert "FAILED" in lines[failed]

    status = invoke(["runs", "status", failed, *conn])
    assert status.exit_code == 0, status.output
    assert kfp_api.calls("GET", f"/apis/v2beta1/runs/{failed}")
    assert "pretrain: OOM" in status.stdout
    assert re.search(r"pretrain\s*│\s*FAILED", status.stdout)
    assert re.search(r"ingest\s*│\s*SUCCEEDED", status.stdout)
    as_json = json.loads(invoke(["runs", "status", failed, *conn, "--json"]).stdout)
    assert as_json["tasks"] == {"ingest": "SUCCEEDED", "pretrain": "FAILED"}

    no_exp = invoke(["runs", "list", *conn, "--experiment", "nightly"])
    assert no_exp.exit_code == 2 and "no experiment named 'nightly'" in no_exp.output

    unknown = invoke(["runs", "status", "run-404", *conn])
    assert unknown.exit_code == 2
    assert "HTTP 404" in unknown.output and "Run run-404 not found" in unknown.output
    assert "Traceback" not in unknown.output


def test_runs_wait_polls_until_the_run_ends(kfp_api: RecordingKfpApi) -> None:
    conn = ["--host", kfp_api.url, "--interval", "0.01"]
    ok = _a_run(kfp_api)
    kfp_api.run_states[ok] = ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]
    res = invoke(["runs", "wait", ok, *conn])
    assert res.exit_code == 0, res.output
    assert len(kfp_api.calls("GET", f"/apis/v2beta1/runs/{ok}")) == 4
    assert "RUNNING" in res.output and "SUCCEEDED" in res.stdout

    # an API server restarting mid-wait (503s) does not end the wait; too many in a row do
    # (with a namespace the client sends no health check first, so every request is a poll)
    blip = _a_run(kfp_api)
    kfp_api.run_states[blip] = ["RUNNING", "SUCCEEDED"]
    kfp_api.fail_next = 3
    assert invoke(["runs", "wait", blip, *conn, "--namespace", "team-a"]).exit_code == 0
    down = _a_run(kfp_api)
    kfp_api.fail_next = 100
    res = invoke(["runs", "wait", down, *conn, "--namespace", "team-a"])
    assert res.exit_code == 4 and "HTTP 503" in res.output
    kfp_api.fail_next = 0

    # kfp's own wait_for_run_completion would poll a CANCELED run forever
    cancelled = _a_run(kfp_api)
    kfp_api.run_states[cancelled] = ["RUNNING", "CANCELING", "CANCELED"]
    res = invoke(["runs", "wait", cancelled, *conn])
    assert res.exit_code == 5 and f"run {cancelled} ended CANCELED" in res.output

    failed = _a_run(kfp_api, error={"code": 2, "message": "task pretrain failed"})
    kfp_api.run_states[failed] = ["FAILED"]
    res = invoke(["runs", "wait", failed, *conn])
    assert res.exit_code == 5 and "ended FAILED: task pretrain failed" in res.output

    slow = _a_run(kfp_api)
    t0 = time.monotonic()
    res = invoke(["runs", "wait", slow, "--host", kfp_api.url, "--interval", "0.05",
                  "--timeout", "0.2"])  # fmt: skip
    assert res.exit_code == 5 and "still RUNNING after 0.2 s" in res.output
    assert time.monotonic() - t0 < 5


def test_runs_cancel_and_retry(kfp_api: RecordingKfpApi) -> None:
    conn = ["--host", kfp_api.url, "--namespace", "team-a"]
    run = _a_run(kfp_api)
    res = invoke(["runs", "cancel", run, *conn])
    assert res.exit_code == 0, res.output
    assert kfp_api.calls("POST", f"/apis/v2beta1/runs/{run}:terminate")
    assert "CANCELING" in res.stdout
    kfp_api.runs[-1]["state"] = "FAILED"
    res = invoke(["runs", "retry", run, *conn])
    assert res.exit_code == 0, res.output
    assert kfp_api.calls("POST", f"/apis/v2beta1/runs/{run}:retry")
    assert f"retrying run {run}" in res.stdout and "RUNNING" in res.stdout


# ----------------------------------------------------------------------------- auth
def test_bearer_token_is_sent_and_never_printed(
    kfp_api: RecordingKfpApi, cluster_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "kfp-secret-token-9f8e7d"
    monkeypatch.setenv("KFP_TOKEN", secret)
    res = invoke(["-v", "submit", "--host", kfp_api.url, "--config", str(cluster_config)])
    assert res.exit_code == 0, res.output
    assert kfp_api.api_requests()
    assert {r.headers.get("authorization") for r in kfp_api.api_requests()} == {f"Bearer {secret}"}
    assert secret not in res.output
    # from a file, when the CLI fails (the error path prints too)
    monkeypatch.delenv("KFP_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    monkeypatch.setenv("KFP_TOKEN_FILE", str(token_file))
    res = invoke(["-v", "runs", "status", "run-404", "--host", kfp_api.url])
    assert res.exit_code == 2 and secret not in res.output
    assert kfp_api.requests[-1].headers["authorization"] == f"Bearer {secret}"
    # --auth token without a token: one line
    monkeypatch.delenv("KFP_TOKEN_FILE")
    res = invoke(["runs", "list", "--host", kfp_api.url, "--auth", "token"])
    assert res.exit_code == 2 and "KFP_TOKEN" in res.output and "Traceback" not in res.output


def test_no_auth_sends_no_credentials(kfp_api: RecordingKfpApi) -> None:
    res = invoke(["runs", "list", "--host", kfp_api.url, "--auth", "none"])
    assert res.exit_code == 0, res.output
    assert all("authorization" not in r.headers for r in kfp_api.requests)


def test_in_cluster_service_account_token_is_reread(
    kfp_api: RecordingKfpApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "sa" / "token"
    token.parent.mkdir()
    token.write_text("sa-token-1")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    monkeypatch.setenv("KFP_AUTH", "sa-token")
    assert invoke(["runs", "list", "--host", kfp_api.url]).exit_code == 0
    assert kfp_api.requests[-1].headers["authorization"] == "Bearer sa-token-1"
    token.write_text("sa-token-2")  # the kubelet rotates the projected token
    assert invoke(["runs", "list", "--host", kfp_api.url]).exit_code == 0
    assert kfp_api.requests[-1].headers["authorization"] == "Bearer sa-token-2"
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "absent"))
    res = invoke(["runs", "list", "--host", kfp_api.url])
    assert res.exit_code == 2 and "no service-account token at" in res.output


def test_iap_id_token_through_google_auth(
    kfp_api: RecordingKfpApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """google-auth signs a JWT-bearer grant with a service-account key and exchanges it at
    the key's token URI (here the recorder) for an ID token, sent to KFP as the bearer."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    audience = "1234-abc.apps.googleusercontent.com"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": "k1",
        "private_key": pem, "client_email": "kfp-submit@p.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": f"{kfp_api.url}/token",
    }))  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa))
    kfp_api.id_token = _jwt({"aud": audience, "exp": int(time.time()) + 3600, "iat": 0})

    missing = invoke(["runs", "list", "--host", kfp_api.url, "--auth", "iap"])
    assert missing.exit_code == 2 and "--iap-audience" in missing.output
    assert kfp_api.requests == []

    res = invoke(["runs", "list", "--host", kfp_api.url, "--auth", "iap",
                  "--iap-audience", audience])  # fmt: skip
    assert res.exit_code == 0, res.output
    (grant,) = kfp_api.calls("POST", "/token")
    assert grant.body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = _jwt_payload(grant.body["assertion"])
    assert claims["target_audience"] == audience
    assert claims["iss"] == "kfp-submit@p.iam.gserviceaccount.com"
    api_calls = kfp_api.api_requests()
    assert api_calls and all(
        r.headers["authorization"] == f"Bearer {kfp_api.id_token}" for r in api_calls
    )


def test_unreachable_endpoint_is_one_line_exit_4(kfp_api: RecordingKfpApi) -> None:
    res = invoke(["runs", "list", "--host", "http://127.0.0.1:9"])
    assert res.exit_code == 4, res.output
    assert "cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in res.output
    assert "MLflow" not in res.output and "Traceback" not in res.output
