"""A planted credential never shows up in a compiled pipeline, an MLflow record or output.

The password is unique per session, so a grep that finds it finds a leak, not a
coincidence. Each grep is paired with a control that the value (or the Secret's name) was
really given. A real ``mlflow server`` on 127.0.0.1 is reached through a tracking URI that
carries the password, as an operator's ``MLFLOW_TRACKING_URI`` would.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from twhin_bert.common import tracking
from twhin_bert.common.config import ConfigError
from twhin_bert.common.redact import (
    RedactingFilter,
    is_secret_name,
    redact_mapping,
    redact_text,
    redact_uri,
)
from twhin_bert_pipelines.config import load_pipeline_config
from twhin_bert_pipelines.submit import compile_pipeline

PASSWORD = f"hunter2-{uuid.uuid4().hex[:12]}"
CLI = [sys.executable, "-m", "twhin_bert_pipelines.cli"]


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, wide enough that rich never wraps a line."""
    full_env = {**os.environ, "COLUMNS": "400", **env}
    return subprocess.run(
        [*CLI, *args], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (SQLite store), for this module."""
    root = tmp_path_factory.mktemp("mlflow-secrets")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert PASSWORD not in (root / "server.log").read_text()


def _secret_url(url: str) -> str:
    return url.replace("http://", f"http://trainer:{PASSWORD}@")


# ----------------------------------------------------------------------------- redaction rules
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("https://host/api?token=abc&x=1", "https://host/api?token=***&x=1"),
        ("https://h/?x=1&aws_secret_access_key=zz", "https://h/?x=1&aws_secret_access_key=***"),
        ("http://alice@host:5000", "http://alice@host:5000"),  # a user name alone stays
        ("http://host:5000/path?q=token", "http://host:5000/path?q=token"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("gs://bucket/tweets/*.jsonl", "gs://bucket/tweets/*.jsonl"),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
    assert redact_text(f"error at {uri} (timeout)") == f"error at {expected} (timeout)"


def test_redact_text_covers_unescaped_characters_in_passwords() -> None:
    # A password with '@' or ')' unescaped must not leak a tail after the mask.
    text = "reach http://u:p@ss)w0rd@h:1/x?token=ab)c and 'https://h/?api_key=k1'."
    out = redact_text(text)
    assert out == "reach http://u:***@h:1/x?token=*** and 'https://h/?api_key=***'."


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("MLFLOW_TRACKING_PASSWORD", True),
        ("MLFLOW_TRACKING_TOKEN", True),
        ("aws_secret_access_key", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("apiKey", True),
        ("DB_PASS", True),
        ("key", False),  # a toleration's key
        ("key_metric", False),
        ("tokenizer", False),
        ("max_tokens", False),
        ("MLFLOW_TRACKING_URI", False),
        ("passthrough", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


# ----------------------------------------------------------------------------- config and compile
def _bad_configs(tmp_path: Path) -> dict[str, Path]:
    docs = {
        "env_password": {"resources": {"default": {"env": {"MLFLOW_TRACKING_PASSWORD": PASSWORD}}}},
        "env_uri": {
            "resources": {
                "pretrain": {"env": {"MLFLOW_TRACKING_URI": f"http://u:{PASSWORD}@mlflow:5000"}}
            }
        },
        "env_query_token": {
            "resources": {"default": {"env": {"DATA_URL": f"https://h/d?token={PASSWORD}"}}}
        },
        "input_uri": {"inputs": {"tweets": [f"https://u:{PASSWORD}@files.example/t.jsonl"]}},
    }
    out = {}
    for name, doc in docs.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(yaml.safe_dump(doc))
    return out


def test_config_refuses_literal_credentials_without_echoing_them(tmp_path: Path) -> None:
    for name, path in _bad_configs(tmp_path).items():
        assert PASSWORD in path.read_text()  # control: the secret was planted
        with pytest.raises(ConfigError) as err:
            load_pipeline_config(path)
        message = str(err.value)
        assert PASSWORD not in message, name
        assert "\n" not in message and str(path) in message and "secret_env" in message, message
    # Through the CLI: exit 2, one line, and no compiled file.
    path = _bad_configs(tmp_path)["env_uri"]
    out = tmp_path / "compiled.yaml"
    r = _cli("compile", "--config", str(path), "--out", str(out), env={}, cwd=tmp_path)
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert PASSWORD not in text and not out.exists()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "env.MLFLOW_TRACKING_URI" in lines[0], lines


def _secret_config(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "resources": {
                    "default": {
                        "env": {
                            "MLFLOW_TRACKING_URI": "http://mlflow.twhin-bert.svc:5000",
                            "MLFLOW_TRACKING_USERNAME": "trainer",
                            "GOOGLE_APPLICATION_CREDENTIALS": "/var/secrets/gcp/key.json",
                        },
                        "secret_env": {
                            "MLFLOW_TRACKING_PASSWORD": {
                                "secret": "mlflow-client",
                                "key": "password",
                            }
                        },
                        "secret_volumes": {"gcp-sa": "/var/secrets/gcp"},
                    }
                }
            }
        )
    )
    return path


@pytest.mark.parametrize("which", ["pretrain", "retrain"])
def test_compiled_pipeline_names_secrets_never_values(tmp_path: Path, which: str) -> None:
    cfg = load_pipeline_config(_secret_config(tmp_path))
    path = compile_pipeline(cfg, tmp_path / f"{which}.yaml", which)  # type: ignore[arg-type]
    text = path.read_text()
    assert PASSWORD not in text
    docs = list(yaml.safe_load_all(text))
    spec, platform = docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executors = spec["deploymentSpec"]["executors"]
    # Every task gets the password from the Secret and the key file from its volume ...
    assert set(platform) == set(executors)
    for name, conf in platform.items():
        (ref,) = conf["secretAsEnv"]
        assert ref["secretNameParameter"]["runtimeValue"]["constant"] == "mlflow-client"
        assert ref["keyToEnv"] == [{"secretKey": "password", "envVar": "MLFLOW_TRACKING_PASSWORD"}]
        (vol,) = conf["secretAsVolume"]
        assert (vol["secretName"], vol["mountPath"]) == ("gcp-sa", "/var/secrets/gcp"), name
    # ... and no container sets it as a literal.
    for name, ex in executors.items():
        env = {e["name"]: e["value"] for e in ex["container"].get("env", [])}
        assert "MLFLOW_TRACKING_PASSWORD" not in env, name
        assert env["MLFLOW_TRACKING_USERNAME"] == "trainer", name


# ----------------------------------------------------------------------------- MLflow records
def _run_record(client: Any, run_id: str) -> str:
    """Everything MLflow holds about a run as one text: params, tags and text artifacts."""
    run = client.get_run(run_id)
    parts = [repr(run.data.params), repr(run.data.tags)]
    for art in client.list_artifacts(run_id):
        if not art.is_dir and art.path.endswith((".yaml", ".json", ".txt")):
            parts.append(Path(client.download_artifacts(run_id, art.path)).read_text())
    return "\n".join(parts)


def test_stage_run_hides_password_of_tracking_uri(mlflow_url: str, tmp_path: Path) -> None:
    import mlflow
    from twhin_bert.demo_data.generate import generate_demo

    uri = _secret_url(mlflow_url)
    demo = tmp_path / "demo"
    generate_demo(demo, users=40, tweets=200, parallel_pairs=10)
    r = _cli(
        "ingest",
        "--out",
        str(tmp_path / "ingested"),
        "--tweets",
        str(demo / "tweets.jsonl"),
        "--engagements",
        str(demo / "engagements.jsonl"),
        env={"MLFLOW_TRACKING_URI": uri},
        cwd=tmp_path,
    )
    output = r.stdout + r.stderr
    assert r.returncode == 0, output[-3000:]
    assert PASSWORD not in output
    client = mlflow.MlflowClient(mlflow_url)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.mlflow.runName = 'ingest'",
    )
    assert len(runs) == 1  # control: the stage reached the server through the secret URI
    record = _run_record(client, runs[0].info.run_id)
    assert runs[0].data.params and PASSWORD not in record


class _ClientConfig(BaseModel):
    tracking_uri: str
    api_token: str
    tokenizer: str = "wordpiece"


def test_logged_configs_are_redacted(mlflow_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from twhin_bert.register_model.register import _log_pipeline_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    secret_uri = f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow"
    pipeline_config = {
        "inputs": {"tweets": [f"https://u:{PASSWORD}@files.example/t.jsonl"]},
        "resources": {
            "default": {
                "env": {"DB_PASSWORD": PASSWORD, "STORE": secret_uri, "HF_HOME": "/cache"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "secret_env": {
                    "MLFLOW_TRACKING_PASSWORD": {"secret": "mlflow-client", "key": "pw"}
                },
            }
        },
    }
    assert redact_mapping(pipeline_config) != pipeline_config  # control: secrets are in it
    with tracking.stage_run(
        "register_model",
        _ClientConfig(tracking_uri=secret_uri, api_token=PASSWORD),
    ) as run:
        _log_pipeline_config(pipeline_config)
    client = mlflow.MlflowClient(mlflow_url)
    record = _run_record(client, run.info.run_id)
    assert PASSWORD not in record
    params = client.get_run(run.info.run_id).data.params
    # Keys stay, so the record shows what was set; only secret values are masked.
    assert params["pipeline.resources.default.env.DB_PASSWORD"] == "***"
    assert (
        params["pipeline.resources.default.env.STORE"] == "postgresql://mlflow:***@db:5432/mlflow"
    )
    assert params["pipeline.resources.default.env.HF_HOME"] == "/cache"
    assert params["api_token"] == "***" and params["tokenizer"] == "wordpiece"
    assert params["tracking_uri"] == "postgresql://mlflow:***@db:5432/mlflow"
    tolerations = yaml.safe_load(
        Path(client.download_artifacts(run.info.run_id, "pipeline_config.yaml")).read_text()
    )["resources"]["default"]["tolerations"]
    assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists"}]


# ----------------------------------------------------------------------------- output and logs
def test_registry_error_hides_password(mlflow_url: str, tmp_path: Path) -> None:
    r = _cli(
        "registry",
        "history",
        "--name",
        "no-such-model",
        env={"MLFLOW_TRACKING_URI": _secret_url(mlflow_url)},
        cwd=tmp_path,
    )
    text = r.stdout + r.stderr
    assert r.returncode == 2, text[-3000:]
    assert PASSWORD not in text
    assert "trainer:***@127.0.0.1" in text  # control: the URI was printed, redacted


def test_ui_prints_and_passes_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from twhin_bert_pipelines.cli import app
    from typer.testing import CliRunner

    launched: list[tuple[list[str], dict[str, str]]] = []

    def launch(cmd: list[str], env: dict[str, str]) -> int:  # the mlflow server launch
        launched.append((cmd, env))
        return 0

    monkeypatch.setattr(subprocess, "call", launch)
    uri = f"postgresql://mlflow:{PASSWORD}@127.0.0.1:5432/mlflow"
    result = CliRunner().invoke(app, ["ui"], env={"MLFLOW_TRACKING_URI": uri})
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and "mlflow:***@127.0.0.1" in result.output
    ((cmd, env),) = launched
    assert PASSWORD not in " ".join(cmd)  # `ps` shows argv to every user
    assert env["MLFLOW_BACKEND_STORE_URI"] == uri  # control: mlflow still gets the store


def test_cli_logging_redacts_messages_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    from twhin_bert_pipelines.cli import _setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _setup_logging(verbose=False)
        assert any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters)
        uri = f"http://trainer:{PASSWORD}@127.0.0.1:5000"
        log = logging.getLogger("twhin_bert.test_secrets")
        log.info("tracking at %s", uri)
        try:
            raise ConnectionError(f"cannot reach {uri}/api/2.0/mlflow/runs/create")
        except ConnectionError:
            log.exception("run failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert PASSWORD not in err
    assert err.count("trainer:***@127.0.0.1") == 2, err  # control: both records were written
