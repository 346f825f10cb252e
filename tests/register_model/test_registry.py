"""register_model + registry operations against a real ``mlflow server`` on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from twhin_bert.register_model import registry
from twhin_bert.register_model.config import RegisterModelConfig
from twhin_bert.register_model.register import run_register_model
from twhin_bert.register_model.registry import RegistryError

PIPELINE_CONFIG = {"seed": 3, "pretrain": {"max_steps": 10, "lr": 1e-4}, "evaluate": {"k@x": 10}}


def _register(
    name: str,
    model: Path,
    evaluation: Path,
    out: Path,
    *,
    run: str,
    auto_promote: bool = False,
    require_beat_base: bool = False,
) -> dict:
    cfg = RegisterModelConfig(
        model_name=name, auto_promote=auto_promote, gate={"require_beat_base": require_beat_base}
    )
    metrics = run_register_model(
        cfg,
        out,
        pipeline_run_id=run,
        model=model,
        evaluation=evaluation,
        pipeline_config=PIPELINE_CONFIG,
        data_window="2026-10-01/2026-10-31",
    )
    reg = json.loads((out / "registration.json").read_text())
    assert reg["version"] == str(metrics["version"])
    assert (out / "metrics.json").is_file()
    return reg


def _version_tags(name: str, version: str) -> dict[str, str]:
    return dict(registry.connect().get_model_version(name, version).tags)


def _aliases(name: str) -> dict[str, str]:
    return registry.get_aliases(registry.connect(), name)


def test_gate_approve_force_rollback_history(
    tracking_uri: str, tiny_model_dir: Path, make_evaluation: Callable[..., Path], tmp_path: Path
) -> None:
    name = "tw-approvals"
    good = make_evaluation(engagement_hits_at_10=0.20, hashtag_macro_f1=0.50, bench_f1=None)
    reg1 = _register(name, tiny_model_dir, good, tmp_path / "r1", run="kfp-run-1")

    # First version: nothing to beat, passes, recorded so; challenger, not champion.
    assert reg1["version"] == "1" and reg1["passed"] and reg1["verdict"] == "passed"
    assert reg1["champion_version"] is None and "no champion" in reg1["reasons"][0]
    assert reg1["aliases"] == ["challenger"] and reg1["promoted"] is False
    tags = _version_tags(name, "1")
    assert tags["gate.verdict"] == "passed" and tags["gate.champion_version"] == "none"
    assert tags["data_window"] == "2026-10-01/2026-10-31"
    assert tags["pipeline_run_id"] == "kfp-run-1"
    assert tags["git_sha"]
    assert json.loads(tags["key_metrics"])["engagement_hits@10"] == pytest.approx(0.20)
    assert float(tags["metric.engagement_hits_at_10"]) == pytest.approx(0.20)
    # The version's run carries the resolved pipeline config, as params and as an artifact.
    import mlflow

    run = mlflow.MlflowClient().get_run(reg1["run_id"])
    assert run.data.params["pipeline.pretrain.max_steps"] == "10"
    assert run.data.params["pipeline.evaluate.k_at_x"] == "10"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(reg1["run_id"])}
    assert {"pipeline_config.yaml", "evaluation", "config.yaml"} <= arts

    with pytest.raises(RegistryError, match="no 'champion' alias"):
        registry.resolve_champion(name, tmp_path / "nothing")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(name, actor="admin", reason="oops")

    registry.approve(name, 1, actor="admin", reason="first model looks fine")
    assert _aliases(name) == {"champion": "1"}  # challenger removed, no previous champion yet
    with pytest.raises(RegistryError, match="already the champion"):
        registry.approve(name, 1, actor="admin", reason="again")

    # A worse challenger fails the gate with reasons naming the metric and both values.
    worse = make_evaluation(engagement_hits_at_10=0.15, hashtag_macro_f1=0.505)
    reg2 = _register(name, tiny_model_dir, worse, tmp_path / "r2", run="kfp-run-2")
    assert reg2["version"] == "2" and not reg2["passed"] and reg2["champion_version"] == "1"
    failing = [r for r in reg2["reasons"] if "FAIL" in r]
    assert len(failing) == 1 and failing[0].startswith("engagement_hits@10: FAIL, 0.15 vs")
    cmp = reg2["comparison"]
    assert cmp["engagement_hits@10"]["champion"] == pytest.approx(0.20)
    assert cmp["engagement_hits@10"]["delta"] == pytest.approx(-0.05)
    assert cmp["hashtag_macro_f1"]["passed"] is True
    assert _version_tags(name, "2")["gate.verdict"] == "failed"
    assert _aliases(name) == {"champion": "1", "challenger": "2"}

    with pytest.raises(RegistryError, match="gate fails"):
        registry.approve(name, 2, actor="admin", reason="please")
    with pytest.raises(RegistryError, match="needs a --reason"):
        registry.approve(name, 2, actor="admin", reason=" ", force=True)
    entry = registry.approve(
        name, 2, actor="admin", reason="hotfix for a tokenizer bug", force=True
    )
    assert entry["action"] == "force_approve" and entry["from_version"] == "1"
    assert _aliases(name) == {"champion": "2", "previous-champion": "1"}
    tags2 = _version_tags(name, "2")
    assert tags2["approved_by"] == "admin" and tags2["approval_forced"] == "true"
    assert tags2["approval_reason"] == "hotfix for a tokenizer bug"
    assert tags2["approved_at"] == entry["time"]

    registry.rollback(name, actor="admin", reason="engagement dropped in prod")
    assert _aliases(name) == {"champion": "1", "previous-champion": "2"}
    assert _version_tags(name, "2")["rolled_back_by"] == "admin"

    hist = registry.history(name)
    assert [
        (h["action"], h["alias"], h["from_version"], h["to_version"], h["via"]) for h in hist
    ] == [
        ("gate", None, None, None, "register_model:kfp-run-1"),
        ("register", "challenger", None, "1", "register_model:kfp-run-1"),
        ("approve", "champion", None, "1", None),
        ("gate", None, None, None, "register_model:kfp-run-2"),
        ("register", "challenger", None, "2", "register_model:kfp-run-2"),
        ("force_approve", "champion", "1", "2", None),
        ("rollback", "champion", "2", "1", None),
    ]
    assert {h["actor"] for h in hist} == {"admin"}  # the authenticated user, every time
    assert all(h["outcome"]["status"] == "done" for h in hist)
    assert [h["seq"] for h in hist] == list(range(1, 8))
    assert [h["time"] for h in hist] == sorted(h["time"] for h in hist)
    assert hist[5]["forced"] is True and hist[6]["reason"] == "engagement dropped in prod"
    assert hist[3]["verdict"] == "failed" and "engagement_hits@10: FAIL" in hist[3]["reason"]

    rows = registry.list_versions(name)
    assert [(r["version"], r["aliases"], r["gate"]) for r in rows] == [
        (1, ["champion"], "passed"),
        (2, ["previous-champion"], "failed"),
    ]
    shown = registry.show(name, 2)
    assert shown["gate_verdict"]["comparison"]["engagement_hits@10"]["challenger"] == 0.15
    assert [h["action"] for h in shown["history"]] == [
        "gate",
        "register",
        "force_approve",
        "rollback",
    ]
    assert shown["champion"]["version"] == 1

    with pytest.raises(RegistryError, match="has no version '9'"):
        registry.show(name, "9")
    with pytest.raises(RegistryError, match="unknown registered model 'nope'"):
        registry.list_versions("nope")


def test_auto_promote_reject_and_resolve_champion(
    tracking_uri: str, tiny_model_dir: Path, make_evaluation: Callable[..., Path], tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    name = "tw-scheduled"
    base = make_evaluation(engagement_hits_at_10=0.30, hashtag_macro_f1=0.60)
    reg1 = _register(name, tiny_model_dir, base, tmp_path / "r1", run="sched-1", auto_promote=True)
    assert reg1["promoted"] and reg1["aliases"] == ["champion"]
    assert _version_tags(name, "1")["approved_by"] == "admin"

    # The champion comes back as a HF folder giving the same outputs.
    info = registry.resolve_champion(name, tmp_path / "champion")
    assert info["version"] == "1" and info["run_id"] == reg1["run_id"]
    text = ["a tiny tweet about football", "hello world"]
    outs = []
    for folder in (tiny_model_dir, tmp_path / "champion"):
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        batch = tok(text, padding=True, return_tensors="pt")
        with torch.no_grad():
            outs.append((batch["input_ids"], model(**batch).last_hidden_state))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-6)
    # ... with the training head and the model card logged beside the flavor's files.
    for extra in ("mlm_head.safetensors", "README.md"):
        assert (tmp_path / "champion" / extra).read_bytes() == (tiny_model_dir / extra).read_bytes()

    # A worse scheduled run is not promoted; a human rejects it.
    worse = make_evaluation(engagement_hits_at_10=0.31, hashtag_macro_f1=0.55)
    reg2 = _register(name, tiny_model_dir, worse, tmp_path / "r2", run="sched-2", auto_promote=True)
    assert not reg2["passed"] and not reg2["promoted"] and reg2["aliases"] == ["challenger"]
    assert "hashtag_macro_f1: FAIL" in " ".join(reg2["reasons"])
    with pytest.raises(RegistryError, match="is the champion"):
        registry.reject(name, 1, actor="admin", reason="no")
    registry.reject(name, 2, actor="admin", reason="hashtag F1 regressed 5 points")
    tags2 = _version_tags(name, "2")
    assert tags2["rejected_by"] == "admin" and tags2["rejection_reason"].startswith("hashtag")
    assert "rejected_at" in tags2
    assert _aliases(name) == {"champion": "1"}
    with pytest.raises(RegistryError, match="rejected by admin"):
        registry.approve(name, 2, actor="admin", reason="try")

    # A better one is promoted automatically; the old champion is kept for rollback.
    better = make_evaluation(engagement_hits_at_10=0.33, hashtag_macro_f1=0.595)
    reg3 = _register(
        name, tiny_model_dir, better, tmp_path / "r3", run="sched-3", auto_promote=True
    )
    assert reg3["passed"] and reg3["promoted"] and reg3["champion_version"] == "1"
    assert _aliases(name) == {"champion": "3", "previous-champion": "1"}
    # The pipeline acts as its authenticated MLflow user (the server refuses an audit record
    # in any other name); `via` says what acted for it.
    actions = [(h["action"], h["actor"], h["via"]) for h in registry.history(name)]
    assert actions[-2:] == [
        ("register", "admin", "register_model:sched-3"),
        ("auto_promote", "admin", "auto_promote:sched-3"),
    ]
    assert _version_tags(name, "3")["approved_by"] == "admin"
    assert ("reject", "admin", None) in actions


def test_gate_requires_beating_the_base_encoder(
    tracking_uri: str, tiny_model_dir: Path, make_evaluation: Callable[..., Path], tmp_path: Path
) -> None:
    """``gate.require_beat_base``: register_model reads the base's metrics from evaluate's
    ``metrics.json``; a challenger that does not beat them, or an evaluation without a base,
    fails the gate even with no champion to beat."""
    name = "tw-base-gate"
    base = {"engagement_hits_at_10": 0.20, "hashtag_macro_f1": 0.50}

    no_base = make_evaluation(engagement_hits_at_10=0.25, hashtag_macro_f1=0.55)
    reg = _register(
        name, tiny_model_dir, no_base, tmp_path / "r1", run="b1", require_beat_base=True
    )
    assert not reg["passed"]
    assert any("evaluate scored no base model" in r for r in reg["reasons"])

    worse = make_evaluation(base=base, engagement_hits_at_10=0.19, hashtag_macro_f1=0.55)
    reg = _register(name, tiny_model_dir, worse, tmp_path / "r2", run="b2", require_beat_base=True)
    assert not reg["passed"]
    assert any(r.startswith("engagement_hits@10: FAIL vs base") for r in reg["reasons"])

    better = make_evaluation(base=base, engagement_hits_at_10=0.25, hashtag_macro_f1=0.55)
    reg = _register(name, tiny_model_dir, better, tmp_path / "r3", run="b3", require_beat_base=True)
    assert reg["passed"], reg["reasons"]
    assert any(r.startswith("hashtag_macro_f1: pass vs base") for r in reg["reasons"])


def test_a_retried_registration_completes_the_version_it_created(
    tracking_uri: str,
    tiny_model_dir: Path,
    make_evaluation: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """register_model dies after creating its version, before the audit records it: the
    retried task (same pipeline run) records that version instead of creating another."""
    name = "tw-retried"
    evaluation = make_evaluation(engagement_hits_at_10=0.2, hashtag_macro_f1=0.5)

    def dies(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed before the audit record")

    with monkeypatch.context() as m:
        m.setattr(registry, "record_registration", dies)
        with pytest.raises(RuntimeError, match="killed before"):
            _register(name, tiny_model_dir, evaluation, tmp_path / "a1", run="kfp-run-7")
    assert [v.version for v in registry.connect().search_model_versions(f"name = '{name}'")] == [
        "1"
    ]
    assert registry.history(name) == []
    reg = _register(name, tiny_model_dir, evaluation, tmp_path / "a2", run="kfp-run-7")
    assert reg["version"] == "1" and reg["aliases"] == ["challenger"]
    assert [v.version for v in registry.connect().search_model_versions(f"name = '{name}'")] == [
        "1"
    ]
    assert [(h["action"], h["version"]) for h in registry.history(name)] == [
        ("gate", "1"),
        ("register", "1"),
    ]
    # a third attempt of the same run finds it recorded: nothing new
    again = _register(name, tiny_model_dir, evaluation, tmp_path / "a3", run="kfp-run-7")
    assert again["version"] == "1" and len(registry.history(name)) == 2
