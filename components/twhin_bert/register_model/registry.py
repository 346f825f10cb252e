"""Registry operations behind ``twhin-bert registry list | show | history | approve | reject |
rollback`` and the registration of register_model.

Aliases (MLflow 3) carry the state of a registered model:

* ``challenger`` -- the newest registered version awaiting a decision (set by register_model,
  removed when that version is approved or rejected);
* ``champion`` -- the version serving and warm-starting retraining;
* ``previous-champion`` -- the champion before the last move, where ``rollback`` goes back to.

MLflow keeps no history of alias moves, so every decision (register, gate verdict, approve,
auto-promote, forced approval, reject, rollback) is an audit record: one registered-model tag
``twhin_bert.audit.NNNNNNNN`` holding one JSON record (who, when, why, from, to, the alias
state before and after), written once and never rewritten, so the audit has no size cap and
each record stays far below PostgreSQL's VARCHAR(5000) tag value. Its outcome (``done`` or
``aborted``) is a second write-once tag ``twhin_bert.audit.NNNNNNNN.outcome``.

Consistency (docs/ARCHITECTURE.md, "The registry audit"): every decision runs under a
registry lock (compare-and-set on tags, re-read after the write) and writes its record
*before* touching an alias, then the aliases, then version tags, then the outcome. Whoever
takes the lock next finds a record without outcome and settles it from the aliases: they
show the record's ``after`` state -> completed; otherwise the ``before`` state is restored ->
aborted. A failed command thus changes nothing, or its rerun finds it done.

Every function reads the tracking/registry URI from ``MLFLOW_TRACKING_URI`` (or the local default
store, as the stages do) at call time.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from twhin_bert.common import tracking
from twhin_bert.common.artifacts import ModelFolder
from twhin_bert.common.redact import redact_uri
from twhin_bert.register_model.config import GateConfig
from twhin_bert.register_model.gate import GateVerdict, evaluate_gate, metrics_from_tags

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

AUDIT_PREFIX = "twhin_bert.audit."
OUTCOME_SUFFIX = ".outcome"
LOCK_PREFIX = "twhin_bert.lock."
#: Version tag holding the gate's configuration at registration (re-used by ``approve``).
TAG_GATE_CONFIG = "gate.config"
#: Version tag naming the pipeline run that registered it.
TAG_PIPELINE_RUN = "pipeline_run_id"
#: PostgreSQL stores MLflow tag values as VARCHAR(5000); one record must fit in one tag.
MAX_TAG_CHARS = 5000
MAX_REASON_CHARS = 1000
#: A lock claim older than this is a crashed holder's and is ignored; a holder checks before
#: every write that its claim is younger than this (it refuses to write otherwise).
LOCK_LEASE_S = 120.0
#: How long a decision waits for another one holding the lock before refusing: longer than
#: the lease, so that the claim of a holder killed with SIGKILL (never released) expires
#: while the next decision waits, instead of refusing every decision until then.
LOCK_WAIT_S = LOCK_LEASE_S + 30.0

_RECORD_KEY = re.compile(r"^twhin_bert\.audit\.(\d{8})$")
_OUTCOME_KEY = re.compile(r"^twhin_bert\.audit\.(\d{8})\.outcome$")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message says why and what to do."""


def resolve_actor(claimed: str | None = None) -> str:
    """Who acts: the authenticated MLflow user when the server asks for one.

    With ``MLFLOW_TRACKING_USERNAME`` set (the tracking server authenticates), that user is the
    actor, and a different ``--actor`` or ``TWHIN_BERT_ACTOR`` is refused. Without it, the
    claimed name, ``TWHIN_BERT_ACTOR`` or the login name.

    Args:
        claimed: The ``--actor`` of the command line, if given.

    Returns:
        The actor recorded in the audit.

    Raises:
        RegistryError: The claimed actor disagrees with the authenticated user.
    """
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "").strip()
    asserted = claimed or os.environ.get("TWHIN_BERT_ACTOR")
    if user:
        if asserted and asserted != user:
            raise RegistryError(
                f"actor {asserted!r} (--actor or TWHIN_BERT_ACTOR) is not the authenticated "
                f"MLflow user {user!r}: decisions are recorded under the authenticated identity"
            )
        return user
    return asserted or getpass.getuser()


