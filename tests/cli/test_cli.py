"""The CLI through typer's CliRunner: help, config, compile, friendly errors, submit/schedule."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import yaml
from twhin_bert.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_help_lists_every_stage_and_pipeline_command() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in (
        "demo-data", "ingest", "build_graph", "embed_graph", "mine_pairs", "train_tokenizer",
        "pretrain", "embed", "evaluate", "register_model", "run", "compile", "submit", "schedule",
        "registry", "bench", "ui", "config",
    ):  # fmt: skip
        assert cmd in res.output, cmd
    assert runner.invoke(app, []).exit_code in (0, 2)  # no_args_is_help


def test_config_prints_resolved_yaml() -> None:
    res = runner.invoke(app, ["config", "--config", "prod"])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(res.output)
    assert cfg["pretrain"]["arch"]["hidden_size"] == 768 and cfg["seed"] == 0


def test_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: {arch: {num_layerz: 2}}\n")
    res = runner.invoke(app, ["compile", "--config", str(bad), "--out", str(tmp_path / "p.yaml")])
    assert res.exit_code == 2
    assert "bad.yaml" in res.output and "num_layerz" in res.output
    assert "Traceback" not in res.output


def test_compile_writes_pipeline_yaml(tmp_path: Path) -> None:
    out = tmp_path / "retrain.yaml"
    res = runner.invoke(
        app, ["compile", "--config", "tiny", "--pipeline", "retrain", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    spec = next(yaml.safe_load_all(out.read_text()))
    assert spec["pipelineInfo"]["name"].endswith("retrain")


class FakeClient:
    """Records the KFP API calls `submit` and `schedule` make (no cluster here)."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))

    def get_pipeline_id(self, name: str) -> str | None:
        self.calls.append(("get_pipeline_id", {"name": name}))
        return None

    def upload_pipeline(self, path: str, pipeline_name: str) -> Any:
        assert Path(path).is_file()
        self.calls.append(("upload_pipeline", {"name": pipeline_name}))
        return SimpleNamespace(pipeline_id="p-1")

    def upload_pipeline_version(
        self, path: str, pipeline_version_name: str, pipeline_id: str
    ) -> Any:
        self.calls.append(("upload_pipeline_version", {"pipeline_id": pipeline_id}))
        return SimpleNamespace(pipeline_version_id="v-1")

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        self.calls.append(("create_experiment", {"name": name}))
        return SimpleNamespace(experiment_id="e-1")

    def run_pipeline(self, **kwargs: Any) -> Any:
        self.calls.append(("run_pipeline", kwargs))
        return SimpleNamespace(run_id="r-1")

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self.calls.append(("create_recurring_run", kwargs))
        return SimpleNamespace(recurring_run_id="rr-1")


@pytest.fixture
def fake_kfp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[FakeClient]:
    import kfp

    FakeClient.calls = []
    monkeypatch.setattr(kfp, "Client", FakeClient)
    monkeypatch.chdir(tmp_path)
    return FakeClient


def test_submit_uploads_a_version_and_starts_a_run(fake_kfp: type[FakeClient]) -> None:
    res = runner.invoke(
        app,
        ["submit", "--host", "http://kfp.test", "--config", "tiny", "--param", 'data_window="w1"'],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["run_id"] == "r-1"
    calls = dict(fake_kfp.calls)
    assert calls["init"]["host"] == "http://kfp.test"
    assert calls["run_pipeline"]["params"] == {"data_window": "w1"}
    assert calls["run_pipeline"]["version_id"] == "v-1"


def test_schedule_uses_six_field_cron_on_the_retrain_pipeline(fake_kfp: type[FakeClient]) -> None:
    res = runner.invoke(
        app, ["schedule", "--host", "http://kfp.test", "--config", "tiny", "--cron", "0 3 * * *"]
    )
    assert res.exit_code == 0, res.output
    rr = dict(fake_kfp.calls)["create_recurring_run"]
    assert rr["cron_expression"] == "0 0 3 * * *"
    assert dict(fake_kfp.calls)["upload_pipeline"]["name"].endswith("retrain")
    # the compiled retrain package reads a rolling 28-day window ending at the scheduled time
    package = next(Path(".").glob("*-retrain.yaml")).read_text()
    assert "window_days" in package and "pipeline_job_schedule_time_utc" in package
    bad = runner.invoke(app, ["schedule", "--host", "http://kfp.test", "--cron", "every day"])
    assert bad.exit_code == 2 and "cron" in bad.output
