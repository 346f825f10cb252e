"""Server-side rules of the twhin-bert model registry, plugged into MLflow's basic-auth app.

MLflow's basic-auth app (``mlflow server --app-name basic-auth``) checks per registered model
READ / EDIT / MANAGE, but it lets any EDIT user move any alias (``SetRegisteredModelAlias``
needs ``can_update``) and rewrite or delete any tag. This module is the app's
``authorization_function`` (``basic_auth.ini``): it authenticates exactly as MLflow does
and then adds three rules, for every user including admins:

1. ``champion`` and ``previous-champion`` may be set or deleted only by a user with MANAGE on
   the registered model (or an admin): the approvers.
2. An audit record (registered-model tag ``twhin_bert.audit.*``) is written once: setting one
   that exists, or deleting one, is refused (append-only).
3. The ``actor`` of an audit record must be the authenticated user: nobody records a decision
   in someone else's name.
4. A decision record (``twhin_bert.audit.NNNNNNNN``) is complete (every field the registry
   writes), takes the next number, and its ``before`` is the aliases as they are now: it is
   written before any alias moves, so a record that describes another state is forged, and
   the next decision would otherwise "restore" that state.
5. The approval and rollback tags of a version (``approved_by``, ``rolled_back_by``, ...)
   are set only by users with MANAGE on the model: they say who promoted it.

It imports only MLflow and Flask, so it runs in the stock MLflow image (mounted from a
ConfigMap, see ``manifests/base/kustomization.yaml``).
"""

from __future__ import annotations

import json
import re

from flask import Response, g, request
from mlflow.exceptions import MlflowException
from mlflow.server import auth as mlflow_auth

PROTECTED_ALIASES = frozenset({"champion", "previous-champion"})
AUDIT_PREFIX = "twhin_bert.audit."
# The registry's own facts (twhin_bert.register_model.registry), restated because this module
# runs in the stock MLflow image without twhin-bert; tests/deploy checks that they agree.
ALIASES = frozenset({"champion", "challenger", "previous-champion"})
RECORD_FIELDS = frozenset(
    {"seq", "time", "action", "version", "alias", "from_version", "to_version", "actor", "via",
     "reason", "forced", "before", "after"}
)  # fmt: skip
APPROVAL_TAGS = frozenset(
    {"approved_by", "approved_at", "approval_reason", "approval_forced",
     "rolled_back_by", "rolled_back_at", "rollback_reason"}
)  # fmt: skip
_RECORD_KEY = re.compile(r"^twhin_bert\.audit\.(\d{8})$")


def _param(name: str) -> str | None:
    try:
        value = mlflow_auth._get_request_param(name)
    except MlflowException:
        return None
    return value if isinstance(value, str) else None


def _deny(message: str) -> Response:
    return Response(message, status=403, mimetype="text/plain")


def _is_manager(username: str, model: str) -> bool:
    if mlflow_auth.sender_is_admin():
        return True
    try:
        return mlflow_auth._get_permission_from_registered_model_or_prompt_name().can_manage
    except MlflowException:
        return False


def _rule_violation(username: str) -> str | None:
    path = request.path
    if path.endswith("/mlflow/registered-models/alias") and request.method in ("POST", "DELETE"):
        alias, model = _param("alias"), _param("name")
        if alias in PROTECTED_ALIASES and model and not _is_manager(username, model):
            return (
                f"user {username!r} may not move alias {alias!r} of registered model {model!r}: "
                "approvers need MANAGE on the model"
            )
    elif path.endswith("/mlflow/registered-models/delete-tag"):
        key = _param("key") or ""
        if key.startswith(AUDIT_PREFIX):
            return f"audit record {key!r} is append-only: it cannot be deleted"
    elif path.endswith("/mlflow/registered-models/set-tag") and request.method == "POST":
        key, model = _param("key") or "", _param("name")
        if key.startswith(AUDIT_PREFIX) and model:
            try:
                tags = mlflow_auth._get_model_registry_store().get_registered_model(model).tags
            except MlflowException:
                tags = {}
            if key in tags:
                return f"audit record {key!r} exists and is append-only: it cannot be rewritten"
            try:
                record = json.loads(_param("value") or "")
            except ValueError:
                return f"audit record {key!r} is not JSON"
            if not isinstance(record, dict) or record.get("actor") != username:
                actor = record.get("actor") if isinstance(record, dict) else None
                return (
                    f"audit record {key!r} names actor {actor!r}, "
                    f"but the authenticated user is {username!r}"
                )
            if m := _RECORD_KEY.match(key):
                return _record_violation(key, int(m.group(1)), record, model, tags)
    elif path.endswith("/mlflow/model-versions/set-tag") or path.endswith(
        "/mlflow/model-versions/delete-tag"
    ):
        key, model = _param("key") or "", _param("name")
        if key in APPROVAL_TAGS and model and not _is_manager(username, model):
            return (
                f"user {username!r} may not set {key!r} on a version of {model!r}: "
                "approvals are recorded by approvers (MANAGE on the model)"
            )
    return None


def _record_violation(
    key: str, seq: int, record: dict, model: str, tags: dict[str, str]
) -> str | None:
    """Rule 4: a complete record, the next number, ``before`` = the aliases now."""
    missing = sorted(RECORD_FIELDS - set(record))
    if missing:
        return f"audit record {key!r} lacks {missing}"
    taken = [int(m.group(1)) for k in tags if (m := _RECORD_KEY.match(k))]
    if record["seq"] != seq or seq != max(taken, default=0) + 1:
        return f"audit record {key!r} is not the next record (#{max(taken, default=0) + 1})"
    before, after = record["before"], record["after"]
    if not (
        isinstance(before, dict)
        and isinstance(after, dict)
        and set(before) == set(after)
        and set(before) <= ALIASES
    ):
        return f"audit record {key!r}: before and after must name the same aliases of {sorted(ALIASES)}"
    try:
        aliases = mlflow_auth._get_model_registry_store().get_registered_model(model).aliases
    except MlflowException:
        aliases = {}
    now = {a: str(v) for a, v in (aliases or {}).items()}
    wrong = {a: v for a, v in before.items() if now.get(a) != (None if v is None else str(v))}
    if wrong:
        return (
            f"audit record {key!r}: its 'before' {wrong} is not the registry's state "
            f"{ {a: now.get(a) for a in wrong} }"
        )
    return None


def authenticate_request() -> object:
    """MLflow's basic authentication followed by the registry rules above.

    Returns:
        The request's ``Authorization`` when allowed, else a 401/403 ``Response``.
    """
    authorization = mlflow_auth.authenticate_request_basic_auth()
    if isinstance(authorization, Response):
        return authorization
    # MLflow calls the authorization function again inside its validators and hooks:
    # decide once per request.
    if "twhin_bert_violation" not in g:
        # The permission lookups below call back into this function: let those pass.
        g.twhin_bert_violation = None
        g.twhin_bert_violation = _rule_violation(authorization.username)
    if g.twhin_bert_violation is not None:
        return _deny(g.twhin_bert_violation)
    return authorization
