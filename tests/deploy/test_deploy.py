"""Images and manifests: lint the Dockerfiles, render and validate every kustomize overlay,
tie image tags to the package version, check that the pipeline config and the manifests agree
on MLflow, and run the MLflow server with the manifest's command line."""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERLAYS = sorted(p.name for p in (ROOT / "manifests" / "overlays").iterdir() if p.is_dir())
# Overlays that place the pipeline's objects where its pods run -> that namespace.
PIPELINE_OVERLAYS = {"kfp-standalone": "kubeflow", "kubeflow-profile": "kubeflow-user-example-com"}


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed: `pip install -e .[dev]` provides it")
    return path


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str, tmp_path: Path) -> None:
    rendered = subprocess.run(
        [_tool("kubectl"), "kustomize", str(ROOT / "manifests/overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = {d["kind"] for d in docs}
    if overlay in PIPELINE_OVERLAYS:  # where the pipeline's pods run (test_cluster_fit.py)
        # ... in a namespace of the KFP or Kubeflow install, which the overlay does not own
        assert {"ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim"} <= kinds
        assert "Namespace" not in kinds
        ns = PIPELINE_OVERLAYS[overlay]
    else:  # MLflow, in its own namespace
        assert {"Namespace", "ServiceAccount", "Deployment", "Service", "ConfigMap"} <= kinds
        ns = "twhin-bert"
        assert next(d for d in docs if d["kind"] == "Namespace")["metadata"]["name"] == ns
    namespaced = [d for d in docs if d["kind"] not in {"Namespace", "PriorityClass"}]
    assert all(d["metadata"].get("namespace") == ns for d in namespaced)
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered.stdout)
    res = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_mlflow_server_reads_its_backend_from_a_secret() -> None:
    deploy = next(
        d
        for d in yaml.safe_load_all((ROOT / "manifests/base/mlflow.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-backend"


def _mlflow_container(overlay: str | None = None) -> dict:
    """The MLflow container of the base manifest, or of an overlay as kustomize renders it."""
    if overlay is None:
        docs = yaml.safe_load_all((ROOT / "manifests/base/mlflow.yaml").read_text())
    else:
        rendered = subprocess.run(
            [_tool("kubectl"), "kustomize", str(ROOT / "manifests/overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
        )
        docs = yaml.safe_load_all(rendered.stdout)
    deploy = next(d for d in docs if d and d["kind"] == "Deployment")
    return next(
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"
    )


def test_prod_tracking_uri_matches_the_configmap() -> None:
    """Where the pipeline config meets the manifests: tasks must find the MLflow service."""
    prod = yaml.safe_load((ROOT / "pipelines/configs/prod.yaml").read_text())
    config_map = yaml.safe_load((ROOT / "manifests/base/config.yaml").read_text())
    uri = prod["resources"]["default"]["env"]["MLFLOW_TRACKING_URI"]
    assert uri == config_map["data"]["MLFLOW_TRACKING_URI"]
    # ... and that URI names the Service of mlflow.yaml in the kustomize namespace, on its port.
    base = yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())
    service = next(
        d
        for d in yaml.safe_load_all((ROOT / "manifests/base/mlflow.yaml").read_text())
        if d["kind"] == "Service"
    )
    port = service["spec"]["ports"][0]["port"]
    assert (
        uri == f"http://{service['metadata']['name']}.{base['namespace']}.svc.cluster.local:{port}"
    )


def test_mlflow_image_versions_agree_and_flags_exist() -> None:
    """The server image (base and gke-gpu overlay) is the MLflow version the project runs, and
    every flag the manifest passes exists in that version's `mlflow server`."""
    import mlflow

    version = re.search(
        r"^ARG MLFLOW_VERSION=(\S+)$",
        (ROOT / "images/Dockerfile.mlflow").read_text(),
        re.MULTILINE,
    ).group(1)
    assert version == mlflow.__version__
    # -full: the core image lacks the `auth` extra that --app-name basic-auth needs.
    assert _mlflow_container()["image"] == f"ghcr.io/mlflow/mlflow:v{version}-full"
    assert _mlflow_container("gke-gpu")["image"].endswith(f"/twhin-bert-mlflow:v{version}")
    help_text = subprocess.run(
        [_tool("mlflow"), "server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flags = set(re.findall(r"--[a-z-]+", " ".join(_mlflow_container()["args"])))
    assert flags and all(f in help_text for f in flags), flags


def test_mlflow_server_accepts_its_service_name_as_host(tmp_path: Path) -> None:
    """Runs `mlflow server` with the manifest's own command line (port and worker count aside),
    the basic-auth config and rules of its ConfigMap as kustomize renders and mounts them, and
    test values for the Secret `mlflow-auth`: a request addressed to the in-cluster service name
    is served to a user with credentials, another host is refused, no credentials give 401."""
    docs = [
        d
        for d in yaml.safe_load_all(
            subprocess.run(
                [_tool("kubectl"), "kustomize", str(ROOT / "manifests/base")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        if d
    ]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "mlflow")
    # The ConfigMap volume, written where the container mounts it (a folder of tmp_path here).
    mount = next(m for m in container["volumeMounts"] if m["name"] == "mlflow-auth")
    config_map = next(v for v in pod["volumes"] if v["name"] == "mlflow-auth")["configMap"]
    data = next(
        d["data"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == config_map["name"]
    )
    mounted = tmp_path / "mlflow-auth"
    mounted.mkdir()
    for file, text in data.items():
        (mounted / file).write_text(text)
    scratch = tmp_path / "scratch"  # the container's /tmp
    scratch.mkdir()

    def local(value: str) -> str:
        return value.replace("/tmp/", f"{scratch}/").replace(mount["mountPath"], str(mounted))

    script = container["args"][0]
    assert "--port 5000" in script and "--workers 2" in script
    assert "--app-name basic-auth" in script
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = script.replace("--port 5000", f"--port {port}").replace("--workers 2", "--workers 1")
    script = local(script.replace("--host 0.0.0.0", "--host 127.0.0.1"))
    env = {e["name"]: local(e["value"]) for e in container["env"] if "value" in e}
    password = "test-admin-password"  # a test value for the Secret
    secret = {  # test values for every key the manifest takes from the Secret mlflow-auth
        "admin-username": "admin",
        "admin-password": password,
        "flask-secret-key": "test-flask-secret-key",
        "auth-database-uri": f"sqlite:///{tmp_path}/basic_auth.db",
    }
    refs = {
        e["name"]: e["valueFrom"].get("secretKeyRef", {})
        for e in container["env"]
        if "valueFrom" in e
    }
    from_secret = {n: r["key"] for n, r in refs.items() if r.get("name") == "mlflow-auth"}
    assert set(from_secret.values()) == set(secret), from_secret
    env |= {name: secret[key] for name, key in from_secret.items()}
    env |= {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [*container["command"], script],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    credentials = base64.b64encode(f"admin:{password}".encode()).decode()

    def get(path: str, host: str, *, auth: bool = True) -> int:
        headers = {"Host": host}
        if auth:
            headers["Authorization"] = f"Basic {credentials}"
        # A password check costs a PBKDF2 hash: seconds on a loaded CPU.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", path, headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if get("/health", "127.0.0.1") == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not become healthy in 90 s"
            time.sleep(0.5)
        search = "/api/2.0/mlflow/experiments/search?max_results=1"
        service = "mlflow.twhin-bert.svc.cluster.local:5000"
        assert get(search, service) == 200
        assert get(search, "localhost:5000") == 200  # kubectl port-forward
        assert get(search, "attacker.example.com") == 403
        assert get(search, service, auth=False) == 401
        # The ini's database_uri was replaced by the Secret's: the users live there.
        assert (tmp_path / "basic_auth.db").stat().st_size > 0
        assert "sqlite:///basic_auth.db" not in (scratch / "basic_auth.ini").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("overlay", ["dev", "gke-gpu"])
def test_mlflow_overlays_keep_the_auth_rules_mounted(overlay: str) -> None:
    """Whatever image an overlay swaps in (gke-gpu: images/Dockerfile.mlflow, which does not bake
    the rules in), the pod still mounts the ConfigMap holding basic_auth.ini and the module its
    authorization_function names, at the folder on the container's PYTHONPATH."""
    import configparser

    rendered = subprocess.run(
        [_tool("kubectl"), "kustomize", str(ROOT / "manifests/overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "mlflow")
    assert "--app-name basic-auth" in container["args"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[env["PYTHONPATH"]])
    data = next(
        d["data"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    ini = configparser.ConfigParser()
    ini.read_string(data["basic_auth.ini"])
    module = ini["mlflow"]["authorization_function"].split(":")[0]
    assert f"{module}.py" in data
    assert f"{env['PYTHONPATH']}/basic_auth.ini" in container["args"][0]


def test_no_credential_on_a_command_line_in_docs_or_manifests() -> None:
    """What the operator types puts no password, token or key on a command line (process
    lists, shell history): Secrets are created --from-file (private files, Secret Manager)."""
    credential = re.compile(
        r"--from-literal=([\w.-]*(password|token|secret|key|uri)[\w.-]*)=", re.I
    )
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "manifests").rglob("*")]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {m.group(1)}"
        for path in files
        if path.is_file()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for m in credential.finditer(line)
    ]
    assert found == []


def test_prod_checkpoint_volume_is_a_claim_the_gpu_overlay_creates() -> None:
    """pretrain.checkpoint_dir lies on a PVC mounted by the pretrain task, and that PVC exists
    (where the pods run: test_cluster_fit.py checks the namespaces)."""
    prod = yaml.safe_load((ROOT / "pipelines/configs/prod.yaml").read_text())
    mounts = prod["resources"]["pretrain"]["pvc_mounts"]
    ckpt = prod["pretrain"]["checkpoint_dir"]
    assert any(ckpt.startswith(path.rstrip("/") + "/") for path in mounts.values())
    rendered = subprocess.run(
        [_tool("kubectl"), "kustomize", str(ROOT / "manifests/overlays/kfp-standalone")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    claims = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "PersistentVolumeClaim"
    }
    assert set(mounts) <= claims


def test_server_rules_state_the_registrys_facts() -> None:
    """The server-side rules (stock MLflow image, no twhin-bert inside) restate the registry's
    aliases, record fields, audit prefix and approval tags: they must agree."""
    import importlib.util

    from twhin_bert.register_model import registry

    path = ROOT / "manifests/base/mlflow-auth/twhin_bert_mlflow_auth.py"
    spec = importlib.util.spec_from_file_location("twhin_bert_mlflow_auth", path)
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    assert set(registry.ALIASES) == rules.ALIASES
    assert rules.RECORD_FIELDS == registry.RECORD_FIELDS
    assert rules.AUDIT_PREFIX == registry.AUDIT_PREFIX
    record = {f: None for f in registry.RECORD_FIELDS}
    record.update(action="approve", actor="a", reason="r", time="t", forced=False)
    record.update(to_version="2", from_version="1", version="2", alias="champion")
    approval = {**record, "action": "approve"}
    rollback = {**record, "action": "rollback"}
    tags = {k for r in (approval, rollback) for k in registry._version_tags(r)[1]}
    assert tags == rules.APPROVAL_TAGS
