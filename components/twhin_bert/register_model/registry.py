"""Registry operations behind ``twhin-bert registry list | show | approve | reject | rollback``.

Aliases (MLflow 3) carry the state of a registered model:

* ``challenger`` -- the newest registered version awaiting a decision (set by register_model,
  removed when that version is approved or rejected);
* ``champion`` -- the version serving and warm-starting retraining;
* ``previous-champion`` -- the champion before the last move, where ``rollback`` goes back to.

MLflow keeps no history of alias moves, so every move is appended to a JSON list in the
registered-model tag ``twhin_bert.alias_history`` (who, when, why, from which version to which),
and the version itself is tagged (``approved_by``/``approved_at``/``approval_reason``,
``rejected_by``/..., ``rolled_back_by``/...).

Every function reads the tracking/registry URI from ``MLFLOW_TRACKING_URI`` (or the local default
store, as the stages do) at call time.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from twhin_bert.common import tracking
from twhin_bert.register_model.gate import GateVerdict, metrics_from_tags

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"

HISTORY_TAG = "twhin_bert.alias_history"
HISTORY_DROPPED_TAG = "twhin_bert.alias_history_dropped"
#: MLflow's limit on a registered-model tag value; the oldest history entries are dropped
#: (and counted in ``twhin_bert.alias_history_dropped``) past it. Version tags keep them too.
HISTORY_MAX_CHARS = 100_000


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message says why and what to do."""


def default_actor() -> str:
    """Who acts when the CLI is not told: ``TWHIN_BERT_ACTOR`` or the login name."""
    return os.environ.get("TWHIN_BERT_ACTOR") or getpass.getuser()


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


