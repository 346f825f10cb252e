"""Images and manifests: lint the Dockerfiles, render and validate every kustomize overlay,
and tie image tags to the package version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERLAYS = sorted(p.name for p in (ROOT / "manifests" / "overlays").iterdir() if p.is_dir())


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed: `pip install -e .[dev]` provides it")
    return path


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_dockerfile_lints_clean(kind: str) -> None:
    res = subprocess.run(
        [
            _tool("hadolint"),
            "-c",
            str(ROOT / "images/.hadolint.yaml"),
            str(ROOT / f"images/Dockerfile.{kind}"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_gpu_image_installs_gpu_extra_and_cpu_image_does_not() -> None:
    gpu = (ROOT / "images/Dockerfile.gpu").read_text()
    cpu = (ROOT / "images/Dockerfile.cpu").read_text()
    assert 'pip install ".[gpu]"' in gpu
    assert "[gpu]" not in cpu.split("pip install .")[1].splitlines()[0]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("faiss-gpu") for d in extras["gpu"])


def test_image_tags_follow_package_version() -> None:
    from twhin_bert.common.kfp_utils import BASE_IMAGE, GPU_IMAGE

    version = _version()
    assert BASE_IMAGE.endswith(f"-cpu:{version}")
    assert GPU_IMAGE.endswith(f"-gpu:{version}")
    build = (ROOT / "images/build.sh").read_text()
    assert "pyproject.toml" in build and "twhin-bert-${kind}:${version}" in build


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
    assert {"Namespace", "ServiceAccount", "Deployment", "Service", "ConfigMap"} <= kinds
    namespaced = [d for d in docs if d["kind"] not in {"Namespace", "PriorityClass"}]
    assert all(d["metadata"].get("namespace") == "twhin-bert" for d in namespaced)
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
