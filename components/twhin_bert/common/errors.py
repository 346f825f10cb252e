"""The exit codes of the ``twhin-bert`` command and which failures map to which.

One place for the codes, so the CLI help, the stage wrapper and the tests agree:

====  ================================================================================
code  meaning
====  ================================================================================
0     success
1     an unexpected error (a bug): the traceback is printed
2     bad input, config or usage: a missing or malformed file, an invalid config, an
      ``--out`` the stage refuses to overwrite
3     an I/O failure of the machine: permission denied, read-only file system, disk full,
      file too large; a worker process killed (out of memory)
4     a remote service is unreachable or failed the request (the MLflow tracking server,
      Kubeflow Pipelines)
5     a Kubeflow Pipelines run that ``twhin-bert runs wait`` waited for failed, was
      cancelled, or had not ended when the wait timed out
130   interrupted (Ctrl-C)
====  ================================================================================
"""

from __future__ import annotations

import errno
import sys
from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes of the ``twhin-bert`` command (see the module docstring)."""

    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    IO = 3
    REMOTE = 4
    RUN_FAILED = 5
    INTERRUPTED = 130


class RunFailed(RuntimeError):
    """A pipeline run that ended without success; the message names the failed task and where
    its logs are (exit code ``RUN_FAILED``)."""


# Failures caused by what the user gave us (files, configs, options). Our own input errors
# (ConfigError, SchemaError, ingest's InputError, ...) all derive from ValueError.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def is_unreachable(exc: BaseException) -> bool:
    """Tells whether an exception means a remote service could not be reached in time.

    True for a ``requests`` connection error or timeout anywhere in the exception's chain,
    and for MLflow's wrapper of them (MLflow re-raises them as ``MlflowException``).
    """
    requests_exc = sys.modules.get("requests.exceptions")
    for e in _chain(exc):
        if requests_exc is not None and isinstance(
            e, requests_exc.ConnectionError | requests_exc.Timeout
        ):
            return True
        if "Max retries exceeded" in str(e) or "failed with timeout exception" in str(e):
            return True
    return False


def _is_mlflow_error(exc: BaseException) -> bool:
    # No mlflow import here: when mlflow was never imported, nothing raised its exceptions.
    mod = sys.modules.get("mlflow.exceptions")
    return mod is not None and isinstance(exc, mod.MlflowException)


def exit_code_for(exc: BaseException) -> ExitCode | None:
    """The exit code of an expected failure, or None for a bug (show its traceback).

    Args:
        exc: The exception a command ended with.

    Returns:
        ``BAD_INPUT``, ``IO``, ``REMOTE`` or ``INTERRUPTED``; None when unexpected.
    """
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, RunFailed):
        return ExitCode.RUN_FAILED
    if is_unreachable(exc) or _is_mlflow_error(exc):
        return ExitCode.REMOTE
    if isinstance(exc, BAD_INPUT_ERRORS):
        return ExitCode.BAD_INPUT
    if isinstance(exc, OSError):
        return ExitCode.IO
    return None


def describe(exc: BaseException, tracking_uri: str | None = None) -> str:
    """A one-line description of an expected failure, naming its cause.

    Args:
        exc: The exception.
        tracking_uri: The MLflow tracking URI in use (already redacted), named when the
            tracking server is unreachable.

    Returns:
        The message (config errors keep their per-field lines below the first).
    """
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if is_unreachable(exc):
        where = f" at {tracking_uri}" if tracking_uri else ""
        return (
            f"cannot reach the MLflow tracking server{where} (connection refused or timed "
            "out; MLFLOW_HTTP_REQUEST_TIMEOUT and MLFLOW_HTTP_REQUEST_MAX_RETRIES bound the wait)"
        )
    if isinstance(exc, OSError) and not isinstance(exc, BAD_INPUT_ERRORS) and exc.errno:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        what = exc.strerror or str(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{what} ({name})"
    if isinstance(exc, OSError) and not str(exc):
        return type(exc).__name__
    return str(exc)