def _version(client: Any, name: str, version: str | int) -> Any:
    from mlflow.exceptions import MlflowException

    _registered_model(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        if not _not_found(e):
            raise
        known = sorted(int(v["version"]) for v in _versions_raw(client, name))
        raise RegistryError(
            f"registered model {name!r} has no version {version!r}; versions: {known or 'none'}"
        ) from e


def _uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def _versions_raw(client: Any, name: str) -> list[dict[str, Any]]:
    found = client.search_model_versions(f"name = '{name}'")
    return [{"version": v.version, "mv": v} for v in found]


def get_aliases(client: Any, name: str) -> dict[str, str]:
    """alias -> version (search_model_versions returns no aliases in MLflow 3; this does)."""
    return {a: str(v) for a, v in _registered_model(client, name).aliases.items()}


def _aliases_by_version(aliases: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, v in sorted(aliases.items()):
        out.setdefault(v, []).append(alias)
    return out


def history(name: str) -> list[dict[str, Any]]:
    """The recorded alias moves of a registered model, oldest first.

    Args:
        name: Registered model name.

    Returns:
        Entries ``{seq, time, action, alias, from_version, to_version, actor, reason, forced}``.
    """
    client = connect()
    return _history(_registered_model(client, name))


def _history(rm: Any) -> list[dict[str, Any]]:
    raw = rm.tags.get(HISTORY_TAG)
    return json.loads(raw) if raw else []


def record_alias_move(
    client: Any,
    name: str,
    *,
    action: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    actor: str,
    reason: str,
    forced: bool = False,
) -> dict[str, Any]:
    """Appends one alias move to the registered model's history tag; returns the entry."""
    rm = _registered_model(client, name)
    entries = _history(rm)
    entry = {
        "seq": (entries[-1]["seq"] + 1) if entries else 1,
        "time": _now(),
        "action": action,
        "alias": alias,
        "from_version": from_version,
        "to_version": to_version,
        "actor": actor,
        "reason": reason,
        "forced": forced,
    }
    entries.append(entry)
    dropped = int(rm.tags.get(HISTORY_DROPPED_TAG, "0"))
    text = json.dumps(entries)
    while len(text) > HISTORY_MAX_CHARS and len(entries) > 1:
        entries.pop(0)
        dropped += 1
        text = json.dumps(entries)
    client.set_registered_model_tag(name, HISTORY_TAG, text)
    if dropped:
        client.set_registered_model_tag(name, HISTORY_DROPPED_TAG, str(dropped))
    return entry


def _check_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise RegistryError("an actor is required (who approves/rejects/rolls back)")


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
        "metrics": metrics_from_tags(tags) or {},
        "data_window": tags.get("data_window"),
        "git_sha": tags.get("git_sha"),
        "pipeline_run_id": tags.get("pipeline_run_id"),
        "approved_by": tags.get("approved_by"),
        "rejected_by": tags.get("rejected_by"),
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
    rows = [_version_summary(r["mv"], aliases_of) for r in _versions_raw(client, name)]
    return sorted(rows, key=lambda r: r["version"])


def show(name: str, version: str | int) -> dict[str, Any]:
    """One version in full: summary, all tags, gate verdict and comparison, its alias moves.

    Args:
        name: Registered model name.
        version: Version number.

    Returns:
        The summary of :func:`list_versions` plus ``tags``, ``gate_verdict`` and ``history``.

    Raises:
        RegistryError: Unknown model or version.
    """
    client = connect()
    mv = _version(client, name, version)
    rm = _registered_model(client, name)
    aliases = {a: str(v) for a, v in rm.aliases.items()}
    out = _version_summary(mv, _aliases_by_version(aliases))
    verdict = GateVerdict.from_tags(mv.tags)
    out["gate_verdict"] = verdict.to_dict() if verdict else None
    out["tags"] = dict(sorted(mv.tags.items()))
    v = str(mv.version)
    out["history"] = [h for h in _history(rm) if v in (h["from_version"], h["to_version"])]
    return out


def _move_champion(
    client: Any, name: str, version: str, *, actor: str, reason: str, action: str, forced: bool
) -> dict[str, Any]:
    """champion -> version, the old champion -> previous-champion; records the move."""
    aliases = get_aliases(client, name)
    old = aliases.get(CHAMPION)
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
    client.set_registered_model_alias(name, CHAMPION, version)
    return record_alias_move(
        client,
        name,
        action=action,
        alias=CHAMPION,
        from_version=old,
        to_version=version,
        actor=actor,
        reason=reason,
        forced=forced,
    )


def approve(
    name: str, version: str | int, *, actor: str, reason: str = "", force: bool = False
) -> dict[str, Any]:
    """Promotes a version to ``champion``; the old champion becomes ``previous-champion``.

    Only a version whose gate passed (and that was not rejected) can be approved, unless
    ``force`` is set together with a reason. The version is tagged ``approved_by``,
    ``approved_at``, ``approval_reason`` (and ``approval_forced``); ``challenger`` is removed
    from it; the move is appended to the alias history.

    Args:
        name: Registered model name.
        version: Version to promote.
        actor: Who approves (a user, or ``auto:<pipeline run>`` for scheduled runs).
        reason: Why (required with ``force``).
        force: Approve although the gate failed, the version was never gated or was rejected.

    Returns:
        The history entry of the move.

    Raises:
        RegistryError: Unknown model/version, already champion, gate not passed without
            ``force``, ``force`` without a reason, or no actor.
    """
    _check_actor(actor)
    client = connect()
    mv = _version(client, name, version)
    v = str(mv.version)
    aliases = get_aliases(client, name)
    if aliases.get(CHAMPION) == v:
        raise RegistryError(f"{name} v{v} is already the champion")
    verdict = GateVerdict.from_tags(mv.tags)
    problems = []
    if verdict is None:
        problems.append("it was never gated (no gate.verdict tag)")
    elif not verdict.passed:
        problems.append("its promotion gate failed: " + "; ".join(verdict.reasons))
    if "rejected_by" in mv.tags:
        problems.append(
            f"it was rejected by {mv.tags['rejected_by']}: {mv.tags.get('rejection_reason', '')}"
        )
    if problems and not force:
        raise RegistryError(
            f"cannot approve {name} v{v}: {' and '.join(problems)}. "
            "Approve anyway with --force --reason '...'."
        )
    if force and not reason.strip():
        raise RegistryError(f"approving {name} v{v} with --force needs a --reason")
    entry = _move_champion(
        client,
        name,
        v,
        actor=actor,
        reason=reason,
        action="force_approve" if (force and problems) else "approve",
        forced=bool(force and problems),
    )
    client.set_model_version_tag(name, v, "approved_by", actor)
    client.set_model_version_tag(name, v, "approved_at", entry["time"])
    client.set_model_version_tag(name, v, "approval_reason", reason)
    client.set_model_version_tag(name, v, "approval_forced", str(entry["forced"]).lower())
    if aliases.get(CHALLENGER) == v:
        client.delete_registered_model_alias(name, CHALLENGER)
    log.info(
        "%s v%s is the champion (was %s), approved by %s", name, v, entry["from_version"], actor
    )
    return entry


def reject(name: str, version: str | int, *, actor: str, reason: str) -> dict[str, Any]:
    """Rejects a version: tags it ``rejected_by``/``rejected_at``/``rejection_reason`` and
    removes ``challenger`` from it (recorded in the alias history).

    Args:
        name: Registered model name.
        version: Version to reject.
        actor: Who rejects.
        reason: Why (required).

    Returns:
        The history entry.

    Raises:
        RegistryError: Unknown model/version, no reason/actor, or the version is the champion
            (roll back first).
    """
    _check_actor(actor)
    if not reason.strip():
        raise RegistryError("rejecting a version needs a --reason")
    client = connect()
    mv = _version(client, name, version)
    v = str(mv.version)
    aliases = get_aliases(client, name)
    if aliases.get(CHAMPION) == v:
        raise RegistryError(
            f"{name} v{v} is the champion; run `twhin-bert registry rollback {name}` "
            "(or approve another version) before rejecting it"
        )
    was_challenger = aliases.get(CHALLENGER) == v
    entry = record_alias_move(
        client,
        name,
        action="reject",
        alias=CHALLENGER,
        from_version=v if was_challenger else None,
        to_version=None,
        actor=actor,
        reason=reason,
    )
    client.set_model_version_tag(name, v, "rejected_by", actor)
    client.set_model_version_tag(name, v, "rejected_at", entry["time"])
    client.set_model_version_tag(name, v, "rejection_reason", reason)
    if was_challenger:
        client.delete_registered_model_alias(name, CHALLENGER)
    log.info("%s v%s rejected by %s", name, v, actor)
    return entry


def rollback(name: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Restores the previous champion: ``champion`` <- ``previous-champion``.

    The two swap, so the rolled-back version stays reachable as ``previous-champion`` (a second
    rollback undoes the first). The rolled-back version is tagged ``rolled_back_by``/``_at``/
    ``rollback_reason``; the move is recorded.

    Args:
        name: Registered model name.
        actor: Who rolls back.
        reason: Why (required).

    Returns:
        The history entry.

    Raises:
        RegistryError: Unknown model, no reason/actor, or no previous champion.
    """
    _check_actor(actor)
    if not reason.strip():
        raise RegistryError("a rollback needs a --reason")
    client = connect()
    aliases = get_aliases(client, name)
    prev = aliases.get(PREVIOUS_CHAMPION)
    if prev is None:
        raise RegistryError(
            f"{name} has no previous champion to roll back to (aliases: {aliases or 'none'})"
        )
    current = aliases.get(CHAMPION)
    entry = _move_champion(
        client, name, prev, actor=actor, reason=reason, action="rollback", forced=False
    )
    if current is not None:
        client.set_model_version_tag(name, current, "rolled_back_by", actor)
        client.set_model_version_tag(name, current, "rolled_back_at", entry["time"])
        client.set_model_version_tag(name, current, "rollback_reason", reason)
    else:  # champion alias deleted by hand: nothing to keep as previous
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
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


def resolve_champion(name: str, dest: Path) -> dict[str, Any]:
    """Downloads the champion into ``dest`` as a Hugging Face folder (model + tokenizer).

    Besides the encoder and tokenizer saved by the transformers flavor, the files register_model
    logged into the model's ``extra/`` folder come back too (the MLM and social heads, so a
    warm-start retraining continues from all the weights; the model card). The folder loads with ``AutoModel.from_pretrained(dest)`` and
    ``AutoTokenizer.from_pretrained(dest)`` (the warm start of retraining). The version is pinned
    when resolved, so a concurrent promotion cannot mix two versions.

    Args:
        name: Registered model name.
        dest: Folder to write (created; files of the same name are overwritten).

    Returns:
        ``{name, version, run_id, model_uri, source, metrics, dest}``.

    Raises:
        RegistryError: Unknown model, no champion, or the logged model lacks a transformers
            model or tokenizer.
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
        mlmodel = local / "MLmodel"
        if not mlmodel.is_file():
            raise RegistryError(f"{uri}: no MLmodel file in the downloaded artifacts")
        flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("transformers")
        if flavor is None:
            raise RegistryError(f"{uri}: not logged with the mlflow.transformers flavor")
        model_dir = local / flavor.get("model_binary", "model")
        tok_dir = local / "components" / "tokenizer"
        if "tokenizer" not in (flavor.get("components") or []) or not tok_dir.is_dir():
            raise RegistryError(f"{uri}: the logged model has no tokenizer component")
        if not (model_dir / "config.json").is_file():
            raise RegistryError(f"{uri}: no config.json under {flavor.get('model_binary')}/")
        extra = local / "extra"  # heads, model card, training log (register.EXTRA_PATTERNS)
        for src in (model_dir, tok_dir, extra):
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
