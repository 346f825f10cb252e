"""The stage wrapper (atomic outputs, metrics.json, MLflow runs) and the tracking helpers."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from pydantic import Field
from twhin_bert.common import tracking
from twhin_bert.common.config import ConfigError, StrictModel, load_stage_config
from twhin_bert.common.stage import partial_dir, stage


class ToyConfig(StrictModel):
    n: int = Field(3, description="How many lines.")
    seed: int = Field(0, description="Seed.")


@stage("toy")
def run_toy(cfg: ToyConfig, out_dir: Path, *, fail_after: int | None = None) -> dict:
    for i in range(cfg.n):
        (out_dir / f"{i}.txt").write_text(str(i))
        if fail_after is not None and i + 1 >= fail_after:
            raise RuntimeError("boom")
    return {"lines": cfg.n, "nested": {"a@1": 0.5}}


def test_stage_writes_atomically_and_logs_to_mlflow(tmp_path: Path) -> None:
    out = tmp_path / "out"
    metrics = run_toy(ToyConfig(n=2), out, pipeline_run_id="pr-1")
    assert sorted(p.name for p in out.iterdir()) == [
        ".twhin-bert-stage.json",
        "0.txt",
        "1.txt",
        "metrics.json",
    ]
    assert not partial_dir(out).exists()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["lines"] == 2 and saved["nested"] == {"a@1": 0.5} and saved["wall_seconds"] >= 0
    assert metrics["lines"] == 2

    tracking.configure()
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tracking.PIPELINE_RUN_TAG}` = 'pr-1'",
        output_format="list",
    )
    by_stage = {r.data.tags["twhin_bert.stage"]: r for r in runs}
    assert set(by_stage) == {"pipeline", "toy"}
    toy = by_stage["toy"]
    assert toy.data.tags["mlflow.parentRunId"] == by_stage["pipeline"].info.run_id
    assert toy.data.params["n"] == "2"
    assert toy.data.metrics["lines"] == 2.0 and toy.data.metrics["nested.a_at_1"] == 0.5


def test_second_stage_of_same_pipeline_run_shares_the_parent(tmp_path: Path) -> None:
    run_toy(ToyConfig(n=1), tmp_path / "a", pipeline_run_id="pr-2")
    run_toy(ToyConfig(n=1), tmp_path / "b", pipeline_run_id="pr-2")
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tracking.PIPELINE_RUN_TAG}` = 'pr-2'",
        output_format="list",
    )
    parents = [r for r in runs if r.data.tags["twhin_bert.stage"] == "pipeline"]
    assert len(parents) == 1
    assert all(
        r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for r in runs
        if r not in parents
    )


def test_failed_stage_leaves_no_output_but_keeps_partial_for_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        run_toy(ToyConfig(n=3), out, fail_after=2)
    assert not out.exists()
    assert sorted(p.name for p in partial_dir(out).iterdir()) == [
        ".twhin-bert-stage.json",
        "0.txt",
        "1.txt",
    ]
    run_toy(ToyConfig(n=3), out)  # the rerun completes and replaces the partial folder
    assert (out / "2.txt").exists() and not partial_dir(out).exists()


def test_stage_config_from_pipeline_file_takes_section_and_top_level_seed(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("seed: 42\ntoy:\n  n: 7\n  seed: 1\nother: {x: 1}\n")
    cfg = load_stage_config(ToyConfig, f, "toy")
    assert (cfg.n, cfg.seed) == (7, 42)


def test_stage_config_rejects_unknown_fields_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("n: 1\nnn: 2\n")
    with pytest.raises(ConfigError, match=r"(?s)s\.yaml.*nn.*Extra inputs"):
        load_stage_config(ToyConfig, f, "toy")
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_stage_config(ToyConfig, f, "toy")
