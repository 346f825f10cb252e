"""The registered model serves tweet embeddings: one vector per text, in order, locally
through ``mlflow.pyfunc.load_model`` and over HTTP from a real ``mlflow models serve``
process on 127.0.0.1, the model registered through the register_model stage into a real
MLflow store (SQLite) that the serving process reads ``models:/NAME/VERSION`` from."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.types import DataType
from twhin_bert.common.encoder import embed_texts
from twhin_bert.register_model.config import RegisterModelConfig
from twhin_bert.register_model.register import run_register_model

SERVE_START_TIMEOUT_S = 120
TEXTS = [
    "a tiny tweet about football",
    "hello",
    "another tweet #music",
    "hello world of tweets",
    "football football football tonight",
]
HIDDEN = 32  # conftest's tiny_model_dir


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own SQLite MLflow store (tracking + registry), as the product's default
    store is laid out; the serving process reads the registered model from it."""
    home = tmp_path_factory.mktemp("pyfunc-home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWHIN_BERT_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        for var in ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            mp.delenv(var, raising=False)
        yield uri


@pytest.fixture(scope="module")
def registered(store: str, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``models:/NAME/VERSION`` of the tiny model registered through the register_model stage."""
    tmp = tmp_path_factory.mktemp("pyfunc")
    evaluation = tmp / "evaluation"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps({"primary": {"hits@10": 0.2}}))
    run_register_model(
        RegisterModelConfig(model_name="tw-serving"),
        tmp / "out",
        pipeline_run_id="serving-test",
        model=tiny_model_dir,
        evaluation=evaluation,
        pipeline_config={"seed": 0},
        data_window="2026-10-01/2026-10-31",
    )
    return json.loads((tmp / "out" / "registration.json").read_text())["model_uri"]


@pytest.fixture(scope="module")
def loaded(registered: str) -> object:
    import mlflow

    return mlflow.pyfunc.load_model(registered)


def _expected(model_dir: Path, texts: list[str]) -> dict[str, np.ndarray]:
    return embed_texts(model_dir, texts, device="cpu")


def test_one_embedding_per_text_in_order(loaded: object, tiny_model_dir: Path) -> None:
    for n in (2, 5):
        texts = TEXTS[:n]
        out = np.asarray(loaded.predict(pd.DataFrame({"text": texts})))
        assert out.shape == (n, 2 * HIDDEN) and out.dtype == np.float32
        # Each row is that text's Combined vector, as if embedded alone.
        for i, text in enumerate(texts):
            alone = _expected(tiny_model_dir, [text])["combined"][0]
            np.testing.assert_allclose(out[i], alone, rtol=1e-4, atol=1e-5)
        assert not np.allclose(out[0], out[1])
    # Swapping the inputs swaps the rows.
    swapped = np.asarray(loaded.predict(pd.DataFrame({"text": TEXTS[:2][::-1]})))
    np.testing.assert_allclose(swapped, out[:2][::-1], rtol=1e-4, atol=1e-5)


def test_pooling_parameter(loaded: object, tiny_model_dir: Path) -> None:
    texts = TEXTS[:3]
    expected = _expected(tiny_model_dir, texts)
    frame = pd.DataFrame({"text": texts})
    for pooling, width in (("cls", HIDDEN), ("mean", HIDDEN), ("combined", 2 * HIDDEN)):
        out = np.asarray(loaded.predict(frame, params={"pooling": pooling}))
        assert out.shape == (3, width), pooling
        np.testing.assert_allclose(out, expected[pooling], rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match=r"params.pooling = 'max'; expected one of cls, mean"):
        loaded.predict(frame, params={"pooling": "max"})


def test_signature(loaded: object) -> None:
    sig = loaded.metadata.signature
    assert sig is not None
    assert sig.inputs.input_names() == ["text"]
    assert sig.inputs.inputs[0].type == DataType.string
    out = sig.outputs.inputs[0]
    assert out.type == np.dtype(np.float32) and out.shape == (-1, 2 * HIDDEN)
    params = {p.name: p.default for p in sig.params.params}
    assert params == {"pooling": "combined"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def serving(registered: str, store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow models serve --env-manager local`` process; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", registered,
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # mlflow runs `uvicorn` from PATH: the venv's bin, as in an activated environment.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": path}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited ({proc.returncode}):\n"
                            f"{log_path.read_text()[-3000:]}")  # fmt: skip
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve not up after {SERVE_START_TIMEOUT_S}s:\n"
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


def test_http_invocations_match_local_predict(serving: str, loaded: object) -> None:
    texts = TEXTS[:4]
    records = [{"text": t} for t in texts]
    local = {
        p: np.asarray(loaded.predict(pd.DataFrame({"text": texts}), params={"pooling": p}))
        for p in ("cls", "combined")
    }
    status, body = _post(
        f"{serving}/invocations", {"dataframe_records": records, "params": {"pooling": "cls"}}
    )
    assert status == 200, body
    got = np.asarray(body["predictions"], dtype=np.float32)
    assert got.shape == (4, HIDDEN)
    np.testing.assert_allclose(got, local["cls"], rtol=1e-4, atol=1e-5)

    status, body = _post(f"{serving}/invocations", {"dataframe_records": records[::-1]})
    assert status == 200, body
    got = np.asarray(body["predictions"], dtype=np.float32)
    np.testing.assert_allclose(got, local["combined"][::-1], rtol=1e-4, atol=1e-5)

    status, body = _post(
        f"{serving}/invocations", {"dataframe_records": records, "params": {"pooling": "max"}}
    )
    assert status == 400 and "expected one of cls, mean, combined" in body.get("message", ""), body


def test_resolve_champion_reads_both_layouts(
    registered: str, store: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The champion comes back as the exported folder, byte for byte, from the pyfunc layout
    and from a version logged with the transformers flavor before it (a registry's champion)."""
    import mlflow
    from transformers import AutoModel, AutoTokenizer
    from twhin_bert.register_model import registry

    name, version = registered.removeprefix("models:/").split("/")
    client = registry.connect()
    client.set_registered_model_alias(name, registry.CHAMPION, version)
    registry.resolve_champion(name, tmp_path / "new")
    for f in tiny_model_dir.iterdir():
        assert (tmp_path / "new" / f.name).read_bytes() == f.read_bytes(), f.name

    with mlflow.start_run():
        info = mlflow.transformers.log_model(
            transformers_model={
                "model": AutoModel.from_pretrained(tiny_model_dir),
                "tokenizer": AutoTokenizer.from_pretrained(tiny_model_dir),
            },
            name="model",
            task="feature-extraction",
            pip_requirements=["transformers"],
        )
        mlflow.MlflowClient().log_model_artifact(
            info.model_id, str(tiny_model_dir / "mlm_head.safetensors"), "extra"
        )
    old = mlflow.register_model(info.model_uri, "tw-legacy")
    client.set_registered_model_alias("tw-legacy", registry.CHAMPION, str(old.version))
    registry.resolve_champion("tw-legacy", tmp_path / "old")
    assert (tmp_path / "old" / "mlm_head.safetensors").read_bytes() == (
        tiny_model_dir / "mlm_head.safetensors"
    ).read_bytes()
    assert AutoModel.from_pretrained(tmp_path / "old").config.hidden_size == HIDDEN
