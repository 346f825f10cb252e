"""The images are reproducible and traceable: hadolint passes on upstream defaults (no ignore
list, only inline justified ignores), every base is pinned by digest, one lock of the Python
dependencies serves the dev install and all three images, and the compiled pipeline names the
exact ``<version>-<commit>`` tag."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted((ROOT / "images").glob("Dockerfile.*"))
LOCK = ROOT / "requirements.lock"


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _lock() -> dict[str, str]:
    pins = {}
    for i, line in enumerate(LOCK.read_text().splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"requirements.lock line {i}: expected name==version, got {line!r}"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_three_dockerfiles() -> None:
    assert [p.name for p in DOCKERFILES] == [
        "Dockerfile.cpu",
        "Dockerfile.gpu",
        "Dockerfile.mlflow",
    ]
    assert not (ROOT / "images/.hadolint.yaml").exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean_on_upstream_defaults(dockerfile: Path, tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: `pip install -e .[dev]` provides it"
    # An empty config in an empty folder: no project or user config can add an ignore list.
    empty = tmp_path / "hadolint.yaml"
    empty.write_text("{}\n")
    res = subprocess.run(
        [hadolint, "--config", str(empty), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # Each inline ignore has its reason on the comment lines just above it.
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"#\s*hadolint ignore=(\S+)", line)
        if m:
            for rule in m.group(1).split(","):
                above = "\n".join(lines[max(0, i - 4) : i])
                assert f"{rule}:" in above, (
                    f"{dockerfile.name}:{i + 1}: {rule} ignored without reason"
                )


def test_hadolint_still_catches_an_unpinned_base(tmp_path: Path) -> None:
    """The lint above can fail: a tag-only base and an unpinned pip line are reported."""
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    res = subprocess.run(
        [hadolint, "--no-color", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert res.returncode != 0 and "DL3007" in res.stdout and "DL3013" in res.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_is_pinned_by_digest(dockerfile: Path) -> None:
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), flags=re.M)
    assert froms
    for ref in froms:
        assert re.fullmatch(r"[\w./:-]+:[\w.-]+@sha256:[0-9a-f]{64}", ref), (
            f"{dockerfile.name}: FROM {ref} is not tag@sha256:<digest>"
        )
    assert (
        "ppa:" not in dockerfile.read_text() and "add-apt-repository" not in dockerfile.read_text()
    )


def test_pin_bases_script_finds_every_pinned_base(tmp_path: Path) -> None:
    """pin-bases.sh rewrites each FROM through `crane digest`; here a `crane` on PATH that
    answers a fixed digest stands in for the registry (no registry is reachable from tests)."""
    work = tmp_path / "images"
    shutil.copytree(ROOT / "images", work)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "crane").write_text("#!/bin/sh\necho sha256:" + "0" * 64 + "\n")
    (fake / "crane").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    check = subprocess.run(
        [str(work / "pin-bases.sh"), "--check"], capture_output=True, text=True, env=env
    )
    assert check.returncode == 1
    subprocess.run([str(work / "pin-bases.sh")], check=True, capture_output=True, env=env)
    for df in work.glob("Dockerfile.*"):
        refs = re.findall(r"^FROM\s+(\S+)", df.read_text(), flags=re.M)
        assert refs and all(r.endswith("@sha256:" + "0" * 64) for r in refs), df.name
    again = subprocess.run([str(work / "pin-bases.sh"), "--check"], env=env, capture_output=True)
    assert again.returncode == 0


def test_one_lock_for_dev_install_and_images() -> None:
    pins = _lock()
    # The whole dev install is pinned, but torch (the documented exception).
    for name in ("mlflow", "kfp", "deepspeed", "transformers", "faiss-cpu", "pytest", "pip"):
        assert name in pins, name
    assert "torch" not in pins and not any(n.startswith("faiss-gpu") for n in pins)
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c \$\(LOCK\) -e \"\.\[dev(,[a-z]+)*\]\"", make)
    for df in DOCKERFILES:
        text = df.read_text()
        assert "COPY requirements.lock" in text, df.name
        installs = re.findall(r"pip install [^\n]*", text)
        # Every pip line is constrained by the lock, or installs one of the documented exceptions.
        for line in installs:
            assert "-c " in line or "torch==" in line or "--no-deps" in line, (df.name, line)
    mlflow_df = (ROOT / "images/Dockerfile.mlflow").read_text()
    assert re.search(r"^ARG MLFLOW_VERSION=(\S+)", mlflow_df, re.M).group(1) == pins["mlflow"]


def test_mlflow_image_has_what_basic_auth_needs() -> None:
    """The server runs `mlflow server --app-name basic-auth` (manifests/base/mlflow.yaml), which
    needs MLflow's `auth` extra (Flask-WTF): the image installs the extra, every requirement of
    it is pinned by the lock, and the build imports it."""
    from importlib.metadata import requires

    auth = [r for r in requires("mlflow") or [] if re.search(r"extra\s*==\s*.auth.", r)]
    assert auth, "mlflow has no `auth` extra any more"
    pins = _lock()
    for req in auth:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower().replace("_", "-")
        assert name in pins, f"{name} (mlflow[auth]) is not in requirements.lock"
    text = (ROOT / "images/Dockerfile.mlflow").read_text()
    assert '"mlflow[auth]==${MLFLOW_VERSION}"' in text
    assert re.search(r"python -c \"import flask_wtf\.csrf, mlflow\.server\.auth\"", text)


def test_gpu_image_installs_gpu_extra_and_cpu_image_does_not() -> None:
    gpu = (ROOT / "images/Dockerfile.gpu").read_text()
    cpu = (ROOT / "images/Dockerfile.cpu").read_text()
    assert '".[gpu]"' in gpu and "[gpu]" not in cpu
    assert "uv python install" in gpu
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("faiss-gpu") for d in extras["gpu"])


def _head() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _compiled_images(tmp_path: Path, env: dict[str, str]) -> set[str]:
    code = (
        "import sys, yaml\n"
        "from twhin_bert_pipelines.config import load_pipeline_config\n"
        "from twhin_bert_pipelines.submit import compile_pipeline\n"
        "p = compile_pipeline(load_pipeline_config('prod'), sys.argv[1], 'pretrain')\n"
        "spec = next(yaml.safe_load_all(open(p)))\n"
        "print(sorted({e['container']['image'] for e in "
        "spec['deploymentSpec']['executors'].values()}))\n"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "p.yaml")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return set(json.loads(out.replace("'", '"')))


def test_compiled_pipeline_names_the_exact_tag(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TWHIN_BERT_IMAGE_TAG"}
    images = _compiled_images(tmp_path, env)
    tags = {i.rsplit(":", 1)[1] for i in images}
    assert len(tags) == 1
    (tag,) = tags
    # From this checkout: version and HEAD's commit (-dirty while tracked files are edited).
    assert re.fullmatch(rf"{re.escape(_version())}-{_head()}(-dirty)?", tag), tag
    assert any(i.startswith("ghcr.io/twhin-bert/twhin-bert-gpu:") for i in images)
    # A CI build pins the tag it pushed.
    images = _compiled_images(tmp_path, {**env, "TWHIN_BERT_IMAGE_TAG": "0.1.0-0123456789ab"})
    assert {i.rsplit(":", 1)[1] for i in images} == {"0.1.0-0123456789ab"}


def test_build_script_writes_the_tag_the_pipeline_reads(tmp_path: Path) -> None:
    """build.sh's _build_info.py is what kfp_utils reads (the same file name and variable)."""
    build = (ROOT / "images/build.sh").read_text()
    assert "components/twhin_bert/_build_info.py" in build and "IMAGE_TAG = " in build
    assert 'tag="${version}-$(git rev-parse --short=12 HEAD)"' in build
    assert '--build-arg "IMAGE_TAG=${tag}"' in build
    assert "components/twhin_bert/_build_info.py" in (ROOT / ".gitignore").read_text()
    info = ROOT / "components/twhin_bert/_build_info.py"
    if info.exists():
        pytest.skip("a real _build_info.py exists in this checkout")
    code = "from twhin_bert.common.kfp_utils import BASE_IMAGE; print(BASE_IMAGE)"
    try:
        info.write_text('IMAGE_TAG = "9.9.9-feedfacecafe"\n')
        env = {k: v for k, v in os.environ.items() if k != "TWHIN_BERT_IMAGE_TAG"}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
    finally:
        info.unlink()
    assert out == "ghcr.io/twhin-bert/twhin-bert-cpu:9.9.9-feedfacecafe"
