"""Redaction of credentials in anything the package prints, logs or records.

A tracking URI such as ``postgresql://user:pw@db/mlflow`` or
``https://host/?token=abc`` carries a credential; this module is the one place that
knows how to hide it. ``redact_uri`` handles one URI, ``redact_text`` finds URIs inside
free text (an error message, a log line), ``redact_mapping`` hides the values of
credential-named keys in a config dictionary, and ``RedactingFilter`` applies
``redact_text`` to every log record that passes a handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# The words of a name that make it a credential: PASSWORD, MLFLOW_TRACKING_TOKEN,
# clientSecret, GOOGLE_APPLICATION_CREDENTIALS. "key" counts only as the last word of a
# longer name (API_KEY, AWS_SECRET_ACCESS_KEY, private-key): a toleration's bare ``key``
# or a ``key_metric`` is not a credential. Words, not substrings, so that ``tokenizer``
# or ``max_tokens`` are not taken for a token.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "pass", "passphrase", "token", "secret", "secrets"}
    | {"credential", "credentials", "apikey"}
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# In free text: the password of ``scheme://user:password@host`` (up to the last ``@``
# before a slash, so a password with an unescaped ``@`` or bracket is still covered) and
# the value of a query field ``?name=value`` / ``&name=value``.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#]*):[^\s/?#]*@")
_QUERY_FIELD = re.compile(r"([?&;])([^=&\s?#;]+)=([^&\s#;'\"<>]*)")


def is_secret_name(name: str) -> bool:
    """Tell whether a variable, parameter or query-field name names a credential.

    Args:
        name: An environment variable, config key or URI query-field name.

    Returns:
        True when one of its words (split at ``_ - .`` and camelCase) is password, passwd,
        pwd, pass, passphrase, token, secret, credential(s) or apikey, or when its last
        word of several is key.
    """
    words = [w.lower() for w in _WORD.findall(name)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return len(words) > 1 and words[-1] == "key"


def uri_has_credentials(value: str) -> bool:
    """Tell whether a string contains a URI with a password or a credential query field.

    Args:
        value: Any string (an environment value, a config value, a log line).

    Returns:
        True when redacting the string would change it.
    """
    return redact_text(value) != value


def redact_uri(uri: str) -> str:
    """Hide the password and credential query fields of one URI.

    ``postgresql://alice:pw@db:5432/mlflow`` becomes ``postgresql://alice:***@db:5432/mlflow``
    and ``https://host/api?token=abc&x=1`` becomes ``https://host/api?token=***&x=1``.
    A user name alone (``http://alice@host``) is kept: it names, it does not authenticate.
    Strings that are not URIs are returned unchanged.

    Args:
        uri: The URI to redact.

    Returns:
        The URI with every credential replaced by ``***``.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        # Not parseable as a URI (e.g. an unbalanced IPv6 bracket): hide it all rather
        # than risk printing a credential.
        return MASK if "@" in uri else uri
    if not parts.scheme or (not parts.netloc and not parts.query):
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        fields = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in fields):
            query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in fields], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every URI with credentials found inside free text.

    Covers the password of ``scheme://user:password@host`` and every ``?name=value`` or
    ``&name=value`` whose name is a credential's (``is_secret_name``).

    Args:
        text: A message, log line or command output.

    Returns:
        The text with each URI passed through ``redact_uri``.
    """
    if "://" in text:
        text = _USERINFO.sub(rf"\1:{MASK}@", text)
    if "=" in text:
        text = _QUERY_FIELD.sub(_redact_query_field, text)
    return text


def _redact_query_field(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={MASK}" if is_secret_name(name) and value else match.group(0)


def redact_value(name: str, value: Any) -> Any:
    """Redact one named value for recording: a credential-named key hides its value.

    Args:
        name: The key the value is recorded under (an env var or config field name).
        value: The value; strings are also searched for URIs with credentials.

    Returns:
        ``***`` for a credential-named key, else the value with URIs redacted.
    """
    if is_secret_name(name) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_mapping(data: Any) -> Any:
    """Redact a nested config (dicts, lists, scalars) before it is logged or stored.

    Values under credential-named keys become ``***``; every string is searched for URIs
    with credentials. Keys are kept, so the record still shows which variables were set.

    Args:
        data: A JSON-like structure, e.g. ``PipelineConfig.model_dump(mode="json")``.

    Returns:
        A redacted copy; the input is not modified.
    """
    if isinstance(data, Mapping):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if isinstance(value, Mapping | list | tuple):
                out[key] = redact_mapping(value)
            else:
                out[key] = redact_value(str(key), value)
        return out
    if isinstance(data, list | tuple):
        return [redact_mapping(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials in every record it sees.

    Install it on a handler (``handler.addFilter(RedactingFilter())``) so that records
    from any logger, including third-party ones, are redacted before they are written.
    A record whose message or traceback holds a credential gets the redacted text as its
    message (arguments already applied) and no separate exception.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place and let it through.

        Args:
            record: The log record.

        Returns:
            Always True: redaction never drops a record.
        """
        message = record.getMessage()
        redacted = redact_text(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Handlers such as rich's render the exception object itself, not exc_text: a
            # traceback that holds a credential is folded, redacted, into the message.
            trace = record.exc_text or logging.Formatter().formatException(record.exc_info)
            if redact_text(trace) != trace:
                redacted = f"{redacted}\n{redact_text(trace)}"
                record.exc_info = None
                record.exc_text = None
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingFilter`` to every handler of a logger (the root by default).

    Idempotent: a handler that already has one is left alone.

    Args:
        logger: The logger whose handlers to filter; the root logger when None.
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