def default_actor() -> str:
    """Who acts when the CLI is not told (see :func:`resolve_actor`)."""
    return resolve_actor(None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def connect() -> Any:
    """Points MLflow at the configured tracking and registry URIs; returns an ``MlflowClient``."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return mlflow.MlflowClient()


def _not_found(e: Exception) -> bool:
    return getattr(e, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _denied(e: Exception) -> bool:
    return getattr(e, "error_code", None) in ("PERMISSION_DENIED", "UNAUTHENTICATED") or any(
        f" {code}" in str(e) for code in ("403", "401")
    )


def _uri() -> str:
    import mlflow

    return redact_uri(mlflow.get_tracking_uri())


def _registered_model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if not _not_found(e):
            raise
        known = sorted(m.name for m in client.search_registered_models(max_results=1000))
        raise RegistryError(
            f"unknown registered model {name!r} at {_uri()}; registered models: {known or 'none'}"
        ) from e


def _versions_raw(client: Any, name: str) -> list[Any]:
    return list(client.search_model_versions(f"name = '{name}'"))


def resolve_version(client: Any, name: str, ref: str | int) -> str:
    """A version number or an alias (``champion``, ``challenger``, ...) as a version number.

    Raises:
        RegistryError: Neither a version number nor a current alias of the model.
    """
    rm = _registered_model(client, name)
    text = str(ref).strip()
    if text.isdigit():
        return str(int(text))
    aliases = {a: str(v) for a, v in rm.aliases.items()}
    if text in aliases:
        return aliases[text]
    raise RegistryError(
        f"{text!r} is neither a version number nor an alias of {name!r} "
        f"(aliases now: {', '.join(f'{a}=v{v}' for a, v in sorted(aliases.items())) or 'none'})"
    )


def _version(client: Any, name: str, ref: str | int) -> Any:
    from mlflow.exceptions import MlflowException

    version = resolve_version(client, name, ref)
    try:
        return client.get_model_version(name, version)
    except MlflowException as e:
        if not _not_found(e):
            raise
        known = sorted(int(v.version) for v in _versions_raw(client, name))
        raise RegistryError(
            f"registered model {name!r} has no version {version!r}; versions: {known or 'none'}"
        ) from e


def get_aliases(client: Any, name: str) -> dict[str, str]:
    """alias -> version (search_model_versions returns no aliases in MLflow 3; this does)."""
    return {a: str(v) for a, v in _registered_model(client, name).aliases.items()}


def _aliases_by_version(aliases: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, v in sorted(aliases.items()):
        out.setdefault(v, []).append(alias)
    return out


# ----------------------------------------------------------------------------- the audit
#: The fields of every decision record (the server's rules require them too).
RECORD_FIELDS = frozenset(
    {"seq", "time", "action", "version", "alias", "from_version", "to_version", "actor", "via",
     "reason", "forced", "before", "after"}
)  # fmt: skip


def _parse_record(seq: int, value: str) -> dict[str, Any]:
    """One stored record; one that is not a complete record comes back as
    ``{seq, action: "invalid", invalid: why}`` (never acted on, see :func:`_settle`)."""
    try:
        record = json.loads(value)
    except ValueError:
        record = None
    why = None
    if not isinstance(record, dict):
        why = "not a JSON object"
    elif missing := sorted(RECORD_FIELDS - set(record)):
        why = f"lacks {missing}"
    elif record["seq"] != seq:
        why = f"numbered {record['seq']!r} under key #{seq}"
    elif not all(
        isinstance(record[k], dict) and set(record[k]) <= set(ALIASES) for k in ("before", "after")
    ) or set(record["before"]) != set(record["after"]):
        why = "before/after are not states of the same aliases"
    if why is None:
        return dict(record)
    actor = record.get("actor") if isinstance(record, dict) else None
    time_ = record.get("time") if isinstance(record, dict) else None
    return {
        "seq": seq, "time": str(time_ or ""), "action": "invalid", "version": None, "alias": None,
        "from_version": None, "to_version": None, "actor": str(actor), "via": None,
        "reason": f"invalid record: {why}", "forced": False, "before": {}, "after": {},
        "invalid": why,
    }  # fmt: skip


def _audit(tags: dict[str, str]) -> list[dict[str, Any]]:
    """The audit records in the tags, oldest first, each with its ``outcome`` (or None)."""
    records: dict[int, dict[str, Any]] = {}
    outcomes: dict[int, dict[str, Any]] = {}
    for key, value in tags.items():
        if m := _RECORD_KEY.match(key):
            records[int(m.group(1))] = _parse_record(int(m.group(1)), value)
        elif m := _OUTCOME_KEY.match(key):
            try:
                outcomes[int(m.group(1))] = json.loads(value)
            except ValueError:
                outcomes[int(m.group(1))] = {"status": "invalid", "note": "not JSON"}
    return [{**records[s], "outcome": outcomes.get(s)} for s in sorted(records)]


def _record_key(seq: int) -> str:
    return f"{AUDIT_PREFIX}{seq:08d}"


def history(name: str) -> list[dict[str, Any]]:
    """Every recorded decision on a registered model, oldest first.

    Args:
        name: Registered model name.

    Returns:
        Records ``{seq, time, action, version, alias, from_version, to_version, actor, via,
        reason, forced, before, after, outcome}``; ``outcome`` is ``{status, time, actor,
        note}`` or None while the decision is in progress (or was cut off; the next decision
        settles it).
    """
    client = connect()
    return _audit(dict(_registered_model(client, name).tags))


class _Lock:
    """The registry lock of one registered model, held by one decision at a time."""

    def __init__(self, client: Any, name: str, actor: str) -> None:
        self.client, self.name, self.actor = client, name, actor
        self.key = LOCK_PREFIX + uuid.uuid4().hex
        self.acquired_at = 0.0

    def check(self) -> None:
        """Refuses to write once the lease is over (another decision may hold the lock)."""
        if time.time() - self.acquired_at > LOCK_LEASE_S - 10:
            raise RegistryError(
                f"lost the registry lock of {self.name!r} (held over {LOCK_LEASE_S:.0f}s); "
                "rerun the command: the next decision settles this one"
            )

    def acquire(self) -> None:
        # A claim is my own tag; I hold the lock when, after my claim is stored, the re-read
        # shows no other live claim. Of two concurrent claimants at most one can see only its
        # own: the later re-read follows both writes. Both seeing both -> both step back.
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            self.acquired_at = time.time()
            claim = {"actor": self.actor, "time": _now(), "at": self.acquired_at}
            self.client.set_registered_model_tag(self.name, self.key, json.dumps(claim))
            tags = dict(_registered_model(self.client, self.name).tags)
            others = []
            for key, value in tags.items():
                if not key.startswith(LOCK_PREFIX) or key == self.key:
                    continue
                other = json.loads(value)
                if time.time() - float(other.get("at", 0)) > LOCK_LEASE_S:
                    log.warning("dropping a stale registry lock claim of %s", other.get("actor"))
                    self.client.delete_registered_model_tag(self.name, key)
                else:
                    others.append(other)
            if not others:
                return
            self.client.delete_registered_model_tag(self.name, self.key)
            if time.monotonic() > deadline:
                holder = others[0]
                raise RegistryError(
                    f"another registry decision on {self.name!r} is in progress (by "
                    f"{holder.get('actor')} since {holder.get('time')}); retry in a minute"
                )
            time.sleep(random.uniform(0.05, 0.4))

    def release(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_tag(self.name, self.key)
        except MlflowException as e:  # the lease ends it anyway
            log.warning("could not release the registry lock of %s: %s", self.name, e)


@contextmanager
def _decision(client: Any, name: str, actor: str) -> Iterator[_Lock]:
    """Holds the registry lock and settles an unfinished earlier decision first."""
    _registered_model(client, name)
    lock = _Lock(client, name, actor)
    lock.acquire()
    try:
        for record in _audit(dict(_registered_model(client, name).tags)):
            if record["outcome"] is None:
                _settle(client, name, record, lock)
        yield lock
    finally:
        lock.release()


def _alias_state(client: Any, name: str) -> dict[str, str | None]:
    aliases = get_aliases(client, name)
    return {a: aliases.get(a) for a in ALIASES}


def _set_aliases(client: Any, name: str, target: dict[str, str | None], lock: _Lock) -> None:
    """Moves the aliases named in ``target`` there (None = absent); previous-champion first."""
    current = _alias_state(client, name)
    for alias in (PREVIOUS_CHAMPION, CHAMPION, CHALLENGER):
        if alias not in target or current.get(alias) == target[alias]:
            continue
        lock.check()
        if target[alias] is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, target[alias])


def _write_once(client: Any, name: str, key: str, value: dict[str, Any], lock: _Lock) -> None:
    from mlflow.exceptions import MlflowException

    text = json.dumps(value, sort_keys=True)
    if len(text) > MAX_TAG_CHARS:
        raise RegistryError(
            f"audit record {key} is {len(text)} characters; at most {MAX_TAG_CHARS}"
        )
    lock.check()
    try:
        client.set_registered_model_tag(name, key, text)
    except MlflowException as e:
        if not _denied(e):
            raise
        raise RegistryError(f"the server refused audit record {key} of {name!r}: {e}") from e
    stored = _registered_model(client, name).tags.get(key)
    if stored != text:  # someone else wrote it: the lock was not ours
        raise RegistryError(f"audit record {key} of {name!r} was written concurrently; rerun")


def _version_tags(record: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The version tags a completed decision leaves (mirrors of the audit for the UI)."""
    action, t = record["action"], record["time"]
    if action in ("approve", "force_approve", "auto_promote"):
        return record["to_version"], {
            "approved_by": record["actor"],
            "approved_at": t,
            "approval_reason": record["reason"],
            "approval_forced": str(record["forced"]).lower(),
        }
    if action == "reject":
        return record["version"], {
            "rejected_by": record["actor"],
            "rejected_at": t,
            "rejection_reason": record["reason"],
        }
    if action in ("rollback", "force_rollback") and record["from_version"] is not None:
        return record["from_version"], {
            "rolled_back_by": record["actor"],
            "rolled_back_at": t,
            "rollback_reason": record["reason"],
        }
    return None, {}


def _settle(client: Any, name: str, record: dict[str, Any], lock: _Lock) -> None:
    """An earlier decision without outcome: done if the aliases show its ``after`` state,
    else its ``before`` state is restored and it is marked aborted.

    A cut-off decision can only have moved aliases from its ``before`` to its ``after``. A
    record that is incomplete, or whose states the aliases show neither of, was not written by
    a decision of this registry: it is marked invalid and nothing is moved for it.
    """
    from mlflow.exceptions import MlflowException

    now = _alias_state(client, name)
    before, after = record.get("before"), record.get("after")
    why = record.get("invalid")
    if why is None and any(now.get(a) not in (before[a], after[a]) for a in after):
        why = f"the aliases {now} are neither its before {before} nor its after {after} state"
    if why is not None:
        status, note = "invalid", f"not a decision of this registry ({why}); nothing moved"
    elif all(now.get(a) == v for a, v in after.items()):
        # A promotion that moved nothing leaves no approval tags (a legitimate one always
        # moves champion); a rejection does not move champion, and its tags are its effect.
        moved = before != after or record["action"] == "reject"
        version, tags = _version_tags(record) if moved else (None, {})
        try:
            for k, v in tags.items():
                lock.check()
                client.set_model_version_tag(name, version, k, v)
        except MlflowException as e:  # approval tags are an approver's to write
            if not _denied(e):
                raise
            log.warning(
                "audit record %s of %s stays open for an approver to complete (its version "
                "tags need MANAGE): %s", record["seq"], name, e,
            )  # fmt: skip
            return
        status, note = "done", f"completed by {lock.actor}'s next decision"
    else:
        _set_aliases(client, name, before, lock)
        status, note = "aborted", f"cut off before its aliases moved; restored by {lock.actor}"
    log.warning("audit record %s of %s (%s): %s", record["seq"], name, record["action"], note)
    outcome = {"status": status, "time": _now(), "actor": lock.actor, "note": note}
    _write_once(client, name, _record_key(record["seq"]) + OUTCOME_SUFFIX, outcome, lock)


def _decide(
    client: Any,
    name: str,
    lock: _Lock,
    *,
    action: str,
    version: str | None,
    alias: str | None,
    before: dict[str, str | None],
    after: dict[str, str | None],
    actor: str,
    reason: str,
    via: str | None = None,
    forced: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Records a decision (intent), applies it, records its outcome; returns the record."""
    from mlflow.exceptions import MlflowException

    records = _audit(dict(_registered_model(client, name).tags))
    seq = records[-1]["seq"] + 1 if records else 1
    record = {
        "seq": seq,
        "time": _now(),
        "action": action,
        "version": version,
        "alias": alias,
        "from_version": before.get(alias) if alias else None,
        "to_version": after.get(alias) if alias else None,
        "actor": actor,
        "via": via,
        "reason": reason,
        "forced": forced,
        "before": before,
        "after": after,
        **(extra or {}),
    }
    key = _record_key(seq)
    _write_once(client, name, key, record, lock)
    try:
        _set_aliases(client, name, after, lock)
        tagged, tags = _version_tags(record)
        for k, v in tags.items():
            lock.check()
            client.set_model_version_tag(name, tagged, k, v)
    except MlflowException as e:
        if not _denied(e):
            raise  # the record stays open: the next decision settles it from the aliases
        _set_aliases(client, name, before, lock)  # nothing protected moved; restore the rest
        outcome = {"status": "aborted", "time": _now(), "actor": actor, "note": "permission denied"}
        _write_once(client, name, key + OUTCOME_SUFFIX, outcome, lock)
        raise RegistryError(
            f"{actor!r} may not {action.replace('_', ' ')} on {name!r} at {_uri()}: moving "
            f"{CHAMPION!r} needs MANAGE on the registered model (ask an MLflow admin); "
            f"recorded as audit #{seq}, aborted"
        ) from e
    outcome = {"status": "done", "time": _now(), "actor": actor, "note": ""}
    _write_once(client, name, key + OUTCOME_SUFFIX, outcome, lock)
    return {**record, "outcome": outcome}


def _check_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise RegistryError("an actor is required (who approves/rejects/rolls back)")


def _check_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError(f"{what} needs a --reason (it is recorded in the audit)")
    if len(reason) > MAX_REASON_CHARS:
        raise RegistryError(f"--reason is {len(reason)} characters; at most {MAX_REASON_CHARS}")
    return reason


def record_registration(
    name: str, version: str, verdict: GateVerdict, *, actor: str, via: str
) -> list[dict[str, Any]]:
    """Records a new version's gate verdict and makes it the ``challenger`` (two records).

    Args:
        name: Registered model name.
        version: The version register_model created.
        verdict: The promotion gate's verdict on it.
        actor: Who registers (the authenticated user of the pipeline).
        via: What registered it, e.g. ``register_model:<pipeline run>``.

    Returns:
        The two audit records (``gate``, ``register``).
    """
    _check_actor(actor)
    client = connect()
    with _decision(client, name, actor) as lock:
        state = _alias_state(client, name)
        gate = _decide(
            client, name, lock, action="gate", version=version, alias=None, before=state,
            after=state, actor=actor, via=via, reason="; ".join(verdict.reasons)[:MAX_REASON_CHARS],
            extra={"verdict": verdict.verdict, "champion_version": verdict.champion_version},
        )  # fmt: skip
        register = _decide(
            client, name, lock, action="register", version=version, alias=CHALLENGER,
            before={CHALLENGER: state[CHALLENGER]}, after={CHALLENGER: version}, actor=actor,
            via=via, reason=f"new version, gate {verdict.verdict}",
        )  # fmt: skip
    return [gate, register]


def version_of_pipeline_run(
    name: str, pipeline_run: str, same: dict[str, str]
) -> tuple[Any | None, bool]:
    """The version an earlier attempt of this pipeline run registered (a retried
    register_model task) from the same inputs, and whether its registration is in the audit.

    Args:
        name: Registered model name.
        pipeline_run: The pipeline run's id (version tag ``pipeline_run_id``).
        same: Version tags that must also match (the model folder, the data window): a rerun
            of the same run id with another model is a new version.

    Returns:
        ``(model version or None, audited)``.
    """
    client = connect()
    mine = [
        mv
        for mv in _versions_raw(client, name)
        if mv.tags.get(TAG_PIPELINE_RUN) == pipeline_run
        and all(mv.tags.get(k) == v for k, v in same.items())
    ]
    if not mine:
        return None, False
    mv = max(mine, key=lambda m: int(m.version))
    records = _audit(dict(_registered_model(client, name).tags))
    audited = any(
        r["action"] == "register" and r["version"] == str(mv.version)
        and (r["outcome"] or {}).get("status") == "done"
        for r in records
    )  # fmt: skip
    return mv, audited


# ----------------------------------------------------------------------------- reading
def _gate_metric_names(tags: dict[str, str]) -> list[str]:
    """The metrics of the gate the version was registered under (``gate.config``), in order."""
    try:
        return [m.name for m in GateConfig.model_validate_json(tags[TAG_GATE_CONFIG]).metrics]
    except (KeyError, ValueError):
        return []


def _version_summary(mv: Any, aliases_of: dict[str, list[str]]) -> dict[str, Any]:
    tags = dict(mv.tags)
    verdict = GateVerdict.from_tags(tags)
    return {
        "version": int(mv.version),
        "aliases": aliases_of.get(str(mv.version), []),
        "run_id": mv.run_id,
        "source": mv.source,
        "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(
            timespec="seconds"
        ),
        "gate": verdict.verdict if verdict else "not gated",
        # the champion that verdict was against (approve re-checks against today's)
        "gate_against": verdict.champion_version if verdict else None,
        "gate_metrics": _gate_metric_names(tags),
        "metrics": metrics_from_tags(tags) or {},
        "data_window": tags.get("data_window"),
        "git_sha": tags.get("git_sha"),
        "pipeline_run_id": tags.get(TAG_PIPELINE_RUN),
        "approved_by": tags.get("approved_by"),
        "approved_at": tags.get("approved_at"),
        "rejected_by": tags.get("rejected_by"),
        "rejected_at": tags.get("rejected_at"),
    }


def list_versions(name: str) -> list[dict[str, Any]]:
    """All versions of a registered model, oldest first, with aliases, gate and key metrics.

    Args:
        name: Registered model name.

    Returns:
        One summary dict per version (``version``, ``aliases``, ``gate``, ``metrics``, ...).

    Raises:
        RegistryError: The model is not registered.
    """
    client = connect()
    aliases_of = _aliases_by_version(get_aliases(client, name))
    rows = [_version_summary(mv, aliases_of) for mv in _versions_raw(client, name)]
    return sorted(rows, key=lambda r: r["version"])


def show(name: str, version: str | int) -> dict[str, Any]:
    """One version in full: summary, all tags, gate verdict and comparison, its audit records.

    Args:
        name: Registered model name.
        version: Version number or alias.

    Returns:
        The summary of :func:`list_versions` plus ``tags``, ``gate_verdict``, ``champion``
        (the champion's version and key metrics) and ``history``.

    Raises:
        RegistryError: Unknown model, version or alias.
    """
    client = connect()
    mv = _version(client, name, version)
    rm = _registered_model(client, name)
    aliases = {a: str(v) for a, v in rm.aliases.items()}
    out = _version_summary(mv, _aliases_by_version(aliases))
    verdict = GateVerdict.from_tags(mv.tags)
    out["gate_verdict"] = verdict.to_dict() if verdict else None
    out["tags"] = dict(sorted(mv.tags.items()))
    champion = aliases.get(CHAMPION)
    out["champion"] = None
    if champion is not None:
        tags = client.get_model_version(name, champion).tags
        out["champion"] = {"version": int(champion), "metrics": metrics_from_tags(tags) or {}}
    v = str(mv.version)
    out["history"] = [
        h
        for h in _audit(dict(rm.tags))
        if v in (h.get("version"), h.get("from_version"), h.get("to_version"))
    ]
    return out


# ----------------------------------------------------------------------------- decisions
def _regate(
    client: Any, name: str, mv: Any, champion: str | None
) -> tuple[GateVerdict | None, str]:
    """The gate of a version against the champion of this moment, and a note.

    The verdict of registration stands when it was against this same champion. Otherwise
    the gate (as configured at registration) compares the registered key metrics; versions
    trained on different data windows were evaluated on different data, so they are not
    comparable: the verdict fails and says so.
    """
    tags = dict(mv.tags)
    registered = GateVerdict.from_tags(tags)
    if registered is None:
        return None, "it was never gated (no gate.verdict tag)"
    if registered.champion_version == champion:
        return (
            registered,
            f"gate at registration against {('v' + champion) if champion else 'no champion'}",
        )
    cfg = (
        GateConfig.model_validate_json(tags[TAG_GATE_CONFIG])
        if TAG_GATE_CONFIG in tags
        else GateConfig()
    )
    metrics = metrics_from_tags(tags) or {}
    if champion is None:
        return evaluate_gate(cfg, metrics, None, None), "re-checked: there is no champion now"
    ctags = dict(client.get_model_version(name, champion).tags)
    mine, theirs = tags.get("data_window"), ctags.get("data_window")
    if mine and theirs and mine != theirs:
        return GateVerdict(
            False,
            [f"not comparable with champion v{champion}: evaluated on data window {mine}, "
             f"the champion on {theirs}"],
            {},
            champion,
        ), f"re-checked against champion v{champion}"  # fmt: skip
    verdict = evaluate_gate(cfg, metrics, metrics_from_tags(ctags), champion)
    return verdict, f"re-checked against champion v{champion} (registered metrics)"


def approve(
    name: str,
    version: str | int,
    *,
    actor: str,
    reason: str,
    force: bool = False,
    via: str | None = None,
) -> dict[str, Any]:
    """Promotes a version to ``champion``; the old champion becomes ``previous-champion``.

    The gate is re-checked against the champion of this moment (under the registry lock):
    a version that fails it, was never gated, is not comparable with the champion, or was
    rejected needs ``force``. The version is tagged ``approved_by``/``approved_at``/
    ``approval_reason``/``approval_forced`` and loses ``challenger``.

    Args:
        name: Registered model name.
        version: Version number or alias to promote.
        actor: Who approves (the authenticated user).
        reason: Why (required).
        force: Approve although the gate fails or the version was rejected.
        via: What acted for the actor, e.g. ``auto_promote:<pipeline run>``.

    Returns:
        The audit record of the move (with its outcome).

    Raises:
        RegistryError: Unknown model/version, already champion, gate not passed without
            ``force``, no reason, no actor, no permission, or the lock is busy.
    """
    _check_actor(actor)
    reason = _check_reason(reason, "approving a version")
    client = connect()
    v = str(_version(client, name, version).version)
    with _decision(client, name, actor) as lock:
        mv = client.get_model_version(name, v)
        state = _alias_state(client, name)
        if state[CHAMPION] == v:
            raise RegistryError(f"{name} v{v} is already the champion")
        verdict, note = _regate(client, name, mv, state[CHAMPION])
        problems = []
        if verdict is None:
            problems.append(note)
        elif not verdict.passed:
            failing = [r for r in verdict.reasons if "FAIL" in r or "not comparable" in r]
            problems.append(
                f"its promotion gate fails ({note}): " + "; ".join(failing or verdict.reasons)
            )
        if "rejected_by" in mv.tags:
            problems.append(
                f"it was rejected by {mv.tags['rejected_by']}: {mv.tags.get('rejection_reason', '')}"
            )
        if problems and not force:
            raise RegistryError(
                f"cannot approve {name} v{v}: {' and '.join(problems)}. "
                "Approve anyway with --force --reason '...'."
            )
        forced = bool(force and problems)
        action = (
            "force_approve"
            if forced
            else ("auto_promote" if via and via.startswith("auto") else "approve")
        )
        after = {
            PREVIOUS_CHAMPION: state[PREVIOUS_CHAMPION],
            CHAMPION: v,
            CHALLENGER: state[CHALLENGER],
        }
        if state[CHAMPION] is not None:
            after[PREVIOUS_CHAMPION] = state[CHAMPION]
        if state[CHALLENGER] == v:
            after[CHALLENGER] = None
        entry = _decide(
            client, name, lock, action=action, version=v, alias=CHAMPION, before=state,
            after=after, actor=actor, via=via, reason=reason, forced=forced,
            extra={"gate": verdict.verdict if verdict else "not gated", "gate_note": note,
                   "problems": problems},
        )  # fmt: skip
    log.info(
        "%s v%s is the champion (was %s), approved by %s", name, v, entry["from_version"], actor
    )
    return entry


def reject(name: str, version: str | int, *, actor: str, reason: str) -> dict[str, Any]:
    """Rejects a version: tags it ``rejected_by``/``rejected_at``/``rejection_reason`` and
    removes ``challenger`` from it (recorded in the audit).

    Args:
        name: Registered model name.
        version: Version number or alias to reject.
        actor: Who rejects.
        reason: Why (required).

    Returns:
        The audit record.

    Raises:
        RegistryError: Unknown model/version, no reason/actor, or the version is the champion
            (roll back first).
    """
    _check_actor(actor)
    reason = _check_reason(reason, "rejecting a version")
    client = connect()
    v = str(_version(client, name, version).version)
    with _decision(client, name, actor) as lock:
        state = _alias_state(client, name)
        if state[CHAMPION] == v:
            raise RegistryError(
                f"{name} v{v} is the champion; run `twhin-bert registry rollback --name {name}` "
                "(or approve another version) before rejecting it"
            )
        after = {CHALLENGER: None if state[CHALLENGER] == v else state[CHALLENGER]}
        entry = _decide(
            client, name, lock, action="reject", version=v, alias=CHALLENGER,
            before={CHALLENGER: state[CHALLENGER]}, after=after, actor=actor, reason=reason,
        )  # fmt: skip
    log.info("%s v%s rejected by %s", name, v, actor)
    return entry


def rollback(name: str, *, actor: str, reason: str, force: bool = False) -> dict[str, Any]:
    """Restores the previous champion: ``champion`` <- ``previous-champion``.

    The two swap, so the rolled-back version stays reachable as ``previous-champion`` (a second
    rollback undoes the first). A previous champion that was rejected is restored only with
    ``force``. The rolled-back version is tagged ``rolled_back_by``/``_at``/``rollback_reason``.

    Args:
        name: Registered model name.
        actor: Who rolls back.
        reason: Why (required).
        force: Restore the previous champion although it was rejected.

    Returns:
        The audit record.

    Raises:
        RegistryError: Unknown model, no reason/actor, no previous champion, or a rejected
            one without ``force``.
    """
    _check_actor(actor)
    reason = _check_reason(reason, "a rollback")
    client = connect()
    with _decision(client, name, actor) as lock:
        state = _alias_state(client, name)
        prev = state[PREVIOUS_CHAMPION]
        if prev is None:
            aliases = {a: v for a, v in state.items() if v}
            raise RegistryError(
                f"{name} has no previous champion to roll back to (aliases: {aliases or 'none'})"
            )
        tags = client.get_model_version(name, prev).tags
        forced = False
        if "rejected_by" in tags:
            if not force:
                raise RegistryError(
                    f"cannot roll back {name} to v{prev}: it was rejected by {tags['rejected_by']}"
                    f" ({tags.get('rejection_reason', '')}). Restore it anyway with --force "
                    "--reason '...'."
                )
            forced = True
        current = state[CHAMPION]
        after = {CHAMPION: prev, PREVIOUS_CHAMPION: current}
        entry = _decide(
            client, name, lock, action="force_rollback" if forced else "rollback", version=prev,
            alias=CHAMPION, before={CHAMPION: current, PREVIOUS_CHAMPION: prev}, after=after,
            actor=actor, reason=reason, forced=forced,
        )  # fmt: skip
    log.info("%s rolled back to v%s (from v%s) by %s", name, prev, current, actor)
    return entry


def champion_metrics(name: str) -> tuple[str | None, dict[str, float | None] | None]:
    """The current champion's version and key metrics (``{}`` when it has none recorded).

    Returns ``(None, None)`` when the model is not registered yet or has no champion.
    """
    from mlflow.exceptions import MlflowException

    client = connect()
    try:
        rm = client.get_registered_model(name)
    except MlflowException as e:
        if _not_found(e):
            return None, None
        raise
    version = rm.aliases.get(CHAMPION)
    if version is None:
        return None, None
    mv = client.get_model_version(name, str(version))
    return str(version), metrics_from_tags(mv.tags) or {}


def _model_folders(local: Path, uri: str) -> list[Path]:
    """The folders of a downloaded version that together make the exported HF folder: the
    pyfunc model's ``encoder`` artifact (the whole export), or -- versions logged before the
    pyfunc model -- the transformers flavor's model and tokenizer plus ``extra/``."""
    from twhin_bert.register_model.pyfunc import encoder_folder

    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        raise RegistryError(f"{uri}: no MLmodel file in the downloaded artifacts")
    flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("transformers")
    if flavor is None:
        try:
            return [encoder_folder(local)]
        except ValueError as e:
            raise RegistryError(f"{uri}: {e}") from e
    model_dir = local / flavor.get("model_binary", "model")
    tok_dir = local / "components" / "tokenizer"
    if "tokenizer" not in (flavor.get("components") or []) or not tok_dir.is_dir():
        raise RegistryError(f"{uri}: the logged model has no tokenizer component")
    if not (model_dir / ModelFolder.CONFIG).is_file():
        raise RegistryError(f"{uri}: no config.json under {flavor.get('model_binary')}/")
    return [model_dir, tok_dir, local / "extra"]  # extra: heads, model card, training log


def resolve_champion(name: str, dest: Path) -> dict[str, Any]:
    """Downloads the champion into ``dest`` as a Hugging Face folder (model + tokenizer).

    The whole exported folder comes back (the pyfunc model's ``encoder`` artifact): besides
    encoder and tokenizer, the MLM and social heads (a warm-start retraining continues from all
    the weights) and the model card. The folder loads with ``AutoModel.from_pretrained(dest)`` and
    ``AutoTokenizer.from_pretrained(dest)`` (the warm start of retraining). The version is pinned
    when resolved, so a concurrent promotion cannot mix two versions.

    Args:
        name: Registered model name.
        dest: Folder to write (created; files of the same name are overwritten).

    Returns:
        ``{name, version, run_id, model_uri, source, metrics, dest}``.

    Raises:
        RegistryError: Unknown model, no champion, or the logged model lacks the encoder
            folder (model config or tokenizer).
    """
    import mlflow

    client = connect()
    rm = _registered_model(client, name)
    version = rm.aliases.get(CHAMPION)
    if version is None:
        raise RegistryError(
            f"registered model {name!r} has no {CHAMPION!r} alias: approve a version first "
            f"(`twhin-bert registry approve {name} VERSION`)"
        )
    mv = client.get_model_version(name, str(version))
    uri = f"models:/{name}/{version}"
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="twhin-champion-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        for src in _model_folders(local, uri):
            if not src.is_dir():
                continue
            for f in src.iterdir():
                target = dest / f.name
                if f.is_dir():
                    shutil.copytree(f, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(f, target)
    info = {
        "name": name,
        "version": str(version),
        "run_id": mv.run_id,
        "model_uri": uri,
        "source": mv.source,
        "metrics": metrics_from_tags(mv.tags) or {},
        "dest": str(dest),
    }
    log.info("resolved %s champion v%s into %s", name, version, dest)
    return info
