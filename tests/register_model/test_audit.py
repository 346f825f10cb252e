"""The registry audit, its locking, the gate re-check and access control, against a real
``mlflow server --app-name basic-auth`` on PostgreSQL (conftest)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from twhin_bert.register_model import registry
from twhin_bert.register_model.config import GateConfig
from twhin_bert.register_model.gate import evaluate_gate, metrics_to_tags
from twhin_bert.register_model.registry import RegistryError

WINDOW = "2026-10-01/2026-10-31"


def _make_versions(name: str, metrics: list[dict[str, float]], window: str = WINDOW) -> None:
    """Registers one version per metrics mapping, gated against no champion (as register_model
    tags them), from one small logged run."""
    client = registry.connect()
    # this server's own experiment: a run's experiment id cached by an earlier test (another
    # store) does not exist here
    mlflow.set_experiment("twhin-bert-audit-tests")
    with mlflow.start_run() as run:
        mlflow.log_text("tiny", "m/README.md")
    client.create_registered_model(name)
    for m in metrics:
        tags = {
            **metrics_to_tags(m),
            **evaluate_gate(GateConfig(), m, None, None).to_tags(),
            "data_window": window,
            registry.TAG_GATE_CONFIG: GateConfig().model_dump_json(),
        }
        client.create_model_version(
            name, f"runs:/{run.info.run_id}/m", run_id=run.info.run_id, tags=tags
        )


def _m(hits: float, f1: float = 0.5) -> dict[str, float]:
    return {"engagement_hits@10": hits, "hashtag_macro_f1": f1}


def _check_consistent(name: str) -> list[dict[str, Any]]:
    """Aliases, previous-champion and the audit agree; returns the audit."""
    client = registry.connect()
    rm = client.get_registered_model(name)
    aliases = {a: str(v) for a, v in rm.aliases.items()}
    hist = registry.history(name)
    assert [h["seq"] for h in hist] == list(range(1, len(hist) + 1))
    assert all(h["outcome"] is not None for h in hist), "a decision left without outcome"
    assert not [k for k in rm.tags if k.startswith(registry.LOCK_PREFIX)], "lock left behind"
    moves = [h for h in hist if h["alias"] == "champion" and h["outcome"]["status"] == "done"]
    for earlier, later in itertools.pairwise(moves):
        assert later["from_version"] == earlier["to_version"], (earlier, later)
    if moves:
        assert aliases.get("champion") == moves[-1]["to_version"]
        assert aliases.get("previous-champion") == moves[-1]["from_version"]
    return hist


def test_more_than_21_alias_moves_on_postgres(tracking_uri: str) -> None:
    """Issue 9.2: the 21st move overflowed one VARCHAR(5000) history tag; now each decision is
    its own record and 30 moves leave a complete audit."""
    name = "tw-many-moves"
    _make_versions(name, [_m(0.2), _m(0.2)])
    registry.approve(name, 1, actor="admin", reason="first")
    registry.approve(name, 2, actor="admin", reason="second, same metrics " + "x" * 900)
    for i in range(28):
        registry.rollback(name, actor="admin", reason=f"swap {i} " + "y" * 900)
    hist = _check_consistent(name)
    assert len(hist) == 30 and sum(h["action"] == "rollback" for h in hist) == 28
    assert registry.get_aliases(registry.connect(), name) == {
        "champion": "2",
        "previous-champion": "1",
    }
    assert max(len(json.dumps(h)) for h in hist) < registry.MAX_TAG_CHARS


def test_concurrent_approvals_are_serialised(tracking_uri: str) -> None:
    """Issue 9.3: several `registry approve` processes at once; alias, previous champion and
    audit agree afterwards and no decision is lost."""
    name = "tw-race"
    _make_versions(name, [_m(0.3)] * 5)
    env = {**os.environ, "TWHIN_BERT_DEBUG": "0"}
    cmd = [sys.executable, "-m", "twhin_bert_pipelines.cli", "registry", "approve"]
    procs = [
        subprocess.Popen(
            [*cmd, str(v), "--name", name, "--reason", f"race {v}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (2, 3, 4, 5)
    ]
    results = [(p.wait(timeout=240), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], results
    hist = _check_consistent(name)
    approvals = [h for h in hist if h["action"] == "approve"]
    assert sorted(h["to_version"] for h in approvals) == ["2", "3", "4", "5"]
    assert approvals[0]["from_version"] is None  # the first one found no champion


def test_gate_is_rechecked_at_approval_and_rollback_respects_rejection(tracking_uri: str) -> None:
    """Issue 9.4: v1 (0.20, passed against no champion) cannot replace champion v2 (0.41)
    without --force; a rejected previous champion is not restored without --force."""
    name = "tw-gate"
    _make_versions(name, [_m(0.20), _m(0.41), _m(0.45)])
    registry.approve(name, "2", actor="admin", reason="best so far")
    with pytest.raises(RegistryError, match=r"gate fails .*engagement_hits@10: FAIL, 0\.2 vs"):
        registry.approve(name, "1", actor="admin", reason="I like it")
    with pytest.raises(RegistryError, match="needs a --reason"):
        registry.approve(name, "3", actor="admin", reason="  ")
    assert registry.get_aliases(registry.connect(), name)["champion"] == "2"
    # a version trained on another window is not comparable: say so, require --force
    client = registry.connect()
    client.set_model_version_tag(name, "3", "data_window", "2026-11-01/2026-11-30")
    with pytest.raises(RegistryError, match="not comparable with champion v2"):
        registry.approve(name, "3", actor="admin", reason="newer data")
    entry = registry.approve(name, "3", actor="admin", reason="newer data", force=True)
    assert entry["action"] == "force_approve" and entry["forced"] is True
    registry.reject(name, "2", actor="admin", reason="leaks PII")
    with pytest.raises(RegistryError, match=r"rejected by admin .*leaks PII"):
        registry.rollback(name, actor="admin", reason="v3 is slow")
    entry = registry.rollback(name, actor="admin", reason="v3 crashes; v2 scrubbed", force=True)
    assert entry["action"] == "force_rollback" and entry["to_version"] == "2"
    _check_consistent(name)


def test_a_cut_off_decision_is_settled_by_the_next(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision that dies after its record but before its aliases moved is aborted and
    undone by the next one; one that dies after the aliases moved is completed."""
    name = "tw-crash"
    _make_versions(name, [_m(0.3), _m(0.3), _m(0.3)])
    registry.approve(name, 1, actor="admin", reason="base")
    from mlflow import MlflowClient

    real = MlflowClient.set_registered_model_alias
    calls = {"n": 0}

    def dies_on_champion(self: Any, model: str, alias: str, version: str) -> None:
        if alias == "champion":
            raise ConnectionError("network gone")
        calls["n"] += 1
        real(self, model, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", dies_on_champion)
    with pytest.raises(ConnectionError):
        registry.approve(name, 2, actor="admin", reason="dies midway")
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", real)
    # previous-champion had already moved (none -> v1), champion had not; the record is open
    assert calls["n"] == 1 and registry.history(name)[-1]["outcome"] is None
    assert registry.get_aliases(registry.connect(), name) == {
        "champion": "1",
        "previous-champion": "1",
    }
    registry.approve(name, 3, actor="admin", reason="next decision")
    hist = _check_consistent(name)
    cut = next(h for h in hist if h["reason"] == "dies midway")
    assert cut["outcome"]["status"] == "aborted" and "restored" in cut["outcome"]["note"]
    assert registry.get_aliases(registry.connect(), name)["champion"] == "3"

    # dies after the aliases moved, before its tags and outcome: the next one completes it
    def dies_on_tags(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("network gone")

    real_tag = MlflowClient.set_model_version_tag
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", dies_on_tags)
    with pytest.raises(ConnectionError):
        registry.rollback(name, actor="admin", reason="dies after the move")
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", real_tag)
    assert registry.get_aliases(registry.connect(), name)["champion"] == "1"
    registry.reject(name, 2, actor="admin", reason="next decision")
    hist = _check_consistent(name)
    cut = next(h for h in hist if h["reason"] == "dies after the move")
    assert cut["outcome"]["status"] == "done"
    tags = registry.connect().get_model_version(name, "3").tags
    assert tags["rolled_back_by"] == "admin"

    # a rejection that moves no alias (v3 is no challenger), cut off before its tags: the
    # next decision completes it with its tags, so the version stays refused without --force
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", dies_on_tags)
    with pytest.raises(ConnectionError):
        registry.reject(name, 3, actor="admin", reason="dies before its tags")
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", real_tag)
    registry.reject(name, 2, actor="admin", reason="next decision, again")
    cut = next(h for h in _check_consistent(name) if h["reason"] == "dies before its tags")
    assert cut["outcome"]["status"] == "done"
    assert registry.connect().get_model_version(name, "3").tags["rejected_by"] == "admin"
    with pytest.raises(RegistryError, match="rejected by admin"):
        registry.approve(name, 3, actor="admin", reason="try")


@pytest.fixture
def users(tracking_uri: str) -> Iterator[dict[str, str]]:
    """Model tw-auth with two users: alice (MANAGE: an approver), mallory (EDIT only)."""
    from mlflow.server.auth.client import AuthServiceClient

    name = "tw-auth"
    _make_versions(name, [_m(0.3), _m(0.3)])
    admin = AuthServiceClient(tracking_uri)
    pw = {"alice": "alice-pw-0123456789", "mallory": "mallory-pw-0123456789"}
    for user, perm in (("alice", "MANAGE"), ("mallory", "EDIT")):
        admin.create_user(user, pw[user])
        admin.grant_user_permission(user, "registered_model", name, perm)
    yield pw


def _as(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_only_approvers_move_champion_and_the_record_names_them(
    users: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9.5: an EDIT user cannot approve (server-side), cannot forge or rewrite the audit;
    the approver recorded is the authenticated user."""
    name = "tw-auth"
    _as(monkeypatch, "mallory", users["mallory"])
    actor = registry.resolve_actor(None)
    assert actor == "mallory"
    with pytest.raises(RegistryError, match=r"'mallory' may not approve .*MANAGE"):
        registry.approve(name, 1, actor=actor, reason="me me me")
    client = registry.connect()
    assert "champion" not in client.get_registered_model(name).aliases
    with pytest.raises(MlflowException, match="may not move alias 'champion'"):
        client.set_registered_model_alias(name, "champion", "1")
    first = registry.history(name)[0]
    key = f"twhin_bert.audit.{first['seq']:08d}"
    with pytest.raises(MlflowException, match="append-only"):
        client.set_registered_model_tag(name, key, json.dumps({**first, "actor": "mallory"}))
    with pytest.raises(MlflowException, match="append-only"):
        client.delete_registered_model_tag(name, key)
    with pytest.raises(MlflowException, match="authenticated user is 'mallory'"):
        client.set_registered_model_tag(name, "twhin_bert.audit.00000099", '{"actor": "alice"}')
    # claiming another identity is refused before anything is sent
    monkeypatch.setenv("TWHIN_BERT_ACTOR", "alice")
    with pytest.raises(RegistryError, match="not the authenticated MLflow user 'mallory'"):
        registry.resolve_actor(None)
    monkeypatch.delenv("TWHIN_BERT_ACTOR")
    # A forged open record in her own name must not make the next decision move champion:
    # the server takes only a complete, next-numbered record whose 'before' is the registry's
    # state (so a settle "restores" nothing but the truth) ...
    seq = len(registry.history(name)) + 1
    key = f"twhin_bert.audit.{seq:08d}"
    forged = {f: None for f in registry.RECORD_FIELDS} | {
        "seq": seq, "time": "2026-12-01T00:00:00", "action": "approve", "alias": "champion",
        "actor": "mallory", "reason": "x", "forced": False,
    }  # fmt: skip
    lie = {**forged, "before": {"champion": "2"}, "after": {"champion": "2"}}
    with pytest.raises(MlflowException, match="is not the registry's state"):
        client.set_registered_model_tag(name, key, json.dumps(lie))
    with pytest.raises(MlflowException, match="lacks"):
        client.set_registered_model_tag(name, key, '{"actor": "mallory"}')
    with pytest.raises(MlflowException, match="not the next record"):
        client.set_registered_model_tag(name, f"twhin_bert.audit.{seq + 5:08d}", json.dumps(lie))
    intent = {**forged, "before": {"champion": None}, "after": {"champion": "2"}}
    client.set_registered_model_tag(name, key, json.dumps(intent))  # an intent, like any
    # ... and only approvers write a version's approval tags.
    with pytest.raises(MlflowException, match="approvals are recorded by approvers"):
        client.set_model_version_tag(name, "2", "approved_by", "alice")

    _as(monkeypatch, "alice", users["alice"])
    entry = registry.approve(name, 1, actor=registry.resolve_actor(None), reason="looks good")
    assert entry["actor"] == "alice" and entry["outcome"]["status"] == "done"
    assert client.get_model_version(name, "1").tags["approved_by"] == "alice"
    assert "approved_by" not in client.get_model_version(name, "2").tags
    hist = _check_consistent(name)
    denied = [h for h in hist if h["actor"] == "mallory"]
    assert [(h["action"], h["outcome"]["status"]) for h in denied] == [
        ("approve", "aborted"),  # her approve, denied by the server
        ("approve", "aborted"),  # her forged intent, settled by alice: champion never moved
    ]


def test_a_record_that_is_not_a_decision_is_never_acted_on() -> None:
    """Client side, whatever the server: an incomplete record is marked invalid (its fields
    defaulted so history and the CLI still read it), never settled from."""
    bad = registry._parse_record(7, '{"actor": "mallory"}')
    assert bad["action"] == "invalid" and "lacks" in bad["invalid"] and bad["before"] == {}
    assert registry._parse_record(7, "not json")["invalid"] == "not a JSON object"
    other = {f: None for f in registry.RECORD_FIELDS} | {"seq": 8, "before": {}, "after": {}}
    assert "under key #7" in registry._parse_record(7, json.dumps(other))["invalid"]
    good = {**other, "seq": 7, "before": {"champion": "1"}, "after": {"champion": "2"}}
    assert "invalid" not in registry._parse_record(7, json.dumps(good))


def test_cli_accepts_aliases_and_refuses_garbage(tracking_uri: str) -> None:
    """Issue 9.10 / 9.12: `approve abc` is one line and exit 2; `show champion` works; `list`
    fits 80 columns; --json keeps the full record."""
    name = "tw-cli"
    # as evaluate records them: the gate's metrics and one per benchmark language beside them
    langs = {"arabic_macro_f1": 0.41, "english_macro_f1": 0.52}
    _make_versions(name, [_m(0.3123456789) | langs, _m(0.35) | langs])
    registry.approve(name, 1, actor="admin", reason="base")
    env = {**os.environ, "COLUMNS": "80"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "twhin_bert_pipelines.cli", "registry", *args, "--name", name],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    bad = cli("approve", "abc", "--reason", "x")
    assert bad.returncode == 2, bad.stderr
    errors = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "'abc' is neither a version number nor an alias" in errors[0]
    assert "Traceback" not in bad.stderr
    shown = cli("show", "champion")
    assert shown.returncode == 0, shown.stderr
    assert f"{name} v1" in shown.stdout and "0.312" in shown.stdout
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert max(len(ln) for ln in listed.stdout.splitlines()) <= 80
    cells = " ".join(listed.stdout.split())  # rich folds long cells at 80 columns
    assert "0.312" in cells and "0.350" in cells and "approved" in cells and "admin" in cells
    assert "0.3123456789" not in listed.stdout
    # the columns are the gate's metrics, not the alphabetically first ones
    assert "hashtag" in cells and "arabic" not in cells
    # v2's verdict was against no champion; v1 is champion now: shown as stale
    assert "stale" in cells
    second = cli("show", "2")
    assert "gate at registration: passed (first, stale)" in second.stdout, second.stdout
    assert "the champion is now v1" in second.stdout
    as_json = json.loads(cli("list", "--json").stdout)
    assert as_json[0]["metrics"]["engagement_hits@10"] == 0.3123456789
    hist = cli("history")
    assert hist.returncode == 0 and "approve" in hist.stdout
